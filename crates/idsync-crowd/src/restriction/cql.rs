//! The Crowd Query Language, as Crowd's grammar has it:
//!
//! ```text
//! restriction := or
//! or          := and ( OR and )*
//! and         := primary ( AND primary )*
//! primary     := '(' or ')' | term ( '=' | '<' | '>' ) term
//! term        := unquoted | "double quoted" | 'single quoted'
//! ```
//!
//! `and`/`or` are keywords in any case; an unquoted term stops at white space and at
//! `" ' = ! < > ( ) , [ ] | &`; quoted terms take backslash escapes (`\t \n \r \" \' \\ \  \uXXXX`).

use super::{bad, MatchMode, PropertyType, Restriction, MAX_DEPTH};
use crate::error::CrowdError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Term(String),
    Eq,
    Lt,
    Gt,
    LParen,
    RParen,
    And,
    Or,
}

fn is_stop(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '"' | '\'' | '=' | '!' | '<' | '>' | '(' | ')' | ',' | '[' | ']' | '|' | '&'
        )
}

fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, CrowdError> {
    let invalid = || bad("Search restriction is invalid: a bad escape");
    match chars.next().ok_or_else(invalid)? {
        't' => Ok('\t'),
        'n' => Ok('\n'),
        'r' => Ok('\r'),
        '"' => Ok('"'),
        '\'' => Ok('\''),
        '\\' => Ok('\\'),
        ' ' => Ok(' '),
        'u' => {
            let mut code = 0u32;
            for _ in 0..4 {
                let d = chars
                    .next()
                    .and_then(|c| c.to_digit(16))
                    .ok_or_else(invalid)?;
                code = code * 16 + d;
            }
            char::from_u32(code).ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, CrowdError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                tokens.push(Token::Eq);
            }
            '<' => {
                chars.next();
                tokens.push(Token::Lt);
            }
            '>' => {
                chars.next();
                tokens.push(Token::Gt);
            }
            '(' => {
                chars.next();
                tokens.push(Token::LParen);
            }
            ')' => {
                chars.next();
                tokens.push(Token::RParen);
            }
            '"' | '\'' => {
                let quote = c;
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(bad("Search restriction is invalid: an unclosed quote"))
                        }
                        Some(q) if q == quote => break,
                        Some('\\') => s.push(escape(&mut chars)?),
                        Some(ch) if ch.is_control() && ch != '\n' && ch != '\r' => {
                            return Err(bad(
                                "Search restriction is invalid: a control character in a quoted value",
                            ))
                        }
                        Some(ch) => s.push(ch),
                    }
                }
                tokens.push(Token::Term(s));
            }
            c if is_stop(c) => {
                return Err(bad(format!(
                    "Search restriction is invalid: unexpected {c:?}"
                )));
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch == '\\' {
                        chars.next();
                        s.push(escape(&mut chars)?);
                    } else if is_stop(ch) {
                        break;
                    } else {
                        s.push(ch);
                        chars.next();
                    }
                }
                if s.eq_ignore_ascii_case("and") {
                    tokens.push(Token::And);
                } else if s.eq_ignore_ascii_case("or") {
                    tokens.push(Token::Or);
                } else {
                    tokens.push(Token::Term(s));
                }
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self, depth: usize) -> Result<Restriction, CrowdError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Restriction::All)
        } else {
            Restriction::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Restriction, CrowdError> {
        let mut parts = vec![self.primary(depth)?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            parts.push(self.primary(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Restriction::All)
        } else {
            Restriction::And(parts)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Restriction, CrowdError> {
        match self.next() {
            Some(Token::LParen) => {
                if depth >= MAX_DEPTH {
                    return Err(bad(format!(
                        "Search restriction is invalid: nested deeper than {MAX_DEPTH}"
                    )));
                }
                let inner = self.or(depth + 1)?;
                match self.next() {
                    Some(Token::RParen) => Ok(inner),
                    _ => Err(bad("Search restriction is invalid: a missing ')'")),
                }
            }
            Some(Token::Term(key)) => {
                let op = self.next();
                let value = match self.next() {
                    Some(Token::Term(v)) => v,
                    _ => {
                        return Err(bad(format!(
                            "Search restriction is invalid: {key:?} is compared with nothing"
                        )))
                    }
                };
                let kind = PropertyType::of(&key);
                let mode = match op {
                    Some(Token::Eq) => equality_mode(kind, &value),
                    Some(Token::Lt) => MatchMode::LessThan,
                    Some(Token::Gt) => MatchMode::GreaterThan,
                    _ => {
                        return Err(bad(format!(
                            "Search restriction is invalid: {key:?} is not followed by =, < or >"
                        )))
                    }
                };
                let value = if kind == PropertyType::String {
                    value.trim_matches('*').to_string()
                } else {
                    value
                };
                Restriction::property(&key, kind, mode, Some(&value))
            }
            _ => Err(bad(
                "Search restriction is invalid: expected a property or '('",
            )),
        }
    }
}

/// `=` with wildcards: `*x*` CONTAINS, `x*` STARTS_WITH, `*x` ENDS_WITH.
fn equality_mode(kind: PropertyType, value: &str) -> MatchMode {
    if kind != PropertyType::String || value.trim().is_empty() {
        return MatchMode::ExactlyMatches;
    }
    let starts = value.starts_with('*');
    let ends = value.ends_with('*') && value.len() > 1;
    match (starts, ends) {
        (true, true) => MatchMode::Contains,
        (false, true) => MatchMode::StartsWith,
        (true, false) if value.len() > 1 => MatchMode::EndsWith,
        // A lone `*` matches everything: contains "".
        (true, false) => MatchMode::Contains,
        (false, false) => MatchMode::ExactlyMatches,
    }
}

pub fn parse(text: &str) -> Result<Restriction, CrowdError> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Ok(Restriction::All);
    }
    let mut parser = Parser { tokens, pos: 0 };
    let r = parser.or(0)?;
    if parser.pos != parser.tokens.len() {
        return Err(bad(
            "Search restriction is invalid: unexpected text after the restriction",
        ));
    }
    Ok(r)
}
