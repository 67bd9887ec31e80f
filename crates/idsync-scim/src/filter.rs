//! The SCIM filter grammar (RFC 7644 §3.4.2.2) and its evaluation.
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ```
//! Precedence: `not` and grouping bind tightest, then `and`, then `or`. Operators and keywords
//! are case-insensitive; attribute names too. Nesting is bounded so that no input can exhaust
//! the stack.

use crate::error::ScimError;
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

/// Deepest nesting of brackets, parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 32;
/// Longest filter accepted, in bytes.
pub const MAX_LEN: usize = 8192;

/// `[urn:]name[.sub]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    pub fn new(name: &str) -> Self {
        Self {
            urn: None,
            name: name.to_string(),
            sub: None,
        }
    }

    /// Parse `urn:...:name.sub`, `name.sub` or `name`.
    pub fn parse(s: &str) -> Result<Self, ScimError> {
        let bad = || ScimError::invalid_path(format!("{s:?} is not an attribute path"));
        let (urn, rest) =
            if s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
                let i = s.rfind(':').ok_or_else(bad)?;
                (Some(s[..i].to_string()), &s[i + 1..])
            } else {
                (None, s)
            };
        let (name, sub) = match rest.split_once('.') {
            Some((n, sub)) => (n, Some(sub)),
            None => (rest, None),
        };
        let valid = |n: &str| {
            let mut c = n.chars();
            matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '$')
                && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !valid(name) || sub.is_some_and(|s| !valid(s)) {
            return Err(bad());
        }
        Ok(Self {
            urn,
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        write!(f, "{}", self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

impl CompareOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "lt" => Self::Lt,
            "ge" => Self::Ge,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued attribute matches the inner filter.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Str(String),
    Word(String),
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>, ScimError> {
    let mut out = Vec::new();
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((i, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((i, Tok::RParen));
                i += 1;
            }
            b'[' => {
                out.push((i, Tok::LBracket));
                i += 1;
            }
            b']' => {
                out.push((i, Tok::RBracket));
                i += 1;
            }
            b'"' => {
                // A JSON string: find its end, honouring escapes, and let serde decode it.
                let start = i;
                i += 1;
                let mut closed = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                if !closed || i > bytes.len() {
                    return Err(ScimError::invalid_filter(format!(
                        "unterminated string at position {start}"
                    )));
                }
                let s: String = serde_json::from_str(&input[start..i]).map_err(|e| {
                    ScimError::invalid_filter(format!("bad string at position {start}: {e}"))
                })?;
                out.push((start, Tok::Str(s)));
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'[' | b']' | b'"'
                    )
                {
                    i += 1;
                }
                out.push((start, Tok::Word(input[start..i].to_string())));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |(p, _)| *p)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }
    fn err<T>(&self, what: &str) -> Result<T, ScimError> {
        Err(ScimError::invalid_filter(format!(
            "{what} at position {}",
            self.at()
        )))
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }
    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("filter nested too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") && matches!(self.toks.get(self.pos + 1), Some((_, Tok::LParen))) {
            self.pos += 2;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Tok::RParen) {
                return self.err("expected )");
            }
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Tok::RParen) {
                return self.err("expected )");
            }
            return Ok(inner);
        }
        self.attr_exp()
    }

    fn attr_exp(&mut self) -> Result<Filter, ScimError> {
        let Some(Tok::Word(word)) = self.peek().cloned() else {
            return self.err("expected an attribute path");
        };
        self.pos += 1;
        let path = AttrPath::parse(&word)
            .map_err(|_| ScimError::invalid_filter(format!("{word:?} is not an attribute path")))?;
        if self.peek() == Some(&Tok::LBracket) {
            if path.sub.is_some() {
                return self.err("a value filter must follow the attribute, not a sub-attribute");
            }
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Tok::RBracket) {
                return self.err("expected ]");
            }
            // `emails[type eq "work"].value` is a path, not a filter; but a filter may continue
            // with `and`/`or`/`)`.
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        let Some(Tok::Word(op)) = self.next() else {
            return self.err("expected an operator");
        };
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(&op) else {
            return self.err(&format!("unknown operator {op:?}"));
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(n) => Value::Number(n),
                    Err(_) => {
                        return self.err(&format!("{w:?} is not a value (strings take quotes)"))
                    }
                },
            },
            _ => return self.err("expected a value"),
        };
        Ok(Filter::Compare { path, op, value })
    }
}

impl Filter {
    /// Parse a filter.
    pub fn parse(input: &str) -> Result<Self, ScimError> {
        if input.len() > MAX_LEN {
            return Err(ScimError::invalid_filter(format!(
                "filter longer than {MAX_LEN} bytes"
            )));
        }
        let toks = tokenize(input)?;
        if toks.is_empty() {
            return Err(ScimError::invalid_filter("empty filter"));
        }
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
            len: input.len(),
        };
        let f = p.or()?;
        if p.pos < p.toks.len() {
            return p.err("unexpected input");
        }
        Ok(f)
    }

    /// Does the resource (a JSON object) match? `case_exact` says, for an attribute path,
    /// whether its strings compare case-sensitively.
    pub fn matches(&self, resource: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
        self.eval(resource, None, case_exact)
    }

    fn eval(&self, res: &Value, parent: Option<&AttrPath>, ce: &dyn Fn(&AttrPath) -> bool) -> bool {
        match self {
            Filter::And(a, b) => a.eval(res, parent, ce) && b.eval(res, parent, ce),
            Filter::Or(a, b) => a.eval(res, parent, ce) || b.eval(res, parent, ce),
            Filter::Not(a) => !a.eval(res, parent, ce),
            Filter::Present(path) => values(res, path).iter().any(|v| {
                !v.is_null() && v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
            }),
            Filter::Compare { path, op, value } => {
                let full = qualify(parent, path);
                let exact = ce(&full);
                let found = values(res, path);
                if value.is_null() {
                    let absent = found.iter().all(|v| v.is_null());
                    return match op {
                        CompareOp::Eq => absent,
                        CompareOp::Ne => !absent,
                        _ => false,
                    };
                }
                found.iter().any(|v| compare(v, *op, value, exact))
            }
            Filter::ValuePath { path, filter } => {
                let items = values(res, path);
                items.iter().any(|item| filter.eval(item, Some(path), ce))
            }
        }
    }
}

