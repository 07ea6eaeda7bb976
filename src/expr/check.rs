//! Static checks GitHub performs when it loads a workflow: which contexts and functions
//! are available where, and function arity.

use super::parse::Expr;
use crate::diag::did_you_mean;

/// Where an expression appears; decides which contexts and functions are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    RunName,
    WorkflowEnv,
    WorkflowConcurrency,
    JobIf,
    /// `runs-on`, `name`, `environment`, `concurrency`, `timeout-minutes`, `continue-on-error`,
    /// `container`, `services`, job `with`/`secrets`.
    Job,
    JobEnv,
    /// `jobs.<id>.defaults.run`.
    JobDefaults,
    Strategy,
    JobOutputs,
    /// `on.workflow_call.outputs.<id>.value`.
    WorkflowCallOutputs,
    StepIf,
    Step,
}

const ALL_CONTEXTS: [&str; 11] = [
    "github", "env", "vars", "inputs", "matrix", "strategy", "needs", "steps", "job", "runner",
    "secrets",
];

/// Every context name, for telling "not available here" from "unknown".
const KNOWN_CONTEXTS: [&str; 12] = [
    "github", "env", "vars", "inputs", "matrix", "strategy", "needs", "steps", "job", "runner",
    "secrets", "jobs",
];

const FUNCTIONS: [(&str, usize, usize); 13] = [
    ("case", 3, usize::MAX),
    ("contains", 2, 2),
    ("startswith", 2, 2),
    ("endswith", 2, 2),
    ("format", 1, usize::MAX),
    ("join", 1, 2),
    ("tojson", 1, 1),
    ("fromjson", 1, 1),
    ("hashfiles", 1, usize::MAX),
    ("success", 0, 0),
    ("failure", 0, 0),
    ("always", 0, 0),
    ("cancelled", 0, 0),
];

impl Location {
    fn contexts(self) -> &'static [&'static str] {
        use Location::*;
        match self {
            RunName | WorkflowConcurrency => &["github", "inputs", "vars"],
            WorkflowEnv => &["github", "secrets", "inputs", "vars"],
            JobIf => &["github", "needs", "vars", "inputs"],
            Strategy => &["github", "needs", "vars", "inputs"],
            Job => &[
                "github", "needs", "strategy", "matrix", "vars", "inputs", "secrets",
            ],
            JobEnv => &[
                "github", "needs", "strategy", "matrix", "vars", "secrets", "inputs",
            ],
            JobDefaults => &[
                "github", "needs", "strategy", "matrix", "env", "vars", "inputs",
            ],
            JobOutputs | StepIf | Step => &ALL_CONTEXTS,
            WorkflowCallOutputs => &["github", "jobs", "vars", "inputs"],
        }
    }

    fn allows_status_functions(self) -> bool {
        matches!(self, Location::JobIf | Location::StepIf)
    }

    fn allows_hash_files(self) -> bool {
        matches!(
            self,
            Location::StepIf | Location::Step | Location::JobOutputs
        )
    }
}

/// An error found by [`check`]: byte offset inside the expression, message, optional help.
pub(super) type CheckError = (usize, String, Option<String>);

/// Reports unknown or unavailable contexts, unknown functions and wrong argument counts.
pub fn check(expr: &Expr, location: Location) -> Vec<CheckError> {
    let mut errors = Vec::new();
    walk(expr, location, &mut errors);
    errors
}

fn walk(expr: &Expr, location: Location, errors: &mut Vec<CheckError>) {
    match expr {
        Expr::Literal(_) => {}
        Expr::Context { name, offset } => {
            let lower = name.to_ascii_lowercase();
            let available = location.contexts();
            if !available.contains(&lower.as_str()) {
                if KNOWN_CONTEXTS.contains(&lower.as_str()) {
                    errors.push((
                        *offset,
                        format!("the `{lower}` context is not available here"),
                        Some(format!("available here: {}", available.join(", "))),
                    ));
                } else {
                    let help = did_you_mean(&lower, ALL_CONTEXTS.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                    errors.push((*offset, format!("unrecognized named-value `{name}`"), help));
                }
            }
        }
        Expr::Index(a, b) => {
            walk(a, location, errors);
            walk(b, location, errors);
        }
        Expr::Star(a) | Expr::Not(a) => walk(a, location, errors),
        Expr::Binary(_, a, b) => {
            walk(a, location, errors);
            walk(b, location, errors);
        }
        Expr::Call { name, args, offset } => {
            let lower = name.to_ascii_lowercase();
            match FUNCTIONS.iter().find(|(f, ..)| *f == lower) {
                None => {
                    let names = FUNCTIONS.iter().map(|(f, ..)| *f);
                    let help =
                        did_you_mean(&lower, names).map(|s| format!("did you mean `{s}()`?"));
                    errors.push((*offset, format!("unrecognized function `{name}`"), help));
                }
                Some((f, min, max)) => {
                    let status = matches!(*f, "success" | "failure" | "always" | "cancelled");
                    if status && !location.allows_status_functions() {
                        errors.push((
                            *offset,
                            format!("`{name}()` is only available in `if`"),
                            None,
                        ));
                    } else if *f == "hashfiles" && !location.allows_hash_files() {
                        errors.push((
                            *offset,
                            "`hashFiles()` is only available in steps".into(),
                            None,
                        ));
                    } else if *f == "case" && args.len() >= 3 && args.len() % 2 == 0 {
                        errors.push((
                            *offset,
                            format!(
                                "`case` takes an odd number of arguments (predicate, value pairs and a default), got {}",
                                args.len()
                            ),
                            None,
                        ));
                    } else if *f == "case"
                        && args.iter().step_by(2).take(args.len() / 2).any(|a| {
                            matches!(a, Expr::Literal(v) if !matches!(v, crate::expr::Value::Bool(_)))
                        })
                    {
                        errors.push((
                            *offset,
                            "`case` predicates must be booleans".into(),
                            None,
                        ));
                    } else if args.len() < *min || args.len() > *max {
                        let expected = if min == max {
                            format!("{min}")
                        } else if *max == usize::MAX {
                            format!("at least {min}")
                        } else {
                            format!("{min} to {max}")
                        };
                        errors.push((
                            *offset,
                            format!("`{name}` takes {expected} argument(s), got {}", args.len()),
                            None,
                        ));
                    }
                }
            }
            for a in args {
                walk(a, location, errors);
            }
        }
    }
}
