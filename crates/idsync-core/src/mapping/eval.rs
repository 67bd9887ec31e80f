//! Values, the functions admins know from Microsoft Entra's attribute mappings, and evaluation.

use super::expr::{Expr, ExprError};

/// A value while an expression is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Bool(bool),
    /// A multi-valued attribute, or what Split returns.
    List(Vec<String>),
}

impl Value {
    /// As one string: lists joined with nothing between (as Entra's Append and Join see them
    /// one value at a time, this only matters for functions taking one string).
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
            Value::List(v) => v.first().cloned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Str(s) => s.is_empty(),
            Value::Bool(_) => false,
            Value::List(v) => v.iter().all(String::is_empty),
        }
    }

    /// Entra's booleans: true/false, and the strings "True"/"False" in any case.
    pub fn truth(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
}

/// Why an expression gave no value for one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("{function}: {message}")]
    Function {
        function: &'static str,
        message: String,
    },
    #[error("SelectUniqueValue: none of the {0} candidates is free in the target")]
    NoUniqueValue(usize),
}

/// What an expression sees: the source object's attributes, and (for SelectUniqueValue)
/// whether a value is free in the target.
pub trait Context {
    fn attribute(&self, name: &str) -> Value;
    fn is_free(&mut self, value: &str) -> bool;
}

/// A function: its name as written (any letter case), and its arity.
struct Function {
    name: &'static str,
    min: usize,
    max: usize,
}

const FUNCTIONS: &[Function] = &[
    Function {
        name: "Append",
        min: 2,
        max: 2,
    },
    Function {
        name: "AppendString",
        min: 2,
        max: 2,
    },
    Function {
        name: "Coalesce",
        min: 1,
        max: usize::MAX,
    },
    Function {
        name: "FormatDateTime",
        min: 3,
        max: 4,
    },
    Function {
        name: "IIF",
        min: 3,
        max: 3,
    },
    Function {
        name: "IsNull",
        min: 1,
        max: 1,
    },
    Function {
        name: "IsNullOrEmpty",
        min: 1,
        max: 1,
    },
    Function {
        name: "IsPresent",
        min: 1,
        max: 1,
    },
    Function {
        name: "Join",
        min: 1,
        max: usize::MAX,
    },
    Function {
        name: "Left",
        min: 2,
        max: 2,
    },
    Function {
        name: "Mid",
        min: 3,
        max: 3,
    },
    Function {
        name: "NormalizeDiacritics",
        min: 1,
        max: 1,
    },
    Function {
        name: "Not",
        min: 1,
        max: 1,
    },
    Function {
        name: "Replace",
        min: 3,
        max: 7,
    },
    Function {
        name: "SelectUniqueValue",
        min: 1,
        max: usize::MAX,
    },
    Function {
        name: "Split",
        min: 2,
        max: 2,
    },
    Function {
        name: "StripSpaces",
        min: 1,
        max: 1,
    },
    Function {
        name: "Switch",
        min: 2,
        max: usize::MAX,
    },
    Function {
        name: "ToLower",
        min: 1,
        max: 2,
    },
    Function {
        name: "ToUpper",
        min: 1,
        max: 2,
    },
];

fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// Check what parsing cannot: known functions, their arity, regular expressions, date formats,
/// SelectUniqueValue only at the top.
pub fn check(e: &Expr, top: bool) -> Result<(), ExprError> {
    match e {
        Expr::Call { name, args, pos } => {
            let Some(f) = function(name) else {
                let known: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
                return Err(ExprError {
                    column: *pos,
                    message: format!("unknown function {name}; known: {}", known.join(", ")),
                });
            };
            if args.len() < f.min || args.len() > f.max {
                let want = match (f.min, f.max) {
                    (a, b) if a == b => format!("{a}"),
                    (a, usize::MAX) => format!("at least {a}"),
                    (a, b) => format!("{a} to {b}"),
                };
                return Err(ExprError {
                    column: *pos,
                    message: format!("{} takes {want} arguments, not {}", f.name, args.len()),
                });
            }
            if f.name == "SelectUniqueValue" && !top {
                return Err(ExprError {
                    column: *pos,
                    message: "SelectUniqueValue must be the whole expression".into(),
                });
            }
            if f.name == "Replace" {
                if let Some(Some(Expr::Str(re))) = args.get(2) {
                    regex::Regex::new(re).map_err(|e| ExprError {
                        column: *pos,
                        message: format!("Replace: {re:?} is not a regular expression: {e}"),
                    })?;
                }
            }
            if f.name == "FormatDateTime" {
                for a in args.iter().skip(args.len() - 2).flatten() {
                    if let Expr::Str(fmt) = a {
                        tokens(fmt).map_err(|m| ExprError {
                            column: *pos,
                            message: format!("FormatDateTime: {m}"),
                        })?;
                    }
                }
            }
            for a in args.iter().flatten() {
                check(a, false)?;
            }
            Ok(())
        }
        Expr::Compare { left, right, .. } => {
            check(left, false)?;
            check(right, false)
        }
        _ => Ok(()),
    }
}

