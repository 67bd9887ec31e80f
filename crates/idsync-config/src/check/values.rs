//! The value readers every section uses: tables, keys, strings with `${env:..}` / `${file:..}`, numbers, durations, choices, arrays; errors at the key's line.

use super::*;

impl Checker<'_> {
    /// A top-level table that may be absent. Outer None: present but not a table.
    pub(super) fn section<'d>(
        &mut self,
        root: &'d dyn TableLike,
        key: &str,
    ) -> Option<Option<&'d dyn TableLike>> {
        match root.get(key) {
            None => Some(None),
            Some(item) => match item.as_table_like() {
                Some(t) => Some(Some(t)),
                None => {
                    self.err(&item.span(), key, "expected a table");
                    None
                }
            },
        }
    }

    /// `[sources.<name>]`-style maps of named tables.
    pub(super) fn named<T>(
        &mut self,
        root: &dyn TableLike,
        key: &str,
        each: fn(&mut Self, &str, &dyn TableLike, &Span) -> Option<T>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(Some(t)) = self.section(root, key) else {
            return out;
        };
        for (name, item) in t.iter() {
            let anchor = t
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span());
            if !valid_name(name) {
                self.err(&anchor, &format!("{key}.{name}"), format!("{name:?} is not a valid name (lowercase letters, digits, - and _, starting with a letter or digit, at most 64)"));
                continue;
            }
            let Some(tt) = item.as_table_like() else {
                self.err(&item.span(), &format!("{key}.{name}"), "expected a table");
                continue;
            };
            if let Some(v) = each(self, name, tt, &anchor) {
                out.insert(name.to_string(), v);
            }
        }
        out
    }

    pub(super) fn keys(&mut self, t: &dyn TableLike, path: &str, allowed: &[&str]) {
        let mut bad = Vec::new();
        for (k, item) in t.iter() {
            if !allowed.contains(&k) {
                let span = t
                    .get_key_value(k)
                    .and_then(|(key, _)| key.span())
                    .or_else(|| item.span());
                bad.push((span, k.to_string()));
            }
        }
        for (span, k) in bad {
            let full = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            self.err(
                &span,
                &full,
                format!(
                    "unknown key {k:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub(super) fn value<'d>(
        &mut self,
        t: &'d dyn TableLike,
        key: &str,
        path: &str,
        expected: &str,
    ) -> Option<(&'d Value, String)> {
        let item = t.get(key)?;
        let full = format!("{path}.{key}");
        match item.as_value() {
            Some(v) => Some((v, full)),
            None => {
                self.err(&item.span(), &full, format!("expected {expected}"));
                None
            }
        }
    }

    /// A string that must say something: empty (or blank) is an error naming `what`.
    pub(super) fn non_empty(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        what: &str,
    ) -> Option<String> {
        let v = self.string(t, key, path)?;
        if v.trim().is_empty() {
            let span = t.get(key).and_then(Item::span);
            self.err(
                &span,
                &format!("{path}.{key}"),
                format!("must not be empty: {what}"),
            );
            return None;
        }
        Some(v)
    }

    /// A path (relative to the configuration file) to a file that must exist now: read at
    /// start-up (certificates, CA bundles), so a missing one is a configuration error rather
    /// than a failed run.
    pub(super) fn existing_file(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<PathBuf> {
        let name = self.non_empty(t, key, path, "a file name")?;
        let file = self.base.join(name);
        let problem = match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => return Some(file),
            Ok(_) => "not a file".to_string(),
            Err(e) => e.to_string(),
        };
        let span = t.get(key).and_then(Item::span);
        self.err(
            &span,
            &format!("{path}.{key}"),
            format!("cannot read {}: {problem}", file.display()),
        );
        None
    }

    pub(super) fn string(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<String> {
        let (v, full) = self.value(t, key, path, "a string")?;
        match v.as_str() {
            Some(s) => self.interpolate(s, &v.span(), &full),
            None => {
                self.err(
                    &v.span(),
                    &full,
                    format!("expected a string, found {}", v.type_name()),
                );
                None
            }
        }
    }

    /// Resolve `${env:NAME}` and `${file:PATH}` references.
    pub(super) fn interpolate(&mut self, s: &str, span: &Span, key: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                self.err(span, key, "unterminated ${...} reference");
                return None;
            };
            let reference = &after[..end];
            let value = if let Some(name) = reference.strip_prefix("env:") {
                match std::env::var(name) {
                    Ok(v) if v.trim().is_empty() => {
                        self.err(span, key, format!("environment variable {name} is empty"));
                        return None;
                    }
                    Ok(v) => v,
                    Err(_) => {
                        self.err(span, key, format!("environment variable {name} is not set"));
                        return None;
                    }
                }
            } else if let Some(p) = reference.strip_prefix("file:") {
                let path = self.base.join(p);
                match std::fs::read_to_string(&path) {
                    Ok(v) if v.trim().is_empty() => {
                        self.err(
                            span,
                            key,
                            format!("secret file {} is empty", path.display()),
                        );
                        return None;
                    }
                    Ok(v) => v
                        .strip_suffix('\n')
                        .map(|v| v.strip_suffix('\r').unwrap_or(v))
                        .unwrap_or(&v)
                        .to_string(),
                    Err(e) => {
                        self.err(
                            span,
                            key,
                            format!("cannot read secret file {}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            } else {
                self.err(
                    span,
                    key,
                    format!(
                        "unknown reference ${{{reference}}} (use ${{env:NAME}} or ${{file:PATH}})"
                    ),
                );
                return None;
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    pub(super) fn int(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let (v, full) = self.value(t, key, path, "an integer")?;
        match v.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.err(
                    &v.span(),
                    &full,
                    format!("{n} is out of range ({min} to {max})"),
                );
                None
            }
            None => {
                self.err(
                    &v.span(),
                    &full,
                    format!("expected an integer, found {}", v.type_name()),
                );
                None
            }
        }
    }

    pub(super) fn float(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let (v, full) = self.value(t, key, path, "a number")?;
        let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        match n {
            Some(n) if n >= min && n <= max => Some(n),
            Some(n) => {
                self.err(
                    &v.span(),
                    &full,
                    format!("{n} is out of range ({min} to {max})"),
                );
                None
            }
            None => {
                self.err(
                    &v.span(),
                    &full,
                    format!("expected a number, found {}", v.type_name()),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, t: &dyn TableLike, key: &str, path: &str) -> Option<bool> {
        let (v, full) = self.value(t, key, path, "true or false")?;
        let b = v.as_bool();
        if b.is_none() {
            self.err(
                &v.span(),
                &full,
                format!("expected true or false, found {}", v.type_name()),
            );
        }
        b
    }

    pub(super) fn choice(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        allowed: &[&str],
    ) -> Option<String> {
        let s = self.string(t, key, path)?;
        if allowed.contains(&s.as_str()) {
            return Some(s);
        }
        let span = t.get(key).and_then(Item::span);
        self.err(
            &span,
            &format!("{path}.{key}"),
            format!("{s:?} is not one of: {}", allowed.join(", ")),
        );
        None
    }

    pub(super) fn required_choice(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        allowed: &[&str],
        anchor: &Span,
    ) -> Option<String> {
        if t.get(key).is_none() {
            self.err(
                anchor,
                &format!("{path}.{key}"),
                format!("required: one of {}", allowed.join(", ")),
            );
            return None;
        }
        self.choice(t, key, path, allowed)
    }

    pub(super) fn duration(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<Duration> {
        let s = self.string(t, key, path)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                let span = t.get(key).and_then(Item::span);
                self.err(&span, &format!("{path}.{key}"), e);
                None
            }
        }
    }

    pub(super) fn str_array(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
    ) -> Vec<(String, Span)> {
        let Some((v, full)) = self.value(t, key, path, "an array of strings") else {
            return Vec::new();
        };
        let Some(arr) = v.as_array() else {
            self.err(
                &v.span(),
                &full,
                format!("expected an array of strings, found {}", v.type_name()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push((s.to_string(), item.span())),
                None => self.err(
                    &item.span(),
                    &format!("{full}[{i}]"),
                    format!("expected a string, found {}", item.type_name()),
                ),
            }
        }
        out
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn list<'k>(keys: impl Iterator<Item = &'k String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key a syntax error is at, as far as the text tells: the table of the lines above it
/// (`[sources.hr]`) and the key on its line (`tenant = `), e.g. `sources.hr.tenant`.
pub(super) fn key_at(text: &str, offset: usize) -> String {
    let upto = &text[..offset.min(text.len())];
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = upto[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (_, true) if line.trim().starts_with('[') => line
            .trim()
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        (true, true) => "(top level)".to_string(),
        (false, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}
