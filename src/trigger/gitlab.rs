//! GitLab's job and pipeline selection: the `rules:if` expression language (`$VAR`,
//! `==`, `!=`, `=~`, `!~`, `/regex/flags`, `&&`, `||`, parentheses, `null`), `rules`
//! (first match wins), `only`/`except` (with the implicit `only: [branches, tags]`) and the
//! predefined variables an event implies.

use super::event::{Event, EventKind};
use super::glob::PatternList;
use indexmap::IndexMap;
use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
enum Operand {
    Var(String),
    Str(String),
    Re(Regex),
    Null,
}

#[derive(Debug, Clone)]
enum Cmp {
    Eq,
    Ne,
    Match,
    NoMatch,
}

#[derive(Debug, Clone)]
enum Expr {
    Operand(Operand),
    Compare(Operand, Cmp, Operand),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A parsed `rules:if` / `only:variables` expression.
#[derive(Debug, Clone)]
pub struct Condition {
    pub source: String,
    expr: Expr,
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, ExprError> {
        let mut p = Parser {
            src: source,
            pos: 0,
        };
        let expr = p.or()?;
        p.skip_ws();
        if p.pos < source.len() {
            return Err(p.error("unexpected text after the expression"));
        }
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    pub fn eval(&self, vars: &IndexMap<String, String>) -> bool {
        eval(&self.expr, vars)
    }
}

fn value<'a>(o: &'a Operand, vars: &'a IndexMap<String, String>) -> Option<&'a str> {
    match o {
        Operand::Var(name) => vars.get(name).map(String::as_str),
        Operand::Str(s) => Some(s),
        Operand::Re(r) => Some(r.as_str()),
        Operand::Null => None,
    }
}

/// A regex operand, or a variable holding `/pattern/flags`.
fn regex_of(o: &Operand, vars: &IndexMap<String, String>) -> Option<Regex> {
    match o {
        Operand::Re(r) => Some(r.clone()),
        Operand::Var(name) => vars.get(name).and_then(|v| parse_regex_literal(v).ok()),
        _ => None,
    }
}

fn eval(e: &Expr, vars: &IndexMap<String, String>) -> bool {
    match e {
        Expr::Operand(o) => value(o, vars).is_some_and(|v| !v.is_empty()),
        Expr::Compare(l, cmp, r) => match cmp {
            Cmp::Eq => value(l, vars) == value(r, vars),
            Cmp::Ne => value(l, vars) != value(r, vars),
            Cmp::Match => match (value(l, vars), regex_of(r, vars)) {
                (Some(text), Some(re)) => re.is_match(text),
                _ => false,
            },
            Cmp::NoMatch => match (value(l, vars), regex_of(r, vars)) {
                (Some(text), Some(re)) => !re.is_match(text),
                _ => true,
            },
        },
        Expr::And(a, b) => eval(a, vars) && eval(b, vars),
        Expr::Or(a, b) => eval(a, vars) || eval(b, vars),
    }
}

/// `/pattern/flags` (flags `i`, `m`, `s`, `x`) as a Rust regex (RE2-compatible syntax).
pub fn parse_regex_literal(text: &str) -> Result<Regex, String> {
    let body = text.strip_prefix('/').ok_or("a regex starts with `/`")?;
    let end = body.rfind('/').ok_or("a regex ends with `/`")?;
    let (pattern, flags) = (&body[..end], &body[end + 1..]);
    let mut prefix = String::new();
    for f in flags.chars() {
        match f {
            'i' | 'm' | 's' | 'x' => prefix.push(f),
            other => return Err(format!("unknown regex flag `{other}`")),
        }
    }
    let full = if prefix.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{prefix}){pattern}")
    };
    Regex::new(&full).map_err(|e| format!("invalid regex: {e}"))
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> ExprError {
        ExprError {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while self.src[self.pos..].starts_with(|c: char| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.src[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.and()?;
        while self.eat("||") {
            lhs = Expr::Or(Box::new(lhs), Box::new(self.and()?));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.comparison()?;
        while self.eat("&&") {
            lhs = Expr::And(Box::new(lhs), Box::new(self.comparison()?));
        }
        Ok(lhs)
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(e);
        }
        let lhs = self.operand()?;
        let cmp = if self.eat("==") {
            Cmp::Eq
        } else if self.eat("!=") {
            Cmp::Ne
        } else if self.eat("=~") {
            Cmp::Match
        } else if self.eat("!~") {
            Cmp::NoMatch
        } else {
            return Ok(Expr::Operand(lhs));
        };
        self.skip_ws();
        let at = self.pos;
        let rhs = self.operand()?;
        let rhs = match (&cmp, rhs) {
            // GitLab also takes a quoted pattern on the right of `=~` / `!~`.
            (Cmp::Match | Cmp::NoMatch, Operand::Str(s)) => Operand::Re(
                Regex::new(&s)
                    .unwrap_or_else(|_| Regex::new(&regex::escape(&s)).expect("escaped literal")),
            ),
            (Cmp::Match | Cmp::NoMatch, Operand::Null) => {
                self.pos = at;
                return Err(self.error(
                    "`=~` and `!~` need a /regex/, a \"pattern\" or a variable on the right",
                ));
            }
            (_, rhs) => rhs,
        };
        Ok(Expr::Compare(lhs, cmp, rhs))
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let start = self.pos;
        if let Some(after) = rest.strip_prefix('$') {
            let braced = after.starts_with('{');
            let body = if braced { &after[1..] } else { after };
            let len = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            if len == 0 {
                return Err(self.error("expected a variable name after `$`"));
            }
            let name = body[..len].to_string();
            self.pos += 1 + len + if braced { 2 } else { 0 };
            if braced && !self.src[..self.pos].ends_with('}') {
                self.pos = start;
                return Err(self.error("`${` is never closed with `}`"));
            }
            return Ok(Operand::Var(name));
        }
        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let Some(end) = rest[1..].find(q) else {
                return Err(self.error("unterminated string"));
            };
            self.pos += end + 2;
            return Ok(Operand::Str(rest[1..=end].to_string()));
        }
        if rest.starts_with('/') {
            // The regex runs to the last `/` before whitespace, `)` or the end, then flags.
            let bytes = rest.as_bytes();
            let mut i = 1;
            let mut close = None;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 1,
                    b'/' => {
                        let mut j = i + 1;
                        while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
                            j += 1;
                        }
                        if j == bytes.len() || bytes[j] == b' ' || bytes[j] == b')' {
                            close = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let Some(end) = close else {
                return Err(self.error("unterminated /regex/"));
            };
            let literal = &rest[..end];
            let re = parse_regex_literal(literal).map_err(|m| self.error(&m))?;
            self.pos += end;
            return Ok(Operand::Re(re));
        }
        if rest.starts_with("null") {
            self.pos += 4;
            return Ok(Operand::Null);
        }
        Err(self.error("expected a $VARIABLE, a \"string\", a /regex/ or null"))
    }
}

/// Expands `$VAR` and `${VAR}` in a variable's value from `vars` (GitLab expands variables
/// that reference others before the job starts; `$$` is a literal `$`; unknown names stay).
pub fn expand(value: &str, vars: &IndexMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, consumed) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..len], len)
            }
        };
        match vars.get(name) {
            Some(v) if !name.is_empty() => out.push_str(v),
            _ => out.push_str(&rest[i..i + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// The variables GitLab predefines for an event (what a plan can know).
pub fn predefined(event: &Event) -> IndexMap<String, String> {
    let mut v = IndexMap::new();
    let mut set = |k: &str, val: &str| {
        v.insert(k.to_string(), val.to_string());
    };
    set("CI", "true");
    set("GITLAB_CI", "true");
    set("CI_PIPELINE_SOURCE", pipeline_source(event));
    set("CI_DEFAULT_BRANCH", "main");
    set("CI_COMMIT_REF_NAME", event.ref_name());
    if let Some(project) = &event.project {
        set("CI_PROJECT_PATH", project);
        let (namespace, name) = project.rsplit_once('/').unwrap_or(("", project));
        set("CI_PROJECT_NAMESPACE", namespace);
        set("CI_PROJECT_NAME", name);
    }
    match (event.kind, event.tag(), event.branch()) {
        (EventKind::PullRequest, _, _) => {
            let head = event.head.as_deref().unwrap_or("");
            set("CI_COMMIT_REF_NAME", head);
            set("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", head);
            set(
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
                event.base.as_deref().unwrap_or("main"),
            );
            set("CI_MERGE_REQUEST_IID", event.change_number().unwrap_or("1"));
            set("CI_MERGE_REQUEST_EVENT_TYPE", "detached");
        }
        (_, Some(tag), _) => set("CI_COMMIT_TAG", tag),
        (_, _, Some(branch)) => set("CI_COMMIT_BRANCH", branch),
        _ => {}
    }
    v
}

pub fn pipeline_source(event: &Event) -> &'static str {
    match event.kind {
        EventKind::Push => "push",
        EventKind::PullRequest => "merge_request_event",
        EventKind::Schedule => "schedule",
        EventKind::Manual => "web",
    }
}

/// One entry of `rules:`.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub condition: Option<Condition>,
    pub changes: Option<PatternList>,
    /// `exists:`, decided when the file is loaded (it depends on the commit, not the event):
    /// `Some(false)` when no file of the repository matches.
    pub exists: Option<bool>,
    /// With `changes:compare_to`: the files changed since that ref, resolved at load time
    /// (`changes` then looks at these instead of the event's).
    pub compared_files: Option<Vec<String>>,
    pub when: Option<String>,
    pub allow_failure: Option<bool>,
    pub variables: IndexMap<String, String>,
}

/// `only:` / `except:` (the `refs` and `variables` forms; `changes` as in rules).
#[derive(Debug, Clone, Default)]
pub struct RefFilter {
    pub refs: Vec<String>,
    pub variables: Vec<Condition>,
    pub changes: Option<PatternList>,
}

/// How a job is selected for a pipeline.
#[derive(Debug, Clone)]
pub enum Selection {
    Rules(Vec<Rule>),
    OnlyExcept {
        only: RefFilter,
        except: Option<RefFilter>,
    },
}

/// The outcome for one job: whether it is added, with what `when` and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDecision {
    pub added: bool,
    pub when: String,
    /// `when` is the job's own, not set by the matching rule (decides GitLab's default
    /// `allow_failure` of manual jobs, see [`JobDecision::allow_failure_or`]).
    pub when_from_job: bool,
    /// `allow_failure` set by the matching rule.
    pub allow_failure: Option<bool>,
    pub variables: IndexMap<String, String>,
    pub reason: String,
}

