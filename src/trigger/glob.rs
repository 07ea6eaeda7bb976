//! GitHub's filter patterns (branches, tags, paths): `*` stops at `/`, `**` crosses it,
//! `?`/`+` repeat the preceding character, `[]` classes, `\` escapes, leading `!` negates.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub negated: bool,
    regex: Regex,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError {
    /// Byte offset inside the pattern.
    pub offset: usize,
    pub message: String,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, GlobError> {
        let (negated, body, shift) = match source.strip_prefix('!') {
            Some(rest) => (true, rest, 1),
            None => (false, source, 0),
        };
        let regex = to_regex(body).map_err(|mut e| {
            e.offset += shift;
            e
        })?;
        Ok(Pattern {
            source: source.to_string(),
            negated,
            regex,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

fn to_regex(pattern: &str) -> Result<Regex, GlobError> {
    let err = |offset, message: &str| GlobError {
        offset,
        message: message.to_string(),
    };
    if pattern.is_empty() {
        return Err(err(0, "empty pattern"));
    }
    let chars: Vec<(usize, char)> = pattern.char_indices().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let (offset, c) = chars[i];
        match c {
            '*' if chars.get(i + 1).map(|c| c.1) == Some('*') => {
                if chars.get(i + 2).map(|c| c.1) == Some('/') {
                    re.push_str("(?:.+/)?");
                    i += 3;
                } else {
                    re.push_str(".*");
                    i += 2;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                i += 1;
            }
            '?' | '+' => {
                if i == 0 {
                    re.push_str(&regex::escape(&c.to_string()));
                } else {
                    re.push(c);
                }
                i += 1;
            }
            '[' => {
                let start = i;
                i += 1;
                let mut class = String::from("[");
                if chars.get(i).map(|c| c.1) == Some(']') {
                    return Err(err(offset, "empty character class `[]`"));
                }
                while i < chars.len() && chars[i].1 != ']' {
                    let (o, ch) = chars[i];
                    if ch == '-' {
                        let prev = chars.get(i.wrapping_sub(1)).map(|c| c.1);
                        let next = chars.get(i + 1).map(|c| c.1);
                        let ok = match (prev, next) {
                            (Some(a), Some(b)) if i > start + 1 && b != ']' => {
                                a <= b
                                    && [('a', 'z'), ('A', 'Z'), ('0', '9')].iter().any(
                                        |(lo, hi)| {
                                            (*lo..=*hi).contains(&a) && (*lo..=*hi).contains(&b)
                                        },
                                    )
                            }
                            _ => false,
                        };
                        if !ok {
                            return Err(err(o, "ranges can only include a-z, A-Z and 0-9"));
                        }
                        class.push('-');
                    } else if ch.is_ascii_alphanumeric() {
                        class.push(ch);
                    } else {
                        return Err(err(
                            o,
                            "character classes can only include a-z, A-Z and 0-9",
                        ));
                    }
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(err(offset, "missing `]` to close the character class"));
                }
                class.push(']');
                re.push_str(&class);
                i += 1;
            }
            '\\' => match chars.get(i + 1) {
                Some((_, next)) => {
                    re.push_str(&regex::escape(&next.to_string()));
                    i += 2;
                }
                None => {
                    return Err(err(
                        offset,
                        "`\\` at the end of the pattern escapes nothing",
                    ));
                }
            },
            c => {
                re.push_str(&regex::escape(&c.to_string()));
                i += 1;
            }
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| err(0, &format!("invalid pattern: {e}")))
}

/// An ordered list of patterns where the last matching one wins.
#[derive(Debug, Clone, Default)]
pub struct PatternList {
    pub patterns: Vec<Pattern>,
}

impl PatternList {
    /// Whether `text` is selected: the last pattern that matches decides (`!` deselects).
    pub fn selects(&self, text: &str) -> bool {
        self.patterns
            .iter()
            .rev()
            .find(|p| p.is_match(text))
            .is_some_and(|p| !p.negated)
    }

    pub fn describe(&self) -> String {
        let items: Vec<&str> = self.patterns.iter().map(|p| p.source.as_str()).collect();
        format!("[{}]", items.join(", "))
    }
}
