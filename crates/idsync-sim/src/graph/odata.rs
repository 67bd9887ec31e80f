//! The OData query options the simulator understands: `$filter` (comparisons, `in`,
//! `startswith`/`endswith`, `and`/`or`/`not`, brackets, and `any` lambdas over collections such
//! as `identities`), and `$select`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp(Vec<String>, Op, Value),
    In(Vec<String>, Vec<Value>),
    StartsWith(Vec<String>, String),
    EndsWith(Vec<String>, String),
    Any(Vec<String>, String, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Colon,
    Slash,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            '/' => {
                out.push(Tok::Slash);
                i += 1;
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match cs.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if cs.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < cs.len()
                    && (cs[i].is_ascii_alphanumeric() || cs[i] == '.' || cs[i] == '-')
                {
                    i += 1;
                }
                let text: String = cs[start..i].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) => out.push(Tok::Num(n)),
                    // An unquoted GUID or date: kept as a string literal.
                    Err(_) => out.push(Tok::Str(text)),
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '@' || c == '$' => {
                let start = i;
                while i < cs.len()
                    && (cs[i].is_alphanumeric() || matches!(cs[i], '_' | '.' | '@' | '$'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(cs[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected character '{c}'")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(k))
    }
    fn expect(&mut self, t: Tok) -> Result<(), String> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(format!("expected {t:?}, found {other:?}")),
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("the filter is nested too deeply".into());
        }
        let mut l = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        self.depth -= 1;
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let r = self.unary()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err("the filter is nested too deeply".into());
            }
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }
    fn path(&mut self, first: String) -> Vec<String> {
        let mut p = vec![first];
        while self.peek() == Some(&Tok::Slash) {
            if let Some(Tok::Ident(next)) = self.toks.get(self.pos + 1).cloned() {
                if next.eq_ignore_ascii_case("any") {
                    break;
                }
                self.pos += 2;
                p.push(next);
            } else {
                break;
            }
        }
        p
    }
    fn literal(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Num(n)) => {
                Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
            }
            Some(Tok::Ident(i)) if i == "true" => Ok(Value::Bool(true)),
            Some(Tok::Ident(i)) if i == "false" => Ok(Value::Bool(false)),
            Some(Tok::Ident(i)) if i == "null" => Ok(Value::Null),
            other => Err(format!("expected a literal, found {other:?}")),
        }
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Ident(f))
                if (f.eq_ignore_ascii_case("startswith") || f.eq_ignore_ascii_case("endswith"))
                    && self.peek() == Some(&Tok::LParen) =>
            {
                self.pos += 1;
                let Some(Tok::Ident(first)) = self.next() else {
                    return Err(format!("{f} needs a property"));
                };
                let path = self.path(first);
                self.expect(Tok::Comma)?;
                let Value::String(s) = self.literal()? else {
                    return Err(format!("{f} needs a string"));
                };
                self.expect(Tok::RParen)?;
                Ok(if f.eq_ignore_ascii_case("startswith") {
                    Expr::StartsWith(path, s)
                } else {
                    Expr::EndsWith(path, s)
                })
            }
            Some(Tok::Ident(first)) => {
                let path = self.path(first);
                if self.peek() == Some(&Tok::Slash) {
                    // path/any(v: expr)
                    self.pos += 1;
                    match self.next() {
                        Some(Tok::Ident(a)) if a.eq_ignore_ascii_case("any") => {}
                        other => return Err(format!("expected any, found {other:?}")),
                    }
                    self.expect(Tok::LParen)?;
                    let Some(Tok::Ident(var)) = self.next() else {
                        return Err("any needs a variable".into());
                    };
                    self.expect(Tok::Colon)?;
                    let body = self.or()?;
                    self.expect(Tok::RParen)?;
                    return Ok(Expr::Any(path, var, Box::new(body)));
                }
                let Some(Tok::Ident(op)) = self.next() else {
                    return Err(format!("expected an operator after {}", path.join("/")));
                };
                let op = match op.to_ascii_lowercase().as_str() {
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "lt" => Op::Lt,
                    "le" => Op::Le,
                    "in" => {
                        self.expect(Tok::LParen)?;
                        let mut vals = vec![self.literal()?];
                        while self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                            vals.push(self.literal()?);
                        }
                        self.expect(Tok::RParen)?;
                        return Ok(Expr::In(path, vals));
                    }
                    other => return Err(format!("unsupported operator '{other}'")),
                };
                Ok(Expr::Cmp(path, op, self.literal()?))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// Parse a `$filter` expression.
pub fn parse_filter(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(format!("unexpected {:?}", p.toks[p.pos]));
    }
    Ok(e)
}

