//! `shell:` → the command line, as GitHub's runner builds it (the script goes in a file).

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct ShellError(pub String);

impl std::fmt::Display for ShellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn on_path(program: &str) -> bool {
    which(program).is_some()
}

/// The absolute path of a program on this process's PATH (the shells are looked up once:
/// handing the child a bare name makes it try every PATH entry on every step).
fn which(program: &str) -> Option<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<PathBuf>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(program.to_string())
        .or_insert_with(|| {
            let paths = std::env::var_os("PATH")?;
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .clone()
}

/// Shell builtins and keywords: a script starting with one needs the shell.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// The simple-command fast path: a one-line script of plain words (no quoting, expansion,
/// redirection, globbing or builtins) runs as `argv` directly. bash would fork and exec the
/// very same argv with the same environment, so the output and exit status are identical;
/// only the shell's ~3 ms start-up is saved. `None` when the shell is needed.
pub(super) fn direct_argv(
    shell: Option<&str>,
    script: &str,
    env: &indexmap::IndexMap<String, String>,
) -> Option<Vec<String>> {
    if !matches!(shell.map(str::trim), None | Some("" | "bash" | "sh")) {
        return None;
    }
    // Start-up files would run before the command.
    if env.contains_key("BASH_ENV") || env.contains_key("ENV") {
        return None;
    }
    let line = script.trim();
    if line.is_empty() || line.contains('\n') {
        return None;
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./-=:,+@%".contains(c);
    if !line.chars().all(|c| plain(c) || c == ' ') {
        return None;
    }
    let argv: Vec<String> = line
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    let first = argv.first()?;
    if first.contains('=') || BUILTINS.contains(&first.as_str()) {
        return None;
    }
    let program = if first.contains('/') {
        Path::new(first).is_file().then(|| first.clone())?
    } else {
        let path = env.get("PATH")?;
        std::env::split_paths(path)
            .map(|d| d.join(first))
            .find(|p| p.is_file())?
            .display()
            .to_string()
    };
    let mut argv = argv;
    argv[0] = program;
    Some(argv)
}

/// Writes the script and returns `(program, args, script path)`.
pub fn shell_command(
    shell: Option<&str>,
    script: &str,
    dir: &Path,
    executor: &dyn super::Executor,
) -> Result<(String, Vec<String>, PathBuf), ShellError> {
    let on_path = |program: &str| executor.has(program);
    let (template, extension, body) = match shell.map(str::trim) {
        // GitHub's default when no shell is given: bash without pipefail, else sh.
        None | Some("") if on_path("bash") => ("bash -e {0}".to_string(), "sh", script.to_string()),
        None | Some("") => ("sh -e {0}".to_string(), "sh", script.to_string()),
        Some("bash") => (
            "bash --noprofile --norc -eo pipefail {0}".to_string(),
            "sh",
            script.to_string(),
        ),
        Some("sh") => ("sh -e {0}".to_string(), "sh", script.to_string()),
        Some("python") => {
            let python = if on_path("python") {
                "python"
            } else {
                "python3"
            };
            (format!("{python} {{0}}"), "py", script.to_string())
        }
        Some("pwsh") if on_path("pwsh") => (
            "pwsh -command \". '{0}'\"".to_string(),
            "ps1",
            format!(
                "$ErrorActionPreference = 'stop'\n{script}\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) {{ exit $LASTEXITCODE }}"
            ),
        ),
        Some("pwsh") => return Err(ShellError("shell `pwsh` is not installed".into())),
        Some(s @ ("cmd" | "powershell")) => {
            return Err(ShellError(format!(
                "shell `{s}` is only available on Windows"
            )));
        }
        Some(custom) if custom.contains("{0}") => (custom.to_string(), "sh", script.to_string()),
        Some(other) => {
            return Err(ShellError(format!(
                "unknown shell `{other}`: use bash, sh, python, pwsh or a command with `{{0}}`"
            )));
        }
    };
    let path = dir.join(format!("script.{extension}"));
    std::fs::write(&path, body).map_err(|e| ShellError(format!("cannot write the script: {e}")))?;
    let path_text = path.display().to_string();
    let mut parts = split_words(&template)?;

    for p in &mut parts {
        *p = p.replace("{0}", &path_text);
    }
    let mut parts = parts.into_iter();
    let program = parts
        .next()
        .ok_or_else(|| ShellError("empty shell".into()))?;
    // bash and sh resolve once, here, not by the child on every step. Other programs
    // (python, …) are left to the step's own PATH, which GITHUB_PATH may change.
    let program = match which(&program) {
        Some(path) if executor.is_host() && (program == "bash" || program == "sh") => {
            path.display().to_string()
        }
        _ => program,
    };
    Ok((program, parts.collect(), path))
}

/// Splits a shell template into words, honouring '…' and "…" quoting and `\\` escapes.
pub(crate) fn split_words(text: &str) -> Result<Vec<String>, ShellError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => word.extend(chars.next()),
                        Some(other) => word.push(other),
                        None => {
                            return Err(ShellError(format!("unterminated {c} in shell `{text}`")));
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}