fn err(function: &'static str, message: impl Into<String>) -> EvalError {
    EvalError::Function {
        function,
        message: message.into(),
    }
}

/// Evaluate a checked expression.
pub fn eval(e: &Expr, cx: &mut dyn Context) -> Result<Value, EvalError> {
    match e {
        Expr::Str(s) => Ok(Value::Str(s.clone())),
        Expr::Num(n) => Ok(Value::Str(if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", *n as i64)
        } else {
            n.to_string()
        })),
        Expr::Bool(b) => Ok(Value::Bool(*b)),
        Expr::Attr { name, .. } => Ok(cx.attribute(name)),
        Expr::Compare { left, right, equal } => {
            let l = eval(left, cx)?;
            let r = eval(right, cx)?;
            let same = match (&l, &r) {
                (Value::Null, Value::Null) => true,
                (Value::Null, _) | (_, Value::Null) => false,
                _ => match (l.truth(), r.truth()) {
                    (Some(a), Some(b)) => a == b,
                    _ => l.text() == r.text(),
                },
            };
            Ok(Value::Bool(same == *equal))
        }
        Expr::Call { name, args, .. } => {
            let Some(f) = function(name) else {
                return Err(err("call", format!("unknown function {name}")));
            };
            call(f.name, args, cx)
        }
    }
}

fn arg(args: &[Option<Expr>], i: usize, cx: &mut dyn Context) -> Result<Value, EvalError> {
    match args.get(i) {
        Some(Some(e)) => eval(e, cx),
        _ => Ok(Value::Null),
    }
}

fn number(v: &Value, function: &'static str, what: &str) -> Result<i64, EvalError> {
    v.text()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite())
        .map(|n| n as i64)
        .ok_or_else(|| err(function, format!("{what} must be a number")))
}