fn lookup<'a>(
    obj: &'a Value,
    path: &[String],
    var: Option<(&str, &'a Value)>,
) -> Option<&'a Value> {
    let (mut cur, rest) = match (var, path.first()) {
        (Some((name, v)), Some(first)) if first == name => (v, &path[1..]),
        _ => (obj, path),
    };
    for seg in rest {
        cur = cur
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(seg))
            .map(|(_, v)| v)?;
    }
    Some(cur)
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        _ => None,
    }
}

fn eval_in<'a>(e: &Expr, obj: &'a Value, var: Option<(&str, &'a Value)>) -> bool {
    use std::cmp::Ordering::*;
    match e {
        Expr::Cmp(p, op, lit) => {
            let v = lookup(obj, p, var).unwrap_or(&Value::Null);
            let ord = compare(v, lit);
            match op {
                Op::Eq => ord == Some(Equal),
                Op::Ne => ord != Some(Equal),
                Op::Gt => ord == Some(Greater),
                Op::Ge => matches!(ord, Some(Greater | Equal)),
                Op::Lt => ord == Some(Less),
                Op::Le => matches!(ord, Some(Less | Equal)),
            }
        }
        Expr::In(p, vals) => {
            let v = lookup(obj, p, var).unwrap_or(&Value::Null);
            vals.iter().any(|x| compare(v, x) == Some(Equal))
        }
        Expr::StartsWith(p, s) => lookup(obj, p, var)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase().starts_with(&s.to_lowercase())),
        Expr::EndsWith(p, s) => lookup(obj, p, var)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase().ends_with(&s.to_lowercase())),
        Expr::Any(p, name, body) => lookup(obj, p, var)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|it| eval_in(body, obj, Some((name, it))))),
        Expr::And(a, b) => eval_in(a, obj, var) && eval_in(b, obj, var),
        Expr::Or(a, b) => eval_in(a, obj, var) || eval_in(b, obj, var),
        Expr::Not(a) => !eval_in(a, obj, var),
    }
}

/// Whether an object (as JSON) passes a filter.
pub fn eval(e: &Expr, obj: &Value) -> bool {
    eval_in(e, obj, None)
}

/// Whether a filter needs advanced query capabilities (`ConsistencyLevel: eventual` and
/// `$count`): `endswith`, `ne` and `not`, as on the real service.
pub fn is_advanced(e: &Expr) -> bool {
    match e {
        Expr::EndsWith(..) | Expr::Not(_) => true,
        Expr::Cmp(_, Op::Ne, _) => true,
        Expr::And(a, b) | Expr::Or(a, b) => is_advanced(a) || is_advanced(b),
        Expr::Any(_, _, b) => is_advanced(b),
        _ => false,
    }
}

/// The properties `$select` names (empty: the default set).
pub fn parse_select(s: Option<&str>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// Project an object: `select` names the properties (`id` always comes); without it the
/// default properties are returned. Selected properties the object lacks come as null, as the
/// real service returns them.
pub fn project(
    props: &Map<String, Value>,
    select: &[String],
    defaults: &[&str],
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(id) = props.get("id") {
        out.insert("id".into(), id.clone());
    }
    let names: Vec<&str> = if select.is_empty() {
        defaults.to_vec()
    } else {
        select.iter().map(String::as_str).collect()
    };
    for name in names {
        if name == "id" || name == "manager" {
            continue;
        }
        let found = props.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
        match found {
            Some((k, v)) => out.insert(k.clone(), v.clone()),
            None => out.insert(name.to_string(), Value::Null),
        };
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_the_source_and_sdk_use() {
        let u = json!({"id": "1", "displayName": "Ada Lovelace", "accountEnabled": true, "mail": null,
            "identities": [{"signInType": "emailAddress", "issuer": "c.onmicrosoft.com", "issuerAssignedId": "ada@example.net"}]});
        let t = |f: &str| eval(&parse_filter(f).unwrap(), &u);
        assert!(t("displayName eq 'ada lovelace'"));
        assert!(t("startswith(displayName,'Ada')"));
        assert!(!t("startswith(displayName,'Grace')"));
        assert!(t("accountEnabled eq true and mail eq null"));
        assert!(t("id in ('2', '1')"));
        assert!(t("not (displayName eq 'x') or id eq '9'"));
        assert!(t("identities/any(c:c/issuerAssignedId eq 'ada@example.net' and c/issuer eq 'c.onmicrosoft.com')"));
        assert!(!t(
            "identities/any(c:c/issuerAssignedId eq 'bob@example.net')"
        ));
        assert!(parse_filter("displayName eq").is_err());
        assert!(parse_filter("(((").is_err());
        assert!(parse_filter(&"(".repeat(10_000)).is_err());
    }
}
