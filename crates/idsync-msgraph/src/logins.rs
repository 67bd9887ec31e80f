//! What a login needs from Graph: a group's name from its id (`GET /groups/{id}`), and a user's
//! groups when its token could not carry them all (group overage: `POST
//! /users/{id}/getMemberObjects`, paged with `@odata.nextLink`).

use crate::{GraphClient, GraphError};
use serde_json::{json, Value};

/// An object id as a path segment: every byte but letters, digits and `-` percent-encoded, so
/// an id from a token can only ever name one object.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl GraphClient {
    /// A group's display name (`GET /groups/{id}?$select=id,displayName`); None when the
    /// tenant has no such group.
    pub async fn group_name(&self, id: &str) -> Result<Option<String>, GraphError> {
        let url = self.url(&format!("/groups/{}?$select=id,displayName", segment(id)));
        match self.get(&url, &[]).await {
            Ok(v) => match v.get("displayName") {
                Some(Value::String(name)) => Ok(Some(name.clone())),
                Some(Value::Null) | None => Ok(None),
                Some(_) => Err(GraphError::Invalid {
                    url,
                    message: "displayName is not a string".into(),
                }),
            },
            Err(GraphError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of every group (and, unless `security_enabled_only`, directory role and
    /// administrative unit) a user is in, transitively: `POST
    /// /users/{id}/getMemberObjects` with `{"securityEnabledOnly": ...}`, then each
    /// `@odata.nextLink` with a GET as Microsoft's page iterators do. A failure on any page fails
    /// the whole answer.
    pub async fn member_objects(
        &self,
        user: &str,
        security_enabled_only: bool,
    ) -> Result<Vec<String>, GraphError> {
        let url = self.url(&format!("/users/{}/getMemberObjects", segment(user)));
        let body = json!({ "securityEnabledOnly": security_enabled_only });
        // A read, whatever its method: sent again after a failure like a GET.
        let mut page = self
            .send_retrying(reqwest::Method::POST, &url, Some(&body), &[], true)
            .await?;
        let mut out = Vec::new();
        let mut at = url;
        loop {
            let next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(ids)) => {
                    for id in ids {
                        match id {
                            Value::String(s) => out.push(s),
                            _ => {
                                return Err(GraphError::Invalid {
                                    url: at,
                                    message: "getMemberObjects answered a value that is not an id"
                                        .into(),
                                })
                            }
                        }
                    }
                }
                _ => {
                    return Err(GraphError::Invalid {
                        url: at,
                        message: "a collection page without a value array".into(),
                    })
                }
            }
            let Some(n) = next else {
                break;
            };
            page = self.get(&n, &[]).await?;
            at = n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_cannot_leave_their_segment() {
        assert_eq!(super::segment("4fe90ae7-065a"), "4fe90ae7-065a");
        assert_eq!(super::segment("../users?x"), "%2E%2E%2Fusers%3Fx");
    }
}