fn call(
    name: &'static str,
    args: &[Option<Expr>],
    cx: &mut dyn Context,
) -> Result<Value, EvalError> {
    let text = |v: Value| v.text();
    match name {
        "Append" | "AppendString" => {
            let a = text(arg(args, 0, cx)?).unwrap_or_default();
            let b = text(arg(args, 1, cx)?).unwrap_or_default();
            Ok(Value::Str(a + &b))
        }
        "Join" => {
            let sep = text(arg(args, 0, cx)?).unwrap_or_default();
            let mut parts = Vec::new();
            for i in 1..args.len() {
                match arg(args, i, cx)? {
                    Value::Null => {}
                    Value::List(v) => parts.extend(v.into_iter().filter(|s| !s.is_empty())),
                    v => parts.extend(v.text().filter(|s| !s.is_empty())),
                }
            }
            Ok(Value::Str(parts.join(&sep)))
        }
        "Coalesce" => {
            for i in 0..args.len() {
                let v = arg(args, i, cx)?;
                if !v.is_empty() {
                    return Ok(v);
                }
            }
            Ok(Value::Null)
        }
        "IIF" => {
            let cond = arg(args, 0, cx)?;
            match cond.truth() {
                Some(true) => arg(args, 1, cx),
                Some(false) => arg(args, 2, cx),
                None => Err(err(
                    "IIF",
                    format!("the condition is not true or false but {cond:?}"),
                )),
            }
        }
        "Not" => match arg(args, 0, cx)?.truth() {
            Some(b) => Ok(Value::Bool(!b)),
            None => Err(err("Not", "the value is not true or false")),
        },
        "IsNull" => Ok(Value::Bool(arg(args, 0, cx)? == Value::Null)),
        "IsNullOrEmpty" => Ok(Value::Bool(arg(args, 0, cx)?.is_empty())),
        "IsPresent" => Ok(Value::Bool(!arg(args, 0, cx)?.is_empty())),
        "Switch" => {
            let source = arg(args, 0, cx)?;
            let mut i = 2;
            while i + 1 < args.len() {
                let key = arg(args, i, cx)?;
                let same = match (source.truth(), key.truth()) {
                    (Some(a), Some(b)) => a == b,
                    _ => source.text() == key.text(),
                };
                if same {
                    return arg(args, i + 1, cx);
                }
                i += 2;
            }
            arg(args, 1, cx)
        }
        "ToLower" | "ToUpper" => Ok(match arg(args, 0, cx)? {
            Value::Null => Value::Null,
            Value::List(v) => Value::List(
                v.into_iter()
                    .map(|s| {
                        if name == "ToLower" {
                            s.to_lowercase()
                        } else {
                            s.to_uppercase()
                        }
                    })
                    .collect(),
            ),
            v => {
                let s = v.text().unwrap_or_default();
                Value::Str(if name == "ToLower" {
                    s.to_lowercase()
                } else {
                    s.to_uppercase()
                })
            }
        }),
        "Left" => {
            let Some(s) = text(arg(args, 0, cx)?) else {
                return Ok(Value::Null);
            };
            let n = number(&arg(args, 1, cx)?, "Left", "the number of characters")?.max(0);
            Ok(Value::Str(s.chars().take(n as usize).collect()))
        }
        "Mid" => {
            let Some(s) = text(arg(args, 0, cx)?) else {
                return Ok(Value::Null);
            };
            // Entra counts from 1.
            let start = number(&arg(args, 1, cx)?, "Mid", "start")?.max(1) - 1;
            let len = number(&arg(args, 2, cx)?, "Mid", "length")?.max(0);
            Ok(Value::Str(
                s.chars().skip(start as usize).take(len as usize).collect(),
            ))
        }
        "StripSpaces" => Ok(match text(arg(args, 0, cx)?) {
            None => Value::Null,
            Some(s) => Value::Str(s.chars().filter(|c| *c != ' ').collect()),
        }),
        "NormalizeDiacritics" => Ok(match text(arg(args, 0, cx)?) {
            None => Value::Null,
            Some(s) => Value::Str(normalize_diacritics(&s)),
        }),
        "Split" => {
            let Some(s) = text(arg(args, 0, cx)?) else {
                return Ok(Value::Null);
            };
            let delim = text(arg(args, 1, cx)?).unwrap_or_default();
            if delim.is_empty() {
                return Ok(Value::List(vec![s]));
            }
            Ok(Value::List(
                s.split(delim.as_str()).map(str::to_string).collect(),
            ))
        }
        "Replace" => replace(args, cx),
        "FormatDateTime" => {
            let Some(s) = text(arg(args, 0, cx)?) else {
                return Ok(Value::Null);
            };
            // FormatDateTime(source, [dateTimeStyles,] inputFormat, outputFormat)
            let n = args.len();
            let input = text(arg(args, n - 2, cx)?).unwrap_or_default();
            let output = text(arg(args, n - 1, cx)?).unwrap_or_default();
            let parts = parse_date(&s, &input).map_err(|m| err("FormatDateTime", m))?;
            format_date(&parts, &output)
                .map(Value::Str)
                .map_err(|m| err("FormatDateTime", m))
        }
        "SelectUniqueValue" => {
            for i in 0..args.len() {
                let v = arg(args, i, cx)?;
                if let Some(s) = v.text().filter(|s| !s.is_empty()) {
                    if cx.is_free(&s) {
                        return Ok(Value::Str(s));
                    }
                }
            }
            Err(EvalError::NoUniqueValue(args.len()))
        }
        other => Err(err("call", format!("{other} is not implemented"))),
    }
}

