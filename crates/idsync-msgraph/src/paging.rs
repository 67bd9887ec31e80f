//! Collections page by page and delta rounds.

use crate::{DeltaRound, GraphClient, GraphError};
use serde_json::Value;

impl GraphClient {
    /// Every item of a collection, following `@odata.nextLink`. A failure on any page fails
    /// the whole read: a partial list is never returned.
    pub async fn get_all(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Vec<Value>, GraphError> {
        let mut out = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(u) = next {
            let mut page = self.get(&u, headers).await?;
            next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(items)) => out.extend(items),
                _ => {
                    return Err(GraphError::Invalid {
                        url: u,
                        message: "a collection page without a value array".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// A whole delta round: from a first delta URL or a delta link, following next links until
    /// the new delta link.
    pub async fn delta_round(&self, url: &str) -> Result<DeltaRound, GraphError> {
        let mut items = Vec::new();
        let delta_link = self.delta_pages(url, |page| items.extend(page)).await?;
        Ok(DeltaRound { items, delta_link })
    }

    /// A delta round page by page (a large first round need not be held whole); returns the
    /// new delta link. Pages already handed over are not taken back if a later page fails: the
    /// caller must drop what it built when this returns an error.
    pub async fn delta_pages(
        &self,
        url: &str,
        mut each: impl FnMut(Vec<Value>),
    ) -> Result<String, GraphError> {
        let headers = [("Prefer", "odata.maxpagesize=999")];
        let mut url = url.to_string();
        loop {
            let mut page = self.get(&url, &headers).await?;
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(v)) => each(v),
                _ => {
                    return Err(GraphError::Invalid {
                        url,
                        message: "a delta page without a value array".into(),
                    })
                }
            }
            if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
                url = next.to_string();
                continue;
            }
            return match page.get("@odata.deltaLink").and_then(Value::as_str) {
                Some(link) => Ok(link.to_string()),
                None => Err(GraphError::Invalid {
                    url,
                    message: "a delta page with neither a next link nor a delta link".into(),
                }),
            };
        }
    }
}
