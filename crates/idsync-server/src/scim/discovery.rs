//! Discovery (RFC 7644 §4): /ServiceProviderConfig, /ResourceTypes, /Schemas; and /Me.

use super::*;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use idsync_scim::schema::{
    all_schemas, schema_json, ResourceSchema, GROUP_RESOURCE, USER_RESOURCE,
};
use idsync_scim::{ScimError, LIST_RESPONSE, SERVICE_PROVIDER_CONFIG_SCHEMA};
use serde_json::{json, Value};

pub(super) async fn service_provider_config(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let bulk = if st.atlassian(&dir).is_some() {
        json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0})
    } else {
        json!({"supported": true, "maxOperations": BULK_MAX_OPERATIONS, "maxPayloadSize": BULK_MAX_PAYLOAD})
    };
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
            "documentationUri": "https://github.com/idsync/idsync",
            "patch": {"supported": true},
            "bulk": bulk,
            "filter": {"supported": true, "maxResults": st.max_results(&dir)},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A token made with `idsync token create <directory>`",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
        }),
        None,
        None,
    ))
}

pub(super) fn resource_schemas() -> [&'static ResourceSchema; 2] {
    [&USER_RESOURCE, &GROUP_RESOURCE]
}

pub(super) async fn resource_types(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let items: Vec<Value> = resource_schemas()
        .iter()
        .map(|r| r.resource_type_json(&base))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [LIST_RESPONSE], "totalResults": items.len(), "startIndex": 1, "itemsPerPage": items.len(), "Resources": items}),
        None,
        None,
    ))
}

pub(super) async fn resource_type(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let r = resource_schemas()
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {id}")))?;
    Ok(scim_json(
        StatusCode::OK,
        &r.resource_type_json(&base),
        None,
        None,
    ))
}

pub(super) async fn schemas(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let items: Vec<Value> = all_schemas()
        .iter()
        .map(|s| schema_json(s, &base))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [LIST_RESPONSE], "totalResults": items.len(), "startIndex": 1, "itemsPerPage": items.len(), "Resources": items}),
        None,
        None,
    ))
}

pub(super) async fn schema(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let s = all_schemas()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")))?;
    Ok(scim_json(
        StatusCode::OK,
        &schema_json(s, &base),
        None,
        None,
    ))
}

pub(super) async fn me() -> ScimResult {
    Err(ScimError::new(
        501,
        None,
        "/Me is not supported: tokens authenticate a provisioning client, not a user",
    )
    .into())
}
