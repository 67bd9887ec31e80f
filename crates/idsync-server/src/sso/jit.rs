//! Just in time, at every sign-in: the upstream's claims, mapped to directory attributes by
//! the upstream's `claims` table, go to the engine's login pipeline (`Runtime::login`,
//! decision 0042), which updates the source's directory, refuses a disabled or scoped-out user,
//! and runs the user's flows within the source's `login_wait`; the product then receives the
//! group names its flow gives the user.

use super::respond::SsoError;
use super::upstream::Upstream;
use super::{Product, Sso};
use idsync_config::ClientSubject;
use idsync_engine::{FlowRun, Login, LoginDecision, LoginError};
use idsync_oidc::provider::UserInfo;
use idsync_oidc::rp::{Groups, LoginClaims};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A claim's value as one string: a string as it is (trimmed, empty is absent), the first
/// non-empty string of a list (B2C's `emails`), a number or boolean as text.
fn claim_text(raw: &Map<String, Value>, claim: &str) -> Option<String> {
    let text = match raw.get(claim)? {
        Value::String(s) => s.trim().to_string(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .find(|s| !s.is_empty())?
            .to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// The login's attributes in directory names, from the claims the token carries: only those
/// present (an absent claim changes nothing). `emails` becomes the primary work address,
/// `name.<part>` a part of the name, any other attribute takes the text.
pub(crate) fn attributes(
    raw: &Map<String, Value>,
    table: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut name = Map::new();
    for (attribute, claim) in table {
        let Some(value) = claim_text(raw, claim) else {
            continue;
        };
        if let Some(part) = attribute.strip_prefix("name.") {
            name.insert(part.to_string(), json!(value));
        } else if attribute == "emails" {
            out.insert(
                "emails".into(),
                json!([{"value": value, "type": "work", "primary": true}]),
            );
        } else {
            out.insert(attribute.clone(), json!(value));
        }
    }
    if !name.is_empty() {
        out.insert("name".into(), Value::Object(name));
    }
    out
}

/// The engine's input for a sign-in through `up`.
pub(crate) fn login_of(up: &Upstream, claims: &LoginClaims) -> Login {
    let (groups, groups_overage) = match &claims.groups {
        Groups::Absent => (None, false),
        Groups::Listed(ids) => (Some(ids.clone()), false),
        Groups::Overage => (None, true),
    };
    Login {
        source: up.config.source.clone(),
        subject: claims.subject.clone(),
        attributes: attributes(&claims.raw, &up.config.claims),
        groups,
        groups_overage,
    }
}

/// Provisions the user who signed in and says who they are to `product`, or why they may not
/// sign in; with how long the login waited for the user's flows' runs.
pub(super) async fn provision(
    sso: &Sso,
    login: Login,
    upstream: &str,
    upstream_subject: &str,
    product: &Product,
) -> Result<(UserInfo, std::time::Duration), SsoError> {
    let outcome = sso.svc.runtime.login(login).await.map_err(|e| match e {
        // What the identity provider sent cannot be used: its answer, not idsync, is at fault.
        LoginError::NoSubject | LoginError::BadAttribute { .. } => {
            SsoError::Unusable(e.to_string())
        }
        LoginError::UnknownSource(_) | LoginError::Engine(_) => SsoError::Internal(e.to_string()),
    })?;
    for w in &outcome.warnings {
        tracing::warn!(upstream = %upstream, subject = %upstream_subject, warning = %w, "sign-in");
    }
    let flows_wait = outcome.flows_wait;
    let flows = match outcome.decision {
        LoginDecision::Refused { reason } => return Err(SsoError::Refused { reason }),
        LoginDecision::Allowed { flows } => flows,
    };
    let Some(user) = outcome.user else {
        return Err(SsoError::Internal("the login returned no user".into()));
    };
    let Some(flow) = flows.into_iter().find(|f| f.flow == product.flow) else {
        return Err(SsoError::Refused {
            reason: format!(
                "flow {} does not give you access to {} (your account is outside its scope)",
                product.flow, product.name
            ),
        });
    };
    if let FlowRun::Failed { error } = &flow.run {
        // The sign-in goes on (the change is in the change log: the flow's next run applies
        // it), but the product may not find the user yet.
        tracing::warn!(product = %product.name, flow = %flow.flow, user = %user.user_name, error = %error, "provisioning at sign-in failed");
    }
    tracing::info!(product = %product.name, flow = %flow.flow, user = %user.user_name, created = outcome.created, run = ?flow.run, groups = flow.groups.len(), "provisioned at sign-in");
    let email = user
        .emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| user.emails.first())
        .map(|e| e.value.clone());
    let info = UserInfo {
        subject: match product.subject {
            ClientSubject::Username => user.user_name.clone(),
            ClientSubject::Id => upstream_subject.to_string(),
        },
        username: Some(user.user_name.clone()),
        email,
        display_name: user.display_name.clone(),
        groups: flow.groups,
    };
    Ok((info, flows_wait))
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_config::sso::default_claims;
    use idsync_config::UpstreamStyle;

    fn claims(raw: Value) -> LoginClaims {
        LoginClaims {
            subject: "u1".into(),
            issuer: "https://idp.example".into(),
            sub: "u1".into(),
            username: None,
            email: None,
            display_name: None,
            given_name: None,
            family_name: None,
            object_id: None,
            tenant_id: None,
            policy: None,
            groups: Groups::Absent,
            roles: None,
            raw: raw.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_b2c_login_takes_the_first_of_emails_and_only_the_claims_present() {
        let table = default_claims(&UpstreamStyle::B2c {
            policy: "B2C_1_signin".into(),
        });
        let got = attributes(
            &claims(json!({
                "emails": ["", " carol@example.org ", "second@example.org"],
                "given_name": "Carol",
                "name": "   ",
            }))
            .raw,
            &table,
        );
        assert_eq!(got["userName"], json!("carol@example.org"));
        assert_eq!(
            got["emails"],
            json!([{"value": "carol@example.org", "type": "work", "primary": true}])
        );
        assert_eq!(got["name"], json!({"givenName": "Carol"}));
        // A blank or absent claim changes nothing: no key at all.
        assert!(!got.contains_key("displayName"), "{got:?}");
    }

    #[test]
    fn entra_claims_map_to_directory_attributes() {
        let table = default_claims(&UpstreamStyle::Entra {
            tenant_id: "t".into(),
        });
        let got = attributes(
            &claims(json!({
                "preferred_username": "alice@contoso.example",
                "email": "alice@contoso.example",
                "name": "Alice Liddell",
                "family_name": "Liddell",
                "groups": ["g1"],
            }))
            .raw,
            &table,
        );
        assert_eq!(got["userName"], json!("alice@contoso.example"));
        assert_eq!(got["displayName"], json!("Alice Liddell"));
        assert_eq!(got["name"], json!({"familyName": "Liddell"}));
        assert!(!got.contains_key("groups"), "groups are not an attribute");
    }
}
