//! Finding the object a create matches, without trusting the service's search blindly.
//!
//! Every object a filtered search returns is checked against the matching attribute, with
//! that attribute's case rules (userName and emails case-insensitive as RFC 7643 defines them,
//! externalId case-exact, group displayName as the service's `/Schemas` says, else
//! case-insensitive). One verified object is the match; more than one
//! is a conflict ([`TargetError::Ambiguous`]) and nothing is written to any of them. A service
//! that says it does not filter (`filter.supported: false`), refuses the filter, or evidently
//! ignores it (it answers with objects that do not match) is listed page by page and matched
//! here; when it cannot be listed either, matching refuses with one clear message
//! ([`TargetError::CannotMatch`]) instead of guessing.
//!
//! List requests carry `count` (the page size) unless the service failed on it: after a 500
//! or 400 on a request with `count`, the same request is sent without it, and when that
//! works `count` is left out from then on (for the life of this target: one `sync`, or `serve`
//! until restarted).

use super::listing::{values_at, Listed};
use super::{quote, urlencode, ScimTarget, UserMatch};
use idsync_core::{Group, Match, TargetError, User};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

/// What was learned about the service during this run.
#[derive(Debug, Default)]
pub(super) struct Learned {
    /// The service failed on `count`: list requests go without it.
    no_count: AtomicBool,
    /// The service answered a filtered search with objects that do not match the filter.
    ignores_filter: AtomicBool,
    /// How the service compares group displayNames (its `/Schemas`), read once.
    group_name_case: tokio::sync::OnceCell<Case>,
    /// The endpoints listed for matching during this run (`listing.rs`), or why listing one
    /// failed, by endpoint.
    listed: tokio::sync::Mutex<std::collections::BTreeMap<String, Result<Listed, String>>>,
    /// A run ended while the listings were in use: let them go at their next use.
    listed_stale: AtomicBool,
    /// A filtered search was answered (its answer showed whether filters are honoured).
    searched: AtomicBool,
    /// Held by the first filtered search while it runs.
    first_search: tokio::sync::Mutex<()>,
}

/// How one matching attribute compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Exact,
    Insensitive,
}

/// One matching attribute and the value searched for.
struct Wanted<'a> {
    /// The SCIM attribute path as filters write it (`userName`, `emails.value`).
    path: String,
    value: &'a str,
    case: Case,
}

impl Wanted<'_> {
    fn same(&self, found: &str) -> bool {
        match self.case {
            Case::Exact => found == self.value,
            Case::Insensitive => {
                found == self.value || found.to_lowercase() == self.value.to_lowercase()
            }
        }
    }

    /// Whether a resource as the service returned it holds the value.
    fn verifies(&self, resource: &Value) -> bool {
        values_at(resource, &self.path)
            .into_iter()
            .any(|t| self.same(t))
    }

    fn filter(&self) -> String {
        format!("{} eq {}", self.path, quote(self.value))
    }

    /// The match of `target_id`, saying it was verified by this attribute and value.
    fn matched(&self, target_id: String) -> Match {
        Match {
            target_id,
            by: Some(format!("{} {:?}", self.path, self.value)),
        }
    }
}

/// The case rule of a SCIM attribute path (RFC 7643 §4.1.1, §4.2, §3.1: externalId is
/// case-exact; userName, emails, phoneNumbers and displayName are not; other attributes of the
/// core schema are case-insensitive strings as well).
fn case_of(path: &str) -> Case {
    if path == "externalId" || path == "id" {
        Case::Exact
    } else {
        Case::Insensitive
    }
}

/// The Group schema's `displayName.caseExact`, from a schema resource as `/Schemas` serves it.
fn display_name_case(schema: &Value) -> Option<Case> {
    schema
        .get("attributes")?
        .as_array()?
        .iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some("displayName"))?
        .get("caseExact")?
        .as_bool()
        .map(|exact| {
            if exact {
                Case::Exact
            } else {
                Case::Insensitive
            }
        })
}

fn id_of(resource: &Value) -> Option<String> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Whether a failed request's reason is the service failing on something in the query (a
/// 500 or 400), as `send` words it.
fn failed_on_query(e: &TargetError) -> bool {
    match e {
        TargetError::Protocol(r) | TargetError::Unavailable(r) => {
            r.contains("HTTP 500") || r.contains("HTTP 400")
        }
        _ => false,
    }
}