/// Entra's Replace(source, oldValue, regexPattern, regexGroupName, replacementValue,
/// replacementAttributeName, template).
fn replace(args: &[Option<Expr>], cx: &mut dyn Context) -> Result<Value, EvalError> {
    let Some(source) = arg(args, 0, cx)?.text() else {
        return Ok(Value::Null);
    };
    let old = arg(args, 1, cx)?.text();
    let pattern = arg(args, 2, cx)?.text().filter(|p| !p.is_empty());
    let group = arg(args, 3, cx)?.text().filter(|g| !g.is_empty());
    let replacement = arg(args, 4, cx)?.text();
    let from_attribute = arg(args, 5, cx)?.text();
    let template = arg(args, 6, cx)?.text();
    let with = replacement.or(from_attribute).unwrap_or_default();
    if let Some(pattern) = pattern {
        let re = regex::Regex::new(&pattern).map_err(|e| {
            err(
                "Replace",
                format!("{pattern:?} is not a regular expression: {e}"),
            )
        })?;
        let out = match group {
            // Replace only what the named group matched.
            Some(g) => {
                let mut out = String::new();
                let mut last = 0;
                for caps in re.captures_iter(&source) {
                    if let Some(m) = caps.name(&g) {
                        out.push_str(&source[last..m.start()]);
                        out.push_str(&with);
                        last = m.end();
                    }
                }
                out.push_str(&source[last..]);
                out
            }
            None => re.replace_all(&source, regex::NoExpand(&with)).into_owned(),
        };
        return Ok(Value::Str(out));
    }
    match (old, template) {
        (Some(old), _) if !old.is_empty() => Ok(Value::Str(source.replace(&old, &with))),
        (_, Some(t)) => Ok(Value::Str(t.replace("{source}", &source))),
        _ => Ok(Value::Str(source)),
    }
}

/// Letters with diacritics to their plain letters (é → e, ø → o, ß → ss).
pub fn normalize_diacritics(s: &str) -> String {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(s.len());
    for c in s.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ø' => out.push('o'),
            'Ø' => out.push('O'),
            'æ' => out.push_str("ae"),
            'Æ' => out.push_str("AE"),
            'œ' => out.push_str("oe"),
            'Œ' => out.push_str("OE"),
            'ß' => out.push_str("ss"),
            'đ' => out.push('d'),
            'Đ' => out.push('D'),
            'ł' => out.push('l'),
            'Ł' => out.push('L'),
            'þ' => out.push_str("th"),
            'Þ' => out.push_str("TH"),
            other => out.push(other),
        }
    }
    out
}

// ------------------------------------------------------------------ dates (.NET formats)

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Year4,
    Year2,
    Month2,
    Month1,
    Day2,
    Day1,
    Hour2,
    Hour1,
    Minute2,
    Minute1,
    Second2,
    Second1,
    Fraction(usize),
    Literal(char),
}

/// The custom date and time format strings of .NET that Entra's FormatDateTime takes.
fn tokens(fmt: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        let tok = match (c, run) {
            ('y', 4) => Token::Year4,
            ('y', 2) => Token::Year2,
            ('M', 2) => Token::Month2,
            ('M', 1) => Token::Month1,
            ('d', 2) => Token::Day2,
            ('d', 1) => Token::Day1,
            ('H', 2) => Token::Hour2,
            ('H', 1) => Token::Hour1,
            ('m', 2) => Token::Minute2,
            ('m', 1) => Token::Minute1,
            ('s', 2) => Token::Second2,
            ('s', 1) => Token::Second1,
            ('f', n) | ('F', n) if n <= 7 => Token::Fraction(n),
            ('y' | 'M' | 'd' | 'H' | 'm' | 's' | 'f' | 'F', n) => {
                return Err(format!(
                    "{} is not a supported format ({fmt:?})",
                    c.to_string().repeat(n)
                ))
            }
            ('\'', _) => {
                // A quoted literal.
                let end = chars[i + 1..]
                    .iter()
                    .position(|x| *x == '\'')
                    .ok_or_else(|| format!("a quote is not closed in {fmt:?}"))?;
                out.extend(chars[i + 1..i + 1 + end].iter().map(|c| Token::Literal(*c)));
                i += end + 2;
                continue;
            }
            ('\\', _) if i + 1 < chars.len() => {
                out.push(Token::Literal(chars[i + 1]));
                i += 2;
                continue;
            }
            (other, _) => {
                out.push(Token::Literal(other));
                i += 1;
                continue;
            }
        };
        out.push(tok);
        i += run;
    }
    Ok(out)
}

