//! The Data Center products' paging styles, read to the end:
//! - Jira's `startAt`/`maxResults` with `isLast` (`group/member`), and its plain arrays
//!   (`user/search`), read until a page comes back empty (a server may cap a page below
//!   what was asked, so a short page does not mean the end);
//! - Confluence and Bitbucket's `start`/`limit` with `isLastPage` and `nextPageStart`.

use super::client::{DcClient, Failure};
use reqwest::Method;
use serde_json::Value;

/// Every value of a `startAt`/`maxResults`/`isLast` listing. `path` holds its query without
/// the paging parameters.
pub async fn start_at(client: &DcClient, path: &str, max: usize) -> Result<Vec<Value>, Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut start = 0usize;
    loop {
        let page = client
            .call(
                Method::GET,
                &format!("{path}{sep}startAt={start}&maxResults={max}"),
                None,
            )
            .await?;
        let values = page
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let n = values.len();
        out.extend(values);
        let last = page
            .get("isLast")
            .and_then(Value::as_bool)
            .unwrap_or(n == 0);
        if last || n == 0 {
            return Ok(out);
        }
        start += n;
    }
}

/// Every element of a listing that answers a plain array per `startAt`/`maxResults` page.
pub async fn array(client: &DcClient, path: &str, max: usize) -> Result<Vec<Value>, Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut start = 0usize;
    loop {
        let page = client
            .call(
                Method::GET,
                &format!("{path}{sep}startAt={start}&maxResults={max}"),
                None,
            )
            .await?;
        let Value::Array(values) = page else {
            return Err(Failure {
                status: None,
                reason: format!("GET {path}: the answer is not a list"),
                messages: Vec::new(),
                retry_after: None,
            });
        };
        if values.is_empty() {
            return Ok(out);
        }
        start += values.len();
        out.extend(values);
    }
}

/// Every value of a `start`/`limit`/`isLastPage`/`nextPageStart` listing (Confluence,
/// Bitbucket).
pub async fn start_limit(
    client: &DcClient,
    path: &str,
    limit: usize,
) -> Result<Vec<Value>, Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let page = client
            .call(
                Method::GET,
                &format!("{path}{sep}start={start}&limit={limit}"),
                None,
            )
            .await?;
        let values = page
            .get("values")
            .or_else(|| page.get("results"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let n = values.len() as u64;
        out.extend(values);
        let last = page
            .get("isLastPage")
            .and_then(Value::as_bool)
            .unwrap_or(n == 0);
        if last || n == 0 {
            return Ok(out);
        }
        start = page
            .get("nextPageStart")
            .and_then(Value::as_u64)
            .unwrap_or(start + n);
    }
}