impl ScimTarget {
    /// GET a list endpoint with these query parameters and the page size `count` (left out
    /// where the service fails on it).
    pub(super) async fn list_get(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
        count: usize,
    ) -> Result<Value, TargetError> {
        let mut path = endpoint.to_string();
        for (i, (k, v)) in query.iter().enumerate() {
            path.push(if i == 0 { '?' } else { '&' });
            path.push_str(k);
            path.push('=');
            path.push_str(&urlencode(v));
        }
        if self.learned.no_count.load(Ordering::Relaxed) {
            return self.get(&path).await;
        }
        let sep = if query.is_empty() { '?' } else { '&' };
        match self.get(&format!("{path}{sep}count={count}")).await {
            Err(e) if failed_on_query(&e) => {
                // Once more without `count`: a service that crashes on it answers the rest.
                let v = self.get(&path).await.map_err(|_| e)?;
                if !self.learned.no_count.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target_url = %self.cfg.base_url,
                        "the target fails on list requests with count: lists go without it from now on"
                    );
                }
                Ok(v)
            }
            other => other,
        }
    }

    /// Every resource of an endpoint, page by page, in the service's paging (a service that
    /// answers fewer than asked, or ignores `count`, is followed by `startIndex`). A page
    /// that fails fails the whole read.
    pub(super) async fn list_all(&self, endpoint: &str) -> Result<Vec<Value>, TargetError> {
        self.list_all_with(endpoint, &[]).await
    }

    /// [`Self::list_all`] with further query parameters on every page.
    async fn list_all_with(
        &self,
        endpoint: &str,
        extra: &[(&str, String)],
    ) -> Result<Vec<Value>, TargetError> {
        let page = self.capabilities().await?.max_results;
        let mut out: Vec<Value> = Vec::new();
        let mut start = 1usize;
        loop {
            let mut query = vec![("startIndex", start.to_string())];
            query.extend(extra.iter().cloned());
            let v = self.list_get(endpoint, &query, page).await?;
            let items = v
                .get("Resources")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    TargetError::Protocol(format!(
                        "GET {endpoint}: the answer has no Resources list"
                    ))
                })?;
            let total = v.get("totalResults").and_then(Value::as_u64).unwrap_or(0) as usize;
            let n = items.len();
            out.extend(items.iter().cloned());
            if n == 0 || out.len() >= total {
                return Ok(out);
            }
            start += n;
        }
    }

    /// The ids of the objects of `endpoint` that verify as holding `wanted`: by the service's
    /// filter where it honours it, else by listing everything and matching here.
    async fn verified(
        &self,
        endpoint: &str,
        wanted: &Wanted<'_>,
    ) -> Result<Vec<String>, TargetError> {
        let caps = self.capabilities().await?;
        // The first search goes alone: a service that ignores filters answers it with its
        // whole list, and the creates running beside it would each have had the same list
        // (a listing per create) before anyone learned it.
        let _first = if caps.filter && !self.learned.searched.load(Ordering::Relaxed) {
            Some(self.learned.first_search.lock().await)
        } else {
            None
        };
        let why_local = if !caps.filter {
            Some("its ServiceProviderConfig says filter.supported: false")
        } else if self.learned.ignores_filter.load(Ordering::Relaxed) {
            Some("it ignores filters")
        } else {
            None
        };
        if why_local.is_none() {
            // Two are enough to tell one match from a conflict; a service that ignores the
            // filter shows it by what it returns.
            match self
                .list_get(endpoint, &[("filter", wanted.filter())], 2)
                .await
            {
                Ok(v) => {
                    self.learned.searched.store(true, Ordering::Relaxed);
                    let items = v
                        .get("Resources")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if items.iter().all(|r| wanted.verifies(r)) {
                        let ids: Vec<String> = items.iter().filter_map(id_of).collect();
                        return Ok(ids);
                    }
                    if !self.learned.ignores_filter.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            target_url = %self.cfg.base_url,
                            filter = %wanted.filter(),
                            "the target answered a filtered search with objects that do not match it: it ignores filters, so objects are matched by listing them"
                        );
                    }
                }
                Err(e @ (TargetError::Protocol(_) | TargetError::CannotMatch(_))) => {
                    // The filter refused: list and match here.
                    tracing::warn!(error = %e, "the target refused a filtered search: objects are matched by listing them");
                    self.learned.ignores_filter.store(true, Ordering::Relaxed);
                    self.learned.searched.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let why = why_local.unwrap_or("it does not filter as asked");
        // Listed once per run, then kept up to date with what the run changes (`listing.rs`).
        let mut listed = self.learned.listed.lock().await;
        if self.learned.listed_stale.swap(false, Ordering::Relaxed) {
            listed.clear();
        }
        if !listed.contains_key(endpoint) {
            // Matching needs no member lists (a service that does not know the parameter
            // answers with them, which is only larger).
            let extra = [("excludedAttributes", "members".to_string())];
            let extra: &[(&str, String)] = if endpoint == "/Groups" { &extra } else { &[] };
            let got = match self.list_all_with(endpoint, extra).await {
                Ok(all) => {
                    tracing::debug!(
                        endpoint,
                        resources = all.len(),
                        "listed for matching during this run"
                    );
                    Ok(Listed::new(all))
                }
                // Refused (not a transient failure): the run does not ask again per create.
                Err(TargetError::Protocol(r)) => Err(format!(
                    "{} cannot be searched ({why}) and listing {endpoint} failed: {r}",
                    self.cfg.base_url
                )),
                Err(other) => return Err(other),
            };
            listed.insert(endpoint.to_string(), got);
        }
        match listed.get_mut(endpoint) {
            Some(Ok(l)) => Ok(l
                .candidates(&wanted.path, wanted.value)
                .into_iter()
                .filter(|r| wanted.verifies(r))
                .filter_map(id_of)
                .collect()),
            Some(Err(reason)) => Err(TargetError::CannotMatch(reason.clone())),
            None => Ok(Vec::new()),
        }
    }

    /// Keep this run's listings up to date with an operation the service applied.
    pub(super) async fn listing_follows(
        &self,
        op: &idsync_core::TargetOp,
        outcome: &idsync_core::Outcome,
    ) {
        let Some((endpoint, id, now)) = super::listing::change_of(op, outcome) else {
            return;
        };
        let mut listed = self.learned.listed.lock().await;
        if self.learned.listed_stale.swap(false, Ordering::Relaxed) {
            listed.clear();
        }
        if let Some(Ok(l)) = listed.get_mut(endpoint) {
            match now {
                Some(resource) => l.put(resource),
                None => l.remove(&id),
            }
        }
    }

    /// The run is over: its listings are let go.
    pub(super) fn forget_listings(&self) {
        match self.learned.listed.try_lock() {
            Ok(mut listed) => listed.clear(),
            Err(_) => self.learned.listed_stale.store(true, Ordering::Relaxed),
        }
    }

    /// One verified match (with the attribute that verified it), none, or a conflict naming
    /// the candidates.
    async fn the_match(
        &self,
        endpoint: &str,
        object: impl FnOnce() -> String,
        wanted: &Wanted<'_>,
    ) -> Result<Option<Match>, TargetError> {
        let mut ids = self.verified(endpoint, wanted).await?;
        ids.sort();
        ids.dedup();
        match ids.len() {
            0 => Ok(None),
            1 => Ok(ids.pop().map(|id| wanted.matched(id))),
            _ => Err(TargetError::Ambiguous {
                object: format!("{} (by {} {:?})", object(), wanted.path, wanted.value),
                candidates: ids,
            }),
        }
    }

    pub(super) async fn match_user(&self, user: &User) -> Result<Option<Match>, TargetError> {
        for m in &self.cfg.user_match {
            let wanted = match m {
                UserMatch::UserName => Wanted {
                    path: "userName".into(),
                    value: &user.user_name,
                    case: case_of("userName"),
                },
                UserMatch::Email => match user.primary_email() {
                    Some(e) => Wanted {
                        path: "emails.value".into(),
                        value: e,
                        case: case_of("emails.value"),
                    },
                    None => continue,
                },
            };
            let object = || format!("user {:?}", user.user_name);
            if let Some(found) = self.the_match("/Users", object, &wanted).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// How the service compares group displayNames: as its `/Schemas` says, else as RFC 7643
    /// defines it (not case-exact).
    async fn group_name_case(&self) -> Case {
        const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
        *self
            .learned
            .group_name_case
            .get_or_init(|| async {
                let said = match self.get(&format!("/Schemas/{GROUP}")).await {
                    Ok(schema) => display_name_case(&schema),
                    // Services that serve /Schemas only as a list.
                    Err(_) => match self.get("/Schemas").await {
                        Ok(list) => list
                            .get("Resources")
                            .and_then(Value::as_array)
                            .and_then(|all| {
                                all.iter()
                                    .find(|s| s.get("id").and_then(Value::as_str) == Some(GROUP))
                            })
                            .and_then(display_name_case),
                        Err(_) => None,
                    },
                };
                said.unwrap_or_else(|| case_of("displayName"))
            })
            .await
    }

    pub(super) async fn match_group(&self, group: &Group) -> Result<Option<Match>, TargetError> {
        let wanted = Wanted {
            path: "displayName".into(),
            value: &group.display_name,
            case: self.group_name_case().await,
        };
        let object = || format!("group {:?}", group.display_name);
        self.the_match("/Groups", object, &wanted).await
    }

    /// Whether some user verifiably holds `value` in `attribute` (a mapped target attribute).
    pub(super) async fn user_value_taken(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<bool, TargetError> {
        let path = match attribute {
            a if a.starts_with("emails[") => "emails.value".to_string(),
            a if a.starts_with("phoneNumbers[") => "phoneNumbers.value".to_string(),
            a => a.to_string(),
        };
        let wanted = Wanted {
            case: case_of(&path),
            path,
            value,
        };
        Ok(!self.verified("/Users", &wanted).await?.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wanted<'a>(path: &str, value: &'a str) -> Wanted<'a> {
        Wanted {
            path: path.into(),
            value,
            case: case_of(path),
        }
    }

    #[test]
    fn attributes_compare_by_their_case_rules() {
        let u = json!({"id": "1", "userName": "Ann@X.org", "externalId": "E-1",
            "emails": [{"value": "other@x.org"}, {"value": "ANN@x.org"}]});
        assert!(wanted("userName", "ann@x.org").verifies(&u));
        assert!(!wanted("userName", "anne@x.org").verifies(&u));
        assert!(wanted("emails.value", "ann@X.ORG").verifies(&u));
        assert!(wanted("externalId", "E-1").verifies(&u));
        assert!(!wanted("externalId", "e-1").verifies(&u));
        assert!(!wanted("displayName", "x").verifies(&u));
    }

    #[tokio::test]
    async fn a_runs_listings_are_let_go_when_it_ends_even_while_in_use() {
        let t = ScimTarget::new(super::super::ScimTargetConfig::new(
            "http://127.0.0.1:9",
            "t",
            super::super::Profile::Generic,
        ))
        .unwrap();
        let listing = || Ok(Listed::new(vec![json!({"id": "1", "userName": "a"})]));
        t.learned
            .listed
            .lock()
            .await
            .insert("/Users".into(), listing());
        t.forget_listings();
        assert!(t.learned.listed.lock().await.is_empty());

        t.learned
            .listed
            .lock()
            .await
            .insert("/Users".into(), listing());
        {
            let _in_use = t.learned.listed.lock().await;
            t.forget_listings();
        }
        // Let go at its next use: a create applied after the run keeps nothing of it.
        let op = idsync_core::TargetOp::DeleteUser {
            target_id: "1".into(),
        };
        t.listing_follows(&op, &idsync_core::Outcome::Applied { target_id: None })
            .await;
        assert!(t.learned.listed.lock().await.is_empty());
    }

    #[test]
    fn the_group_schema_says_how_display_names_compare() {
        let schema = |exact: bool| json!({"attributes": [{"name": "members"}, {"name": "displayName", "caseExact": exact}]});
        assert_eq!(display_name_case(&schema(true)), Some(Case::Exact));
        assert_eq!(display_name_case(&schema(false)), Some(Case::Insensitive));
        assert_eq!(display_name_case(&json!({"attributes": []})), None);
    }
}