impl JobDecision {
    /// GitLab's `allow_failure`: the rule's, else the job's own (`job`), else `true` for a
    /// job whose own `when` is `manual` and `false` otherwise (a `when: manual` set by a rule
    /// defaults to `false`).
    pub fn allow_failure_or(&self, job: Option<bool>) -> bool {
        self.allow_failure
            .or(job)
            .unwrap_or(self.when_from_job && self.when == "manual")
    }
}

fn changes_match(list: &PatternList, event: &Event) -> bool {
    // Tags, schedules and manual runs have no change set: GitLab treats `changes` as true.
    match (&event.changed, event.kind, event.tag()) {
        (_, EventKind::Schedule | EventKind::Manual, _) | (_, _, Some(_)) | (None, _, _) => true,
        (Some(files), ..) => files.iter().any(|f| list.selects(f)),
    }
}

pub fn select(
    selection: &Selection,
    event: &Event,
    vars: &IndexMap<String, String>,
    job_when: &str,
) -> JobDecision {
    match selection {
        Selection::Rules(rules) => {
            for (i, rule) in rules.iter().enumerate() {
                let if_ok = rule.condition.as_ref().is_none_or(|c| c.eval(vars));
                let changes_ok = rule
                    .changes
                    .as_ref()
                    .is_none_or(|c| match &rule.compared_files {
                        Some(files) => files.iter().any(|f| c.selects(f)),
                        None => changes_match(c, event),
                    });
                if if_ok && changes_ok && rule.exists != Some(false) {
                    let when = rule.when.clone().unwrap_or_else(|| job_when.to_string());
                    let why = match &rule.condition {
                        Some(c) => format!("rule {} (`{}`) matches", i + 1, c.source),
                        None => format!("rule {} matches", i + 1),
                    };
                    return JobDecision {
                        added: when != "never",
                        when_from_job: rule.when.is_none(),
                        reason: if when == "never" {
                            format!("{why} with `when: never`")
                        } else {
                            why
                        },
                        when,
                        allow_failure: rule.allow_failure,
                        variables: rule.variables.clone(),
                    };
                }
            }
            JobDecision {
                added: false,
                when_from_job: false,
                when: "never".into(),
                allow_failure: None,
                variables: IndexMap::new(),
                reason: "no rule matches".into(),
            }
        }
        Selection::OnlyExcept { only, except } => {
            let decision = |added: bool, reason: String| JobDecision {
                added,
                when_from_job: true,
                when: job_when.to_string(),
                allow_failure: None,
                variables: IndexMap::new(),
                reason,
            };
            if !ref_filter_matches(only, event, vars) {
                return decision(
                    false,
                    format!("only: [{}] does not match", only.refs.join(", ")),
                );
            }
            if let Some(except) = except
                && ref_filter_matches(except, event, vars)
            {
                return decision(
                    false,
                    format!("except: [{}] matches", except.refs.join(", ")),
                );
            }
            decision(
                job_when != "never",
                format!("only: [{}] matches", only.refs.join(", ")),
            )
        }
    }
}

