//! Delta queries: rounds from scratch and from delta links, synchronization resets, and
//! the replays Graph may send in an initial round.

use super::api::{
    bad, decode, encode, is_delta, kind_name, Api, Cursor, GraphRequest, GraphResponse,
    DELTA_LIFETIME_MS, GROUP_DEFAULTS, USER_DEFAULTS,
};
use super::odata;
use super::tenant::{DeltaItem, Kind, Tenant};
use serde_json::{json, Map, Value};

impl Api<'_> {
    pub(super) fn delta(&self, t: &Tenant, kind: Kind, r: &GraphRequest) -> GraphResponse {
        if t.b2c {
            return GraphResponse::error(
                400,
                "Request_UnsupportedQuery",
                "Change tracking (delta query) is not supported in Azure AD B2C and Microsoft Entra External ID tenants.",
            );
        }
        let size = r
            .max_page_size
            .unwrap_or(self.default_page)
            .clamp(1, self.max_page.clamp(1, 999));
        // An empty `$deltatoken` (a synchronization reset's Location) starts a new round.
        let token = r
            .param("$skiptoken")
            .or_else(|| r.param("$deltatoken"))
            .filter(|t| !t.is_empty());
        let cursor = match token {
            None => Cursor {
                k: kind_name(kind).into(),
                s: 0,
                v: t.version(),
                a: None,
                sel: odata::parse_select(r.param("$select")),
                e: self.epoch.into(),
                t: self.now_ms,
            },
            Some(tok) => {
                let expired = || {
                    GraphResponse::error(
                    410,
                    "syncStateNotFound",
                    "The delta token is no longer valid: the sync state was not found or has expired. Restart the sync without a token.",
                )
                };
                let Some(c) = decode(tok) else {
                    return bad("The delta or skip token is not valid.");
                };
                if c.k != kind_name(kind) {
                    return bad("The delta or skip token belongs to another collection.");
                }
                if c.e != self.epoch || c.v < t.delta_floor || self.now_ms - c.t > DELTA_LIFETIME_MS
                {
                    return expired();
                }
                if r.param("$deltatoken").is_some() {
                    // A new round: what changed since the last one.
                    Cursor {
                        s: c.v,
                        v: t.version(),
                        a: None,
                        t: self.now_ms,
                        ..c
                    }
                } else {
                    c
                }
            }
        };
        let (mut page, more) = t.changes_page(kind, cursor.s, cursor.v, cursor.a.as_deref(), size);
        if cursor.s == 0 && self.delta_replay > 0 {
            if let Some(after) = cursor.a.as_deref() {
                let mut again = replayed(t, kind, after, cursor.v, self.delta_replay);
                again.append(&mut page);
                page = again;
            }
        }
        let value: Vec<Value> = page
            .iter()
            .filter_map(|item| self.delta_item(t, kind, item, &cursor.sel, cursor.s > 0))
            .collect();
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            json!(format!("{}/$metadata#{}", r.base, kind_name(kind))),
        );
        let path = format!("{}/delta", kind_name(kind));
        if more {
            let next = Cursor {
                a: page.iter().map(|i| i.id()).max().map(str::to_string),
                ..cursor
            };
            out.insert(
                "@odata.nextLink".into(),
                json!(self.link(r, &path, &[("$skiptoken", encode(&next))], false)),
            );
        } else {
            let done = Cursor {
                s: cursor.v,
                a: None,
                t: self.now_ms,
                ..cursor
            };
            out.insert(
                "@odata.deltaLink".into(),
                json!(self.link(r, &path, &[("$deltatoken", encode(&done))], false)),
            );
        }
        out.insert("value".into(), Value::Array(value));
        GraphResponse::json(200, Value::Object(out))
    }

    fn delta_item(
        &self,
        t: &Tenant,
        kind: Kind,
        item: &DeltaItem,
        select: &[String],
        later_round: bool,
    ) -> Option<Value> {
        let members_json = |list: &[((Kind, String), bool)]| -> Value {
            Value::Array(
                list.iter()
                    .map(|((k, id), added)| {
                        if *added {
                            json!({"@odata.type": k.odata_type(), "id": id})
                        } else {
                            json!({"@odata.type": k.odata_type(), "id": id, "@removed": {"reason": "deleted"}})
                        }
                    })
                    .collect(),
            )
        };
        match item {
            DeltaItem::Removed { id } => Some(json!({
                "id": id,
                // Entra soft-deletes users (restorable for 30 days); security groups go for good.
                "@removed": {"reason": if kind == Kind::User { "changed" } else { "deleted" }}
            })),
            DeltaItem::MembersOnly { id, members } => {
                Some(json!({"id": id, "members@delta": members_json(members)}))
            }
            DeltaItem::Changed { id, members } => {
                let o = t.get(kind, id)?;
                let defaults = match kind {
                    Kind::User => USER_DEFAULTS,
                    Kind::Group => GROUP_DEFAULTS,
                };
                let sparse = ["displayName".to_string()];
                let select = if self.sparse_delta && later_round {
                    &sparse[..]
                } else {
                    select
                };
                let mut v = odata::project(&o.props, select, defaults);
                if kind == Kind::User && select.iter().any(|s| s.eq_ignore_ascii_case("manager")) {
                    if let Some(m) = o.props.get("manager").and_then(|m| m.get("id")) {
                        v.insert(
                            "manager@delta".into(),
                            json!([{"@odata.type": Kind::User.odata_type(), "id": m}]),
                        );
                    }
                }
                if let Some(m) = members {
                    v.insert("members@delta".into(), members_json(m));
                }
                Some(Value::Object(v))
            }
        }
    }
}

/// The last `n` objects of an initial round at or before `after` (the page before's tail),
/// to be sent again.
fn replayed(t: &Tenant, kind: Kind, after: &str, upto: u64, n: usize) -> Vec<DeltaItem> {
    let mut out: Vec<DeltaItem> = t
        .objects(kind)
        .range::<str, _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(after)))
        .rev()
        .filter(|(_, o)| o.changed <= upto)
        .take(n)
        .map(|(id, _)| DeltaItem::Changed {
            id: id.clone(),
            members: (kind == Kind::Group).then(|| {
                t.members(id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| (m, true))
                    .collect()
            }),
        })
        .collect();
    out.reverse();
    out
}

/// Does this request begin a new initial round from a synchronization reset's `Location`?
pub fn starts_resync(r: &GraphRequest) -> bool {
    r.path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .is_some_and(is_delta)
        && r.param("$deltatoken") == Some("")
}

/// The `Location` of a synchronization reset for this delta request: a new initial round of
/// the same collection with the same `$select`, and an empty `$deltatoken`.
pub fn reset_location(r: &GraphRequest) -> Option<String> {
    let c = decode(r.param("$deltatoken").or_else(|| r.param("$skiptoken"))?)?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    if !c.sel.is_empty() {
        q.append_pair("$select", &c.sel.join(","));
    }
    q.append_pair("$deltatoken", "");
    Some(format!("{}/{}/delta?{}", r.base, c.k, q.finish()))
}
