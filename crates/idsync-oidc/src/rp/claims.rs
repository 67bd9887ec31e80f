//! What a validated ID token says about the user, by the identity provider's style.
//!
//! Entra ID (v2 tokens): the subject is `oid` (the user's object id, the same in every
//! application; `sub` is pairwise per application), `tid` must be the configured tenant,
//! `groups` holds object ids, `roles` app roles; more groups than fit (200 in a JWT) are left
//! out and `_claim_names`/`_claim_sources` name `groups` instead (or, in the implicit flow,
//! `hasgroups` is true): that is [`Groups::Overage`], resolved by the caller through Graph.
//! Azure AD B2C user flows: the subject is `sub` (the object id with the default subject
//! setting), the user flow in `tfp` (or `acr` with the older token compatibility setting) must
//! be the configured one, the email comes from `emails` (an array), and there is no `groups`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{IdpStyle, RpError};

/// The user's group memberships as the token carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "ids", rename_all = "snake_case")]
pub enum Groups {
    /// The token has no group claim: nothing is known (B2C never sends one).
    Absent,
    /// The groups the token lists (Entra: object ids; another provider: what it sends).
    Listed(Vec<String>),
    /// Entra left the groups out because there are too many: resolve them through Graph
    /// (`getMemberObjects`).
    Overage,
}

/// The claims of a validated ID token. Attributes the token does not carry are `None`, never
/// empty strings: absent claims change nothing downstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginClaims {
    /// The user's stable identifier at the provider: `oid` for Entra ID, `sub` otherwise.
    pub subject: String,
    pub issuer: String,
    /// `sub` as the token has it (pairwise for Entra ID).
    pub sub: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub object_id: Option<String>,
    pub tenant_id: Option<String>,
    /// The B2C user flow (`tfp` or `acr`).
    pub policy: Option<String>,
    pub groups: Groups,
    pub roles: Option<Vec<String>>,
    /// Every claim of the token, for mappings that want one not named above.
    pub raw: Map<String, Value>,
}

fn string(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn strings(claims: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    let items = claims.get(name)?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

fn entra_overage(claims: &Map<String, Value>) -> bool {
    let named = claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|names| names.contains_key("groups"));
    let has = matches!(claims.get("hasgroups"), Some(Value::Bool(true)))
        || claims.get("hasgroups").and_then(Value::as_str) == Some("true");
    named || has
}

pub(crate) fn extract(
    style: &IdpStyle,
    issuer: &str,
    claims: Map<String, Value>,
) -> Result<LoginClaims, RpError> {
    let sub = string(&claims, "sub").ok_or(RpError::MissingClaim("sub"))?;
    let mut out = LoginClaims {
        subject: sub.clone(),
        issuer: issuer.to_owned(),
        sub,
        username: string(&claims, "preferred_username"),
        email: string(&claims, "email"),
        display_name: string(&claims, "name"),
        given_name: string(&claims, "given_name"),
        family_name: string(&claims, "family_name"),
        object_id: string(&claims, "oid"),
        tenant_id: string(&claims, "tid"),
        policy: None,
        groups: Groups::Absent,
        roles: strings(&claims, "roles"),
        raw: Map::new(),
    };
    match style {
        IdpStyle::Generic => {
            if let Some(groups) = strings(&claims, "groups") {
                out.groups = Groups::Listed(groups);
            }
        }
        IdpStyle::EntraId { tenant_id } => {
            let tid = out.tenant_id.clone().ok_or(RpError::MissingClaim("tid"))?;
            if !tid.eq_ignore_ascii_case(tenant_id) {
                return Err(RpError::WrongTenant {
                    expected: tenant_id.clone(),
                    found: tid,
                });
            }
            out.subject = out.object_id.clone().ok_or(RpError::MissingClaim("oid"))?;
            out.groups = if entra_overage(&claims) {
                Groups::Overage
            } else if let Some(groups) = strings(&claims, "groups") {
                Groups::Listed(groups)
            } else {
                Groups::Absent
            };
        }
        IdpStyle::AzureAdB2c { policy } => {
            let found = string(&claims, "tfp")
                .or_else(|| string(&claims, "acr"))
                .ok_or(RpError::MissingClaim("tfp"))?;
            // B2C policy names are case-insensitive (B2C_1_SignIn and b2c_1_signin are one).
            if !found.eq_ignore_ascii_case(policy) {
                return Err(RpError::WrongPolicy {
                    expected: policy.clone(),
                    found,
                });
            }
            out.policy = Some(found);
            if let Some(first) = strings(&claims, "emails").and_then(|e| e.into_iter().next()) {
                out.email = Some(first);
            }
            // B2C sends no group claim; whatever a custom policy might put there is not read.
            out.groups = Groups::Absent;
            out.roles = None;
        }
    }
    out.raw = claims;
    Ok(out)
}
