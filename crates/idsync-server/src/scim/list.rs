//! Lists and searches (RFC 7644 §3.4.2, §3.4.3): parameters, paging, sorting, projection.

use super::*;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use idsync_scim::filter::{values, AttrPath};
use idsync_scim::resource::project;
use idsync_scim::schema::{ResourceSchema, GROUP_RESOURCE, USER_RESOURCE};
use idsync_scim::{ScimError, LIST_RESPONSE, SEARCH_REQUEST};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListParams {
    pub(super) filter: Option<String>,
    pub(super) start_index: Option<String>,
    pub(super) count: Option<String>,
    pub(super) sort_by: Option<String>,
    pub(super) sort_order: Option<String>,
    pub(super) attributes: Option<String>,
    pub(super) excluded_attributes: Option<String>,
}

pub(super) fn split_list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|s| {
            s.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) struct Paging {
    start: usize,
    count: usize,
}

pub(super) fn paging(p: &ListParams, max: usize) -> Result<Paging, ScimError> {
    let num = |s: &Option<String>, what: &str| -> Result<Option<i64>, ScimError> {
        s.as_deref()
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::invalid_value(format!("{what} must be an integer")))
            })
            .transpose()
    };
    let start = num(&p.start_index, "startIndex")?.unwrap_or(1).max(1);
    let count = num(&p.count, "count")?.unwrap_or(100).clamp(0, max as i64);
    Ok(Paging {
        start: usize::try_from(start).unwrap_or(1),
        count: usize::try_from(count).unwrap_or(0),
    })
}

pub(super) fn list_response(
    mut items: Vec<Value>,
    p: &ListParams,
    schema: &ResourceSchema,
    max: usize,
) -> Result<Value, ScimError> {
    if let Some(order) = p
        .sort_order
        .as_deref()
        .filter(|o| !o.eq_ignore_ascii_case("ascending") && !o.eq_ignore_ascii_case("descending"))
    {
        return Err(ScimError::invalid_value(format!(
            "sortOrder: {order:?} is neither \"ascending\" nor \"descending\""
        )));
    }
    if let Some(sort_by) = p.sort_by.as_deref().filter(|s| !s.trim().is_empty()) {
        let path = AttrPath::parse(sort_by.trim()).map_err(|_| {
            ScimError::invalid_value(format!("sortBy: {sort_by:?} is not an attribute path"))
        })?;
        let exact = schema.case_exact(&path);
        let key = |v: &Value| -> Option<String> {
            values(v, &path).into_iter().find_map(|x| match x {
                Value::String(s) if exact => Some(s.clone()),
                Value::String(s) => Some(s.to_lowercase()),
                Value::Object(o) => o
                    .get("value")
                    .and_then(Value::as_str)
                    .map(str::to_lowercase),
                Value::Null => None,
                other => Some(other.to_string()),
            })
        };
        // Resources without the attribute sort last in ascending order.
        items.sort_by(|a, b| match (key(a), key(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        if p.sort_order
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("descending"))
        {
            items.reverse();
        }
    }
    let pg = paging(p, max)?;
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(pg.start - 1)
        .take(pg.count)
        .collect();
    Ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": pg.start,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
}

pub(super) fn project_list(body: &mut Value, p: &ListParams) {
    let (a, x) = (
        split_list(&p.attributes),
        split_list(&p.excluded_attributes),
    );
    if let Some(list) = body.get_mut("Resources").and_then(Value::as_array_mut) {
        for v in list.iter_mut() {
            project(v, &a, &x);
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Projection {
    pub(super) attributes: Option<String>,
    pub(super) excluded_attributes: Option<String>,
}

pub(super) fn project_one(mut v: Value, p: &Projection) -> Value {
    project(
        &mut v,
        &split_list(&p.attributes),
        &split_list(&p.excluded_attributes),
    );
    v
}

/// A POSTed search (RFC 7644 §3.4.3) as list parameters.
pub(super) fn search_params(body: &Bytes) -> Result<ListParams, ScimError> {
    search_request(&parse_body(body)?)
}

/// A SearchRequest body (RFC 7644 §3.4.3) as list parameters. What is not a SearchRequest is
/// refused (§3.12): a body without the SearchRequest schema or with attributes it does not
/// define is `invalidSyntax`; a value of the wrong type is `invalidValue`. Names are
/// case-insensitive; `attributes` may also be one comma-separated string.
fn search_request(v: &Value) -> Result<ListParams, ScimError> {
    let Value::Object(o) = v else {
        return Err(ScimError::invalid_syntax(
            "a search request is a JSON object (a SearchRequest)",
        ));
    };
    let schemas_ok = o
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .and_then(|(_, s)| s.as_array())
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST))
            })
        });
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must be a list holding {SEARCH_REQUEST}"
        )));
    }
    let mut p = ListParams::default();
    for (k, val) in o {
        if val.is_null() {
            continue;
        }
        let bad = |what: &str| ScimError::invalid_value(format!("{k}: expected {what}, got {val}"));
        let text = || {
            val.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad("a string"))
        };
        let int = || {
            val.as_i64()
                .map(|n| n.to_string())
                .ok_or_else(|| bad("an integer"))
        };
        let list = || match val {
            Value::String(s) => Ok(s.clone()),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().ok_or_else(|| bad("a list of attribute names")))
                .collect::<Result<Vec<_>, _>>()
                .map(|names| names.join(",")),
            _ => Err(bad("a list of attribute names")),
        };
        match k.to_ascii_lowercase().as_str() {
            "schemas" => {}
            "filter" => p.filter = Some(text()?),
            "sortby" => p.sort_by = Some(text()?),
            "sortorder" => {
                let order = text()?;
                if !order.eq_ignore_ascii_case("ascending") && !order.eq_ignore_ascii_case("descending") {
                    return Err(bad("\"ascending\" or \"descending\""));
                }
                p.sort_order = Some(order);
            }
            "startindex" => p.start_index = Some(int()?),
            "count" => p.count = Some(int()?),
            "attributes" => p.attributes = Some(list()?),
            "excludedattributes" => p.excluded_attributes = Some(list()?),
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "{k} is not an attribute of a SearchRequest (attributes, excludedAttributes, filter, sortBy, sortOrder, startIndex, count)"
                )))
            }
        }
    }
    Ok(p)
}

