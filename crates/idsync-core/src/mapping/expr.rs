//! The expression language of attribute mappings, in Microsoft Entra's syntax, so expressions
//! written for Entra's provisioning service work here unchanged:
//!
//! ```text
//! Join(" ", [givenName], [surname])
//! IIF([country]="US", ToUpper([department]), [department])
//! Replace([mail], , "(?<Suffix>@(.)*)", "Suffix", "", , )
//! ```
//!
//! An expression is a function call, an attribute in brackets, a string in double quotes (a
//! double quote inside is written `\"`), a number, `true` / `false`, or two of these compared
//! with `=` or `<>`. Arguments may be left empty (`f(a, , c)`). There are no loops and no
//! recursion: every expression ends.

use std::fmt;

/// A parsed expression. Positions are 1-based character columns in the source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Num(f64),
    Bool(bool),
    Attr {
        name: String,
        pos: usize,
    },
    Call {
        name: String,
        args: Vec<Option<Expr>>,
        pos: usize,
    },
    Compare {
        left: Box<Expr>,
        right: Box<Expr>,
        equal: bool,
    },
}

/// What is wrong with an expression, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: {message}")]
pub struct ExprError {
    pub column: usize,
    pub message: String,
}

/// Deepest nesting of calls accepted (no input may exhaust the stack).
const MAX_DEPTH: usize = 64;

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn err<T>(&self, column: usize, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            column,
            message: message.into(),
        })
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.at).copied()
    }

    /// An argument or a whole expression: a term, maybe compared with another.
    fn comparison(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let left = self.term(depth)?;
        let equal = match self.peek() {
            Some('=') => {
                self.at += 1;
                true
            }
            Some('<') if self.chars.get(self.at + 1) == Some(&'>') => {
                self.at += 2;
                false
            }
            Some('!') if self.chars.get(self.at + 1) == Some(&'=') => {
                self.at += 2;
                false
            }
            _ => return Ok(left),
        };
        let right = self.term(depth)?;
        Ok(Expr::Compare {
            left: Box::new(left),
            right: Box::new(right),
            equal,
        })
    }

    fn term(&mut self, depth: usize) -> Result<Expr, ExprError> {
        if depth > MAX_DEPTH {
            return self.err(self.at + 1, "nested too deeply");
        }
        let start = self.at + 1;
        match self.peek() {
            None => self.err(start, "expected an expression, found the end"),
            Some('"') => {
                self.at += 1;
                let mut s = String::new();
                loop {
                    match self.chars.get(self.at) {
                        None => return self.err(start, "a string is not closed with '\"'"),
                        Some('\\') if self.chars.get(self.at + 1) == Some(&'"') => {
                            s.push('"');
                            self.at += 2;
                        }
                        Some('\\') if self.chars.get(self.at + 1) == Some(&'\\') => {
                            s.push('\\');
                            self.at += 2;
                        }
                        Some('"') => {
                            self.at += 1;
                            return Ok(Expr::Str(s));
                        }
                        Some(c) => {
                            s.push(*c);
                            self.at += 1;
                        }
                    }
                }
            }
            Some('[') => {
                let pos = self.at + 1;
                self.at += 1;
                let from = self.at;
                // Attribute paths may hold brackets and quotes: [emails[type eq "work"].value].
                let (mut depth, mut quoted) = (0usize, false);
                loop {
                    match self.chars.get(self.at) {
                        None => return self.err(pos, "an attribute is not closed with ']'"),
                        Some('"') => quoted = !quoted,
                        Some('[') if !quoted => depth += 1,
                        Some(']') if !quoted && depth == 0 => break,
                        Some(']') if !quoted => depth -= 1,
                        _ => {}
                    }
                    self.at += 1;
                }
                let name: String = self.chars[from..self.at].iter().collect();
                self.at += 1;
                let name = name.trim().to_string();
                if name.is_empty() {
                    return self.err(pos, "an empty attribute name");
                }
                Ok(Expr::Attr { name, pos })
            }
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let from = self.at;
                self.at += 1;
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    self.at += 1;
                }
                let text: String = self.chars[from..self.at].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) => Ok(Expr::Num(n)),
                    Err(_) => self.err(start, format!("{text:?} is not a number")),
                }
            }
            Some(c) if c.is_alphabetic() => {
                let pos = self.at + 1;
                let from = self.at;
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    self.at += 1;
                }
                let name: String = self.chars[from..self.at].iter().collect();
                match name.to_ascii_lowercase().as_str() {
                    "true" => return Ok(Expr::Bool(true)),
                    "false" => return Ok(Expr::Bool(false)),
                    _ => {}
                }
                if self.peek() != Some('(') {
                    return self.err(
                        pos,
                        format!("{name:?} is neither a function call nor [an attribute] nor \"a string\""),
                    );
                }
                self.at += 1;
                let mut args = Vec::new();
                if self.peek() == Some(')') {
                    self.at += 1;
                    return Ok(Expr::Call { name, args, pos });
                }
                loop {
                    // An empty argument: `f(a, , c)` or `f(a, )`.
                    match self.peek() {
                        Some(',') | Some(')') => args.push(None),
                        _ => args.push(Some(self.comparison(depth + 1)?)),
                    }
                    match self.peek() {
                        Some(',') => self.at += 1,
                        Some(')') => {
                            self.at += 1;
                            return Ok(Expr::Call { name, args, pos });
                        }
                        Some(x) => {
                            return self.err(
                                self.at + 1,
                                format!("expected ',' or ')' in the call of {name}, found '{x}'"),
                            )
                        }
                        None => {
                            return self
                                .err(pos, format!("the call of {name} is not closed with ')'"))
                        }
                    }
                }
            }
            Some(c) => self.err(start, format!("unexpected '{c}'")),
        }
    }
}

/// Parse an expression (syntax only; [`super::compile`] also checks functions and arity).
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let e = p.comparison(0)?;
    match p.peek() {
        None => Ok(e),
        Some(c) => p.err(
            p.at + 1,
            format!("unexpected '{c}' after the end of the expression"),
        ),
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Str(s) => write!(f, "\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            Expr::Num(n) => write!(f, "{n}"),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Attr { name, .. } => write!(f, "[{name}]"),
            Expr::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if let Some(a) = a {
                        write!(f, "{a}")?;
                    }
                }
                f.write_str(")")
            }
            Expr::Compare { left, right, equal } => {
                write!(f, "{left}{}{right}", if *equal { "=" } else { "<>" })
            }
        }
    }
}