#[derive(Debug, Default, Clone, PartialEq)]
struct DateParts {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// Nanoseconds.
    fraction: i64,
}

fn parse_date(s: &str, fmt: &str) -> Result<DateParts, String> {
    let toks = tokens(fmt)?;
    let chars: Vec<char> = s.chars().collect();
    let mut at = 0;
    let mut p = DateParts {
        month: 1,
        day: 1,
        ..DateParts::default()
    };
    let bad = || format!("{s:?} does not match the format {fmt:?}");
    let digits = |at: &mut usize, min: usize, max: usize| -> Result<(i64, usize), String> {
        let n = chars[*at..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n < min {
            return Err(bad());
        }
        let text: String = chars[*at..*at + n].iter().collect();
        *at += n;
        Ok((text.parse::<i64>().map_err(|_| bad())?, n))
    };
    for t in &toks {
        match t {
            Token::Year4 => p.year = digits(&mut at, 4, 4)?.0,
            Token::Year2 => p.year = 2000 + digits(&mut at, 2, 2)?.0,
            Token::Month2 => p.month = digits(&mut at, 2, 2)?.0,
            Token::Month1 => p.month = digits(&mut at, 1, 2)?.0,
            Token::Day2 => p.day = digits(&mut at, 2, 2)?.0,
            Token::Day1 => p.day = digits(&mut at, 1, 2)?.0,
            Token::Hour2 => p.hour = digits(&mut at, 2, 2)?.0,
            Token::Hour1 => p.hour = digits(&mut at, 1, 2)?.0,
            Token::Minute2 => p.minute = digits(&mut at, 2, 2)?.0,
            Token::Minute1 => p.minute = digits(&mut at, 1, 2)?.0,
            Token::Second2 => p.second = digits(&mut at, 2, 2)?.0,
            Token::Second1 => p.second = digits(&mut at, 1, 2)?.0,
            Token::Fraction(n) => {
                // At least one digit, as many as there are (up to 7: .NET's ticks).
                let (v, got) = digits(&mut at, 1.min(*n), 7)?;
                p.fraction = v * 10i64.pow(9 - got as u32);
            }
            Token::Literal(c) => {
                if chars.get(at) != Some(c) {
                    return Err(bad());
                }
                at += 1;
            }
        }
    }
    if at != chars.len() {
        return Err(bad());
    }
    let valid = (1..=12).contains(&p.month)
        && (1..=31).contains(&p.day)
        && (0..=23).contains(&p.hour)
        && (0..=59).contains(&p.minute)
        && (0..=60).contains(&p.second);
    if !valid {
        return Err(format!("{s:?} is not a valid date and time"));
    }
    Ok(p)
}

fn format_date(p: &DateParts, fmt: &str) -> Result<String, String> {
    let mut out = String::new();
    for t in tokens(fmt)? {
        match t {
            Token::Year4 => out.push_str(&format!("{:04}", p.year)),
            Token::Year2 => out.push_str(&format!("{:02}", p.year % 100)),
            Token::Month2 => out.push_str(&format!("{:02}", p.month)),
            Token::Month1 => out.push_str(&p.month.to_string()),
            Token::Day2 => out.push_str(&format!("{:02}", p.day)),
            Token::Day1 => out.push_str(&p.day.to_string()),
            Token::Hour2 => out.push_str(&format!("{:02}", p.hour)),
            Token::Hour1 => out.push_str(&p.hour.to_string()),
            Token::Minute2 => out.push_str(&format!("{:02}", p.minute)),
            Token::Minute1 => out.push_str(&p.minute.to_string()),
            Token::Second2 => out.push_str(&format!("{:02}", p.second)),
            Token::Second1 => out.push_str(&p.second.to_string()),
            Token::Fraction(n) => {
                let nanos = format!("{:09}", p.fraction);
                out.push_str(&nanos[..n]);
            }
            Token::Literal(c) => out.push(c),
        }
    }
    Ok(out)
}
