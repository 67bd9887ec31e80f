//! Confluence's paging: `start`/`limit` with `results`, `size` and, while more remain,
//! `_links.next` (the path and query of the next page). The listing ends on a page without a
//! `next` link (an empty page ends it too, whatever the links say).

use super::client::{DcClient, Failure};
use reqwest::Method;
use serde_json::Value;

/// Every value of a `results`/`_links.next` listing. `path` holds its query without the
/// paging parameters; the next pages are read where `_links.next` points (below the base URL,
/// which a context path such as `/confluence` may precede).
pub async fn read_all(client: &DcClient, path: &str, limit: usize) -> Result<Vec<Value>, Failure> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut next = format!("{path}{sep}start=0&limit={limit}");
    let mut out = Vec::new();
    loop {
        let page = client.call(Method::GET, &next, None).await?;
        let values = page
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let n = values.len();
        out.extend(values);
        let link = page
            .get("_links")
            .and_then(|l| l.get("next"))
            .and_then(Value::as_str);
        match link {
            Some(l) if n > 0 => next = below_base(client.base_url(), l),
            _ => return Ok(out),
        }
    }
}

/// A `next` link as a path below the base URL: Confluence writes it from its context path
/// (`/confluence/rest/api/...`), which the base URL already ends with.
fn below_base(base: &str, link: &str) -> String {
    let context = base
        .split("://")
        .nth(1)
        .and_then(|rest| rest.find('/').map(|i| rest[i..].trim_end_matches('/')))
        .unwrap_or("");
    match link.strip_prefix(context) {
        Some(rest) if !context.is_empty() && rest.starts_with('/') => rest.to_string(),
        _ => link.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::below_base;

    #[test]
    fn next_links_below_a_context_path() {
        assert_eq!(
            below_base(
                "https://wiki.example.com/confluence",
                "/confluence/rest/api/group?start=25"
            ),
            "/rest/api/group?start=25"
        );
        assert_eq!(
            below_base("http://127.0.0.1:8090", "/rest/api/group?start=25"),
            "/rest/api/group?start=25"
        );
    }
}