/// `emails` + `type` -> `emails.type`, for case rules inside value filters.
fn qualify(parent: Option<&AttrPath>, path: &AttrPath) -> AttrPath {
    match parent {
        Some(p) if path.sub.is_none() => AttrPath {
            urn: p.urn.clone(),
            name: p.name.clone(),
            sub: Some(path.name.clone()),
        },
        _ => path.clone(),
    }
}

/// A member of a JSON object by case-insensitive name.
pub fn get_ci<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let o = obj.as_object()?;
    o.get(name).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The values an attribute path designates in a resource (flattened over multi-valued
/// attributes; for a multi-valued complex attribute without a sub-attribute, its `value`s).
pub fn values<'a>(res: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let holder = match &path.urn {
        Some(urn) => match get_ci(res, urn) {
            Some(ext) => ext,
            // The core schema's URN names top-level attributes.
            None if urn.to_ascii_lowercase().contains(":core:") => res,
            None => return Vec::new(),
        },
        None => res,
    };
    let Some(v) = get_ci(holder, &path.name) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        Some(sub) => items.into_iter().filter_map(|i| get_ci(i, sub)).collect(),
        None => items,
    }
}

/// An RFC 3339 date-time as an instant (nanoseconds since the epoch).
fn instant(s: &str) -> Option<i128> {
    // Cheap test first: most strings compared are not date-times.
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' && b[10] != b't' {
        return None;
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

fn ordered(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_text(h: &str, op: CompareOp, w: &str, case_exact: bool) -> bool {
    let (h, w) = if case_exact {
        (h.to_string(), w.to_string())
    } else {
        (h.to_lowercase(), w.to_lowercase())
    };
    match op {
        CompareOp::Co => h.contains(&w),
        CompareOp::Sw => h.starts_with(&w),
        CompareOp::Ew => h.ends_with(&w),
        _ => ordered(op, h.cmp(&w)),
    }
}

fn compare(have: &Value, op: CompareOp, want: &Value, case_exact: bool) -> bool {
    // Multi-valued complex without sub-attribute: compare its "value".
    let have = match have {
        Value::Object(_) => match get_ci(have, "value") {
            Some(v) => v,
            None => return false,
        },
        v => v,
    };
    match (have, want) {
        // Date-times (meta.created, meta.lastModified) compare as instants: as text,
        // "...:56Z" sorts after "...:56.5Z", and offsets other than Z do not sort at all.
        (Value::String(h), Value::String(w))
            if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) =>
        {
            match (instant(h), instant(w)) {
                (Some(h), Some(w)) => ordered(op, h.cmp(&w)),
                _ => compare_text(h, op, w, case_exact),
            }
        }
        (Value::String(h), Value::String(w)) => compare_text(h, op, w, case_exact),
        (Value::Bool(h), Value::Bool(w)) => match op {
            CompareOp::Eq => h == w,
            CompareOp::Ne => h != w,
            _ => false,
        },
        // Entra sends booleans as strings; compare them as booleans.
        (Value::String(h), Value::Bool(w)) | (Value::Bool(w), Value::String(h)) => {
            let h = h.eq_ignore_ascii_case("true");
            match op {
                CompareOp::Eq => h == *w,
                CompareOp::Ne => h != *w,
                _ => false,
            }
        }
        (Value::Number(h), Value::Number(w)) => {
            let (Some(h), Some(w)) = (h.as_f64(), w.as_f64()) else {
                return false;
            };
            let ord = h.partial_cmp(&w);
            match op {
                CompareOp::Eq => ord == Some(Ordering::Equal),
                CompareOp::Ne => ord != Some(Ordering::Equal),
                CompareOp::Gt => ord == Some(Ordering::Greater),
                CompareOp::Lt => ord == Some(Ordering::Less),
                CompareOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                CompareOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                _ => false,
            }
        }
        _ => op == CompareOp::Ne,
    }
}

impl Filter {
    /// The path and value of an `attr eq "value"` or `attr.sub eq "value"` filter, for
    /// index lookups (`emails.value eq "..."`).
    pub fn eq_value(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Value::String(v),
            } => Some((path, v)),
            _ => None,
        }
    }

    /// The value of a top-level `attr eq "value"` filter (what Entra sends to match users:
    /// `userName eq "..."`, `externalId eq "..."`), for index lookups.
    pub fn simple_eq(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Value::String(v),
            } if path.sub.is_none() => Some((path, v)),
            _ => None,
        }
    }
}
