//! The directory around the objects: the organization, service principals and their
//! assignments, and applications (B2C's `b2c-extensions-app` with its extension properties).

use super::api::{Api, GraphRequest, GraphResponse};
use super::odata;
use super::tenant::{Kind, Tenant};
use serde_json::{json, Value};

impl Api<'_> {
    pub(super) fn organization(&self, t: &Tenant, r: &GraphRequest) -> GraphResponse {
        let domains: Vec<Value> = t
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                json!({"name": d, "isDefault": i + 1 == t.domains.len(), "isInitial": i == 0, "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnline"})
            })
            .collect();
        GraphResponse::json(
            200,
            json!({
                "@odata.context": format!("{}/$metadata#organization", r.base),
                "value": [{
                    "id": t.id,
                    "displayName": t.display_name,
                    "tenantType": if t.b2c { "AAD B2C" } else { "AAD" },
                    "verifiedDomains": domains
                }]
            }),
        )
    }

    pub(super) fn service_principals(&self, t: &Tenant, r: &GraphRequest) -> GraphResponse {
        let f = match Self::filter_of(r) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let value: Vec<Value> = t
            .service_principals
            .iter()
            .map(sp_json)
            .filter(|v| f.as_ref().is_none_or(|f| odata::eval(f, v)))
            .collect();
        GraphResponse::json(
            200,
            json!({"@odata.context": format!("{}/$metadata#servicePrincipals", r.base), "value": value}),
        )
    }

    pub(super) fn assignments(&self, t: &Tenant, id: &str, r: &GraphRequest) -> GraphResponse {
        let Some(sp) = t.service_principals.iter().find(|s| s.id == id) else {
            return not_found(id);
        };
        let value: Vec<Value> = sp
            .assignments
            .iter()
            .filter_map(|a| {
                let o = t.get(a.principal.0, &a.principal.1)?;
                Some(json!({
                    "id": a.id,
                    "appRoleId": a.app_role_id,
                    "principalId": a.principal.1,
                    "principalType": match a.principal.0 { Kind::User => "User", Kind::Group => "Group" },
                    "principalDisplayName": o.props.get("displayName"),
                    "resourceId": sp.id,
                    "resourceDisplayName": sp.display_name,
                }))
            })
            .collect();
        GraphResponse::json(
            200,
            json!({"@odata.context": format!("{}/$metadata#servicePrincipals('{id}')/appRoleAssignedTo", r.base), "value": value}),
        )
    }

    /// `GET /applications` (with `$filter`, e.g. `displayName eq 'b2c-extensions-app'` or
    /// `startswith(displayName,'b2c-extensions-app')`).
    pub(super) fn applications(&self, t: &Tenant, r: &GraphRequest) -> GraphResponse {
        let f = match Self::filter_of(r) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let value: Vec<Value> = applications(t)
            .into_iter()
            .filter(|v| f.as_ref().is_none_or(|f| odata::eval(f, v)))
            .collect();
        GraphResponse::json(
            200,
            json!({"@odata.context": format!("{}/$metadata#applications", r.base), "value": value}),
        )
    }

    pub(super) fn application(&self, t: &Tenant, id: &str, r: &GraphRequest) -> GraphResponse {
        match applications(t).into_iter().find(|a| a["id"] == id) {
            Some(mut a) => {
                if let Some(o) = a.as_object_mut() {
                    o.insert(
                        "@odata.context".into(),
                        json!(format!("{}/$metadata#applications/$entity", r.base)),
                    );
                }
                GraphResponse::json(200, a)
            }
            None => not_found(id),
        }
    }

    /// `GET /applications/{id}/extensionProperties`: the extension attributes the app owns,
    /// each named `extension_<appId without dashes>_<name>`.
    pub(super) fn extension_properties(
        &self,
        t: &Tenant,
        id: &str,
        r: &GraphRequest,
    ) -> GraphResponse {
        if !applications(t).iter().any(|a| a["id"] == id) {
            return not_found(id);
        }
        let value: Vec<Value> = if id == extensions_app_object_id(t) {
            let prefix = format!("extension_{}_", t.extension_app);
            let mut names: Vec<&String> = t
                .objects(Kind::User)
                .values()
                .flat_map(|o| o.props.keys())
                .filter(|k| k.starts_with(&prefix))
                .collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .map(|n| {
                    json!({
                        "id": object_id_of(n),
                        "name": n,
                        "dataType": "String",
                        "isMultiValued": false,
                        "targetObjects": ["User"],
                        "appDisplayName": "b2c-extensions-app"
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        GraphResponse::json(
            200,
            json!({"@odata.context": format!("{}/$metadata#applications('{id}')/extensionProperties", r.base), "value": value}),
        )
    }
}

fn not_found(id: &str) -> GraphResponse {
    GraphResponse::error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// 32 hex digits as a GUID.
fn guid(h: &str) -> String {
    if h.len() != 32 || !h.is_ascii() {
        return h.to_string();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The b2c-extensions-app's application (client) id: the hex digits extension attribute
/// names carry, as a GUID.
pub fn extensions_app_id(t: &Tenant) -> String {
    guid(&t.extension_app)
}

/// An object id derived from an app id (stable per tenant, distinct from it).
fn object_id_of(app_id: &str) -> String {
    guid(&app_id.replace('-', "").chars().rev().collect::<String>())
}

fn extensions_app_object_id(t: &Tenant) -> String {
    object_id_of(&extensions_app_id(t))
}

/// The tenant's app registrations: the enterprise application's, and in B2C the
/// b2c-extensions-app.
fn applications(t: &Tenant) -> Vec<Value> {
    let mut out: Vec<Value> = t
        .service_principals
        .iter()
        .map(|sp| {
            json!({
                "id": object_id_of(&sp.app_id),
                "appId": sp.app_id,
                "displayName": sp.display_name,
                "signInAudience": "AzureADMyOrg"
            })
        })
        .collect();
    if t.b2c {
        out.push(json!({
            "id": extensions_app_object_id(t),
            "appId": extensions_app_id(t),
            "displayName": "b2c-extensions-app. Do not modify. Used by AADB2C for storing user data.",
            "signInAudience": "AzureADMyOrg"
        }));
    }
    out
}

pub(super) fn sp_json(sp: &super::tenant::ServicePrincipal) -> Value {
    json!({"id": sp.id, "appId": sp.app_id, "displayName": sp.display_name, "servicePrincipalType": "Application", "accountEnabled": true})
}