/// The resources a list or search covers.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kinds {
    Users,
    Groups,
    Both,
}

/// GET /Users, GET /Groups, and POST .search at the root or under either: the matching
/// resources, paged, sorted and projected.
pub(super) async fn list(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    p: &ListParams,
    kinds: Kinds,
) -> ScimResult {
    let mut items = Vec::new();
    if kinds != Kinds::Groups {
        items.extend(search_users(st, dir, headers, p).await?);
    }
    if kinds != Kinds::Users {
        items.extend(search_groups(st, dir, headers, p).await?);
    }
    let schema = if kinds == Kinds::Groups {
        &GROUP_RESOURCE
    } else {
        &USER_RESOURCE
    };
    let (p, max) = (p.clone(), st.max_results(dir));
    // Sorting, paging and projecting a whole directory's resources is CPU work: off the
    // runtime's threads.
    let out = off_runtime(items.len() > INLINE_RESOURCES_MAX, move || {
        let mut out = list_response(items, &p, schema, max)?;
        project_list(&mut out, &p);
        Ok(out)
    })
    .await?;
    Ok(scim_json(StatusCode::OK, &out, None, None))
}

/// The handler of a GET on a list.
pub(super) fn list_get(
    kinds: Kinds,
) -> impl Fn(State<ScimState>, Path<String>, HeaderMap, Query<ListParams>) -> BoxedScim + Clone {
    move |State(st), Path(dir), headers, Query(p)| {
        Box::pin(async move { list(&st, &dir, &headers, &p, kinds).await })
    }
}

/// The handler of a POSTed search (RFC 7644 §3.4.3).
pub(super) fn list_post(
    kinds: Kinds,
) -> impl Fn(State<ScimState>, Path<String>, HeaderMap, Bytes) -> BoxedScim + Clone {
    move |State(st), Path(dir), headers, body| {
        Box::pin(async move {
            let p = search_params(&body)?;
            list(&st, &dir, &headers, &p, kinds).await
        })
    }
}

pub(super) type BoxedScim = std::pin::Pin<Box<dyn std::future::Future<Output = ScimResult> + Send>>;
