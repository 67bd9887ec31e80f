//! `POST /users/{id}/getMemberObjects` (also on `/groups/{id}` and `/directoryObjects/{id}`):
//! the ids of every group the object is in, transitively, as Graph's `directoryObject:
//! getMemberObjects` answers (`{"@odata.context": ...#Collection(Edm.String), "value": [...]}`),
//! with `securityEnabledOnly` (required, a boolean) keeping only security groups. A long answer
//! is paged with `@odata.nextLink`, fetched with a GET as Microsoft's page iterators do (the
//! link carries `securityEnabledOnly` and a `$skiptoken`).

use super::api::{bad, Api, GraphRequest, GraphResponse};
use super::tenant::{Kind, Tenant};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// Whether a request is a getMemberObjects call (a read, whatever its method).
pub fn is_call(r: &GraphRequest) -> bool {
    let path = r.path.trim_start_matches('/').trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    matches!(
        segs.as_slice(),
        ["users" | "groups" | "directoryObjects", _, f] if is_function(f)
    ) && (r.method == "POST" || r.method == "GET")
}

fn is_function(seg: &str) -> bool {
    matches!(seg, "getMemberObjects" | "microsoft.graph.getMemberObjects")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Skip {
    /// Where the next page starts.
    o: usize,
    /// The simulator process that issued it.
    e: String,
}

impl Api<'_> {
    /// The answer to a getMemberObjects call on object `id`.
    pub(super) fn member_objects(&self, t: &Tenant, id: &str, r: &GraphRequest) -> GraphResponse {
        let security_only = if r.method == "GET" {
            match r.param("securityEnabledOnly") {
                Some("true") => true,
                Some("false") => false,
                _ => return bad("securityEnabledOnly is required in the link of a next page."),
            }
        } else {
            match r.body.as_ref().and_then(|b| b.get("securityEnabledOnly")) {
                Some(Value::Bool(b)) => *b,
                Some(_) => return bad("Invalid value for securityEnabledOnly: a boolean is expected."),
                None => return bad("The parameter 'securityEnabledOnly' is required for the action getMemberObjects."),
            }
        };
        let start = match r.param("$skiptoken") {
            None => 0,
            Some(s) => match URL_SAFE_NO_PAD
                .decode(s)
                .ok()
                .and_then(|b| serde_json::from_slice::<Skip>(&b).ok())
            {
                Some(k) if k.e == self.epoch => k.o,
                _ => return bad("The $skiptoken is not valid."),
            },
        };
        if t.kind_of(id).is_none() {
            return GraphResponse::error(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
            );
        }
        let ids: Vec<String> = t
            .transitive_member_of(id)
            .into_iter()
            .filter(|g| {
                !security_only
                    || t.get(Kind::Group, g)
                        .and_then(|o| o.props.get("securityEnabled"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
            })
            .collect();
        let size = match self.page_size_of(r) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let page: Vec<&String> = ids.iter().skip(start).take(size).collect();
        let mut out = serde_json::Map::new();
        out.insert(
            "@odata.context".into(),
            json!(format!("{}/$metadata#Collection(Edm.String)", r.base)),
        );
        if start + page.len() < ids.len() {
            let token = URL_SAFE_NO_PAD.encode(
                serde_json::to_vec(&Skip {
                    o: start + page.len(),
                    e: self.epoch.to_string(),
                })
                .unwrap_or_default(),
            );
            let path = r.path.trim_start_matches('/').trim_end_matches('/');
            out.insert(
                "@odata.nextLink".into(),
                json!(self.link(
                    r,
                    path,
                    &[
                        ("securityEnabledOnly", security_only.to_string()),
                        ("$skiptoken", token),
                    ],
                    false,
                )),
            );
        }
        out.insert("value".into(), json!(page));
        GraphResponse::json(200, Value::Object(out))
    }
}
