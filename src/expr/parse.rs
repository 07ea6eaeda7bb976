//! Lexer and recursive-descent parser for the expression grammar; errors carry the byte
//! offset inside the expression so diagnostics can point at the exact column.

use super::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    /// A named value (`github`, `matrix`, …) at `offset`.
    Context {
        name: String,
        offset: usize,
    },
    Index(Box<Expr>, Box<Expr>),
    /// `.*` / `[*]`: the object's values or the array's items, for further property access.
    Star(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call {
        name: String,
        args: Vec<Expr>,
        offset: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Punct(&'static str),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset, message: &str| ExprError {
        offset,
        message: message.to_string(),
    };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match src[i..].find('\'') {
                        None => return Err(err(start, "unterminated string literal")),
                        Some(j) => {
                            s.push_str(&src[i..i + j]);
                            i += j + 1;
                            if bytes.get(i) == Some(&b'\'') {
                                s.push('\'');
                                i += 1;
                            } else {
                                break;
                            }
                        }
                    }
                }
                out.push((Tok::Str(s), start));
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'.' | b'_'))
                    || (j < bytes.len()
                        && matches!(bytes[j], b'-' | b'+')
                        && matches!(bytes[j - 1], b'e' | b'E'))
                {
                    j += 1;
                }
                let text = &src[i..j];
                let number = parse_literal_number(text)
                    .ok_or_else(|| err(start, &format!("invalid number `{text}`")))?;
                out.push((Tok::Num(number), start));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'_' | b'-'))
                {
                    j += 1;
                }
                out.push((Tok::Ident(src[i..j].to_string()), start));
                i = j;
            }
            _ => {
                const PUNCT: [&str; 16] = [
                    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ".",
                    ",", "*",
                ];
                let Some(p) = PUNCT.iter().find(|p| src[i..].starts_with(**p)) else {
                    let ch = src[i..].chars().next().unwrap_or('?');
                    return Err(err(start, &format!("unexpected character `{ch}`")));
                };
                out.push((Tok::Punct(p), start));
                i += p.len();
            }
        }
    }
    Ok(out)
}

fn parse_literal_number(text: &str) -> Option<f64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let v = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()? as f64
    } else if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()? as f64
    } else if body.eq_ignore_ascii_case("infinity") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else if body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        body.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
    depth: usize,
}

/// Parses an expression (the text between `${{` and `}}`, or a bare `if:`).
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(ExprError {
            offset: 0,
            message: "empty expression".into(),
        });
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.len(),
        depth: 0,
    };
    let e = p.or()?;
    if let Some((t, off)) = p.toks.get(p.pos) {
        return Err(ExprError {
            offset: *off,
            message: format!("unexpected {} after the end of the expression", describe(t)),
        });
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Num(n) => format!("number `{n}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Punct(p) => format!("`{p}`"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, o)| *o)
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), ExprError> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{p}`")))
        }
    }

    fn error(&self, what: &str) -> ExprError {
        let found = self
            .peek()
            .map_or_else(|| "the end of the expression".to_string(), describe);
        ExprError {
            offset: self.offset(),
            message: format!("{what}, found {found}"),
        }
    }

    fn binary(
        &mut self,
        ops: &[(&str, BinOp)],
        next: fn(&mut Self) -> Result<Expr, ExprError>,
    ) -> Result<Expr, ExprError> {
        let mut lhs = next(self)?;
        'outer: loop {
            for (text, op) in ops {
                if self.eat(text) {
                    let rhs = next(self)?;
                    lhs = Expr::Binary(*op, Box::new(lhs), Box::new(rhs));
                    continue 'outer;
                }
            }
            return Ok(lhs);
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("||", BinOp::Or)], Self::and)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("&&", BinOp::And)], Self::equality)
    }

    fn equality(&mut self) -> Result<Expr, ExprError> {
        self.binary(&[("==", BinOp::Eq), ("!=", BinOp::Ne)], Self::comparison)
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        self.binary(
            &[
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            Self::unary,
        )
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                if self.eat("*") {
                    e = Expr::Star(Box::new(e));
                    continue;
                }
                match self.peek().cloned() {
                    Some(Tok::Ident(name)) => {
                        self.pos += 1;
                        e = Expr::Index(Box::new(e), Box::new(Expr::Literal(Value::String(name))));
                    }
                    _ => return Err(self.error("expected a property name after `.`")),
                }
            } else if self.eat("[") {
                if self.eat("*") {
                    self.expect("]")?;
                    e = Expr::Star(Box::new(e));
                    continue;
                }
                let index = self.or()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > 100 {
            return Err(self.error("expression nested too deeply"));
        }
        let offset = self.offset();
        let result = match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Literal(Value::Number(n)))
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Literal(Value::String(s)))
            }
            Some(Tok::Punct("(")) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            if !self.eat(",") {
                                return Err(self.error("expected `,` or `)` in the argument list"));
                            }
                        }
                    }
                    Ok(Expr::Call { name, args, offset })
                } else {
                    Ok(match name.as_str() {
                        "true" => Expr::Literal(Value::Bool(true)),
                        "false" => Expr::Literal(Value::Bool(false)),
                        "null" => Expr::Literal(Value::Null),
                        "NaN" => Expr::Literal(Value::Number(f64::NAN)),
                        "Infinity" => Expr::Literal(Value::Number(f64::INFINITY)),
                        _ => Expr::Context { name, offset },
                    })
                }
            }
            _ => Err(self.error("expected a value")),
        };
        self.depth -= 1;
        result
    }
}
