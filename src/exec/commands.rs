//! Workflow commands written to stdout: `::group::`, `::endgroup::`, `::add-mask::`,
//! `::error file=,line=::`, `::warning::`, `::notice::`, `::debug::`, `::stop-commands::`,
//! and the legacy `::set-output name=::`, `::save-state name=::`, `::set-env name=::`,
//! `::add-path::` that GitHub still honours.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// `error`, `warning` or `notice`.
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
}

impl Annotation {
    pub fn error(message: &str) -> Annotation {
        Annotation::new("error", message.into())
    }

    /// An annotation at no particular place.
    pub fn new(level: &str, message: String) -> Annotation {
        Annotation {
            level: level.into(),
            message,
            title: None,
            file: None,
            line: None,
            end_line: None,
            col: None,
            end_column: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddMask(String),
    Group(String),
    EndGroup,
    Annotate(Annotation),
    Debug(String),
    StopCommands,
    ResumeCommands,
    SetOutput {
        name: String,
        value: String,
    },
    SaveState {
        name: String,
        value: String,
    },
    SetEnv {
        name: String,
        value: String,
    },
    AddPath(String),
    /// Understood and without effect here: problem matchers (`add-matcher`,
    /// `remove-matcher`), `echo`.
    Ignored,
}

/// Tracks `::stop-commands::TOKEN` … `::TOKEN::`.
pub(super) struct CommandState {
    stopped_until: Option<String>,
    /// `ACTIONS_STEP_DEBUG=true`: `::debug::` lines are shown (GitHub hides them otherwise).
    pub debug: bool,
    /// `ACTIONS_ALLOW_UNSECURE_COMMANDS=true`: `::set-env::` and `::add-path::` work.
    unsecure_allowed: bool,
}

impl CommandState {
    pub(super) fn new(unsecure_allowed: bool) -> CommandState {
        CommandState {
            stopped_until: None,
            debug: false,
            unsecure_allowed,
        }
    }

    pub(super) fn unsecure_allowed(&self) -> bool {
        self.unsecure_allowed
    }

    /// The command on this line, if commands are enabled and the line is one.
    pub(super) fn interpret(&mut self, line: &str) -> Option<Command> {
        if let Some(token) = &self.stopped_until {
            if line.trim() == format!("::{token}::") {
                self.stopped_until = None;
                return Some(Command::ResumeCommands);
            }
            return None;
        }
        let cmd = parse_command(line)?;
        if let Command::StopCommands = cmd {
            let token = line.trim().strip_prefix("::stop-commands::").unwrap_or("");
            if !token.is_empty() {
                self.stopped_until = Some(token.to_string());
            }
        }
        Some(cmd)
    }
}

/// Parses `::name key=value,key=value::message`.
pub fn parse_command(line: &str) -> Option<Command> {
    let rest = line.trim_start().strip_prefix("::")?;
    let end = rest.find("::")?;
    let (head, message) = (&rest[..end], &rest[end + 2..]);
    let (name, props) = match head.split_once(' ') {
        Some((n, p)) => (n, p),
        None => (head, ""),
    };
    let message = unescape_data(message);
    Some(match name {
        "add-mask" => Command::AddMask(message),
        "group" => Command::Group(message),
        "endgroup" => Command::EndGroup,
        "debug" => Command::Debug(message),
        "stop-commands" => Command::StopCommands,
        "add-path" => Command::AddPath(message),
        "add-matcher" | "remove-matcher" | "echo" => Command::Ignored,
        "set-output" | "save-state" | "set-env" => {
            let name = props
                .split(',')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "name")
                .map(|(_, v)| unescape_property(v.trim()))?;
            let value = message;
            match head.split(' ').next() {
                Some("set-output") => Command::SetOutput { name, value },
                Some("save-state") => Command::SaveState { name, value },
                _ => Command::SetEnv { name, value },
            }
        }
        "error" | "warning" | "notice" => {
            let mut a = Annotation::new(name, message);
            for prop in props.split(',').filter(|p| !p.is_empty()) {
                let Some((k, v)) = prop.split_once('=') else {
                    continue;
                };
                let v = unescape_property(v.trim());
                match k.trim() {
                    "title" => a.title = Some(v),
                    "file" => a.file = Some(v),
                    "line" => a.line = v.parse().ok(),
                    "endLine" => a.end_line = v.parse().ok(),
                    "col" => a.col = v.parse().ok(),
                    "endColumn" => a.end_column = v.parse().ok(),
                    _ => {}
                }
            }
            Command::Annotate(a)
        }
        _ => return None,
    })
}

fn unescape_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}
