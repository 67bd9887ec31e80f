//! Query parameters: lookup, paging and `expand`.

use crate::error::CrowdError;
use crate::restriction::bad;
use crate::MAX_RESULTS_CAP;

/// Crowd's default page size when `max-results` is not given.
pub const DEFAULT_MAX_RESULTS: usize = 1000;

/// The query of one request.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    pub query: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`.
    pub fn non_empty(&self, name: &str) -> Option<&'a str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A required parameter, or Crowd's answer `<name> query parameter must be given`.
    pub fn required(&self, name: &str) -> Result<&'a str, CrowdError> {
        self.get(name)
            .ok_or_else(|| bad(format!("{name} query parameter must be given")))
    }

    /// Whether `expand` names `what` (`expand=user,attributes`, repeated `expand`, or
    /// `user.attributes`).
    pub fn expands(&self, what: &str) -> bool {
        self.query
            .iter()
            .filter(|(k, _)| k == "expand")
            .flat_map(|(_, v)| v.split(','))
            .any(|e| {
                let e = e.trim();
                e == what || e.rsplit('.').next() == Some(what)
            })
    }

    /// `start-index` and `max-results`: the start defaults to 0 and may not be negative; the
    /// page defaults to 1,000 and is clamped to [`MAX_RESULTS_CAP`] (a negative value is
    /// Crowd's "all results", clamped as well).
    pub fn page(&self) -> Result<(usize, usize), CrowdError> {
        let start = match self.get("start-index") {
            None | Some("") => 0,
            Some(s) => {
                let n: i64 = s
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("start-index {s:?} is not a number")))?;
                usize::try_from(n).map_err(|_| bad("start-index cannot be less than zero"))?
            }
        };
        let max = match self.get("max-results") {
            None | Some("") => DEFAULT_MAX_RESULTS,
            Some(s) => {
                let n: i64 = s
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("max-results {s:?} is not a number")))?;
                if n < 0 {
                    MAX_RESULTS_CAP
                } else {
                    usize::try_from(n).unwrap_or(MAX_RESULTS_CAP)
                }
            }
        };
        Ok((start, max.min(MAX_RESULTS_CAP)))
    }
}

/// The page `[start, start + max)` of `items`.
pub fn page<T: Copy>(items: &[T], start: usize, max: usize) -> Vec<T> {
    items.iter().skip(start).take(max).copied().collect()
}