fn ref_filter_matches(f: &RefFilter, event: &Event, vars: &IndexMap<String, String>) -> bool {
    let refs_ok = f.refs.is_empty() || f.refs.iter().any(|r| ref_matches(r, event));
    let vars_ok = f.variables.is_empty() || f.variables.iter().any(|c| c.eval(vars));
    let changes_ok = f.changes.as_ref().is_none_or(|c| changes_match(c, event));
    refs_ok && vars_ok && changes_ok
}

/// One `only`/`except` refs entry: a keyword, a `/regex/` or an exact ref name.
fn ref_matches(entry: &str, event: &Event) -> bool {
    let source = pipeline_source(event);
    let branch_pipeline = event.branch().is_some() && event.kind != EventKind::PullRequest;
    match entry {
        "branches" => branch_pipeline,
        "tags" => event.tag().is_some(),
        "merge_requests" => source == "merge_request_event",
        "schedules" => source == "schedule",
        "web" => source == "web",
        "pushes" => source == "push",
        "api" | "triggers" | "pipelines" | "external" | "chat" | "external_pull_requests" => false,
        _ => {
            let name = match event.kind {
                EventKind::PullRequest => event.head.as_deref().unwrap_or(""),
                _ => event.ref_name(),
            };
            if entry.starts_with('/') {
                parse_regex_literal(entry).is_ok_and(|re| re.is_match(name))
            } else {
                entry == name
            }
        }
    }
}
