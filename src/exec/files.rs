//! The `KEY=value` / heredoc (`KEY<<DELIM` … `DELIM`) format of `GITHUB_ENV` and `GITHUB_OUTPUT`.

use indexmap::IndexMap;

pub fn parse_key_values(text: &str) -> Result<IndexMap<String, String>, String> {
    let mut out = IndexMap::new();
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let name = &line[..e];
                check_name(name)?;
                out.insert(name.to_string(), line[e + 1..].to_string());
            }
            (_, Some(h)) => {
                let name = &line[..h];
                let delimiter = &line[h + 2..];
                check_name(name)?;
                if delimiter.is_empty() {
                    return Err(format!("`{name}<<` needs a delimiter"));
                }
                let mut value: Vec<&str> = Vec::new();
                loop {
                    match lines.next() {
                        Some(l) if l == delimiter => break,
                        Some(l) => value.push(l),
                        None => {
                            return Err(format!(
                                "delimiter `{delimiter}` for `{name}` is never closed"
                            ));
                        }
                    }
                }
                out.insert(name.to_string(), value.join("\n"));
            }
            _ => {
                return Err(format!(
                    "invalid line `{line}`: expected NAME=value or NAME<<DELIMITER"
                ));
            }
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    Ok(())
}
