//! The typed result of a login at Entra: the subject, the NameID, and the claims Entra sends
//! (<https://learn.microsoft.com/entra/identity-platform/reference-saml-tokens>), present ones only.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::protocol::NameId;

pub(crate) const CLAIM_OBJECT_ID: &str =
    "http://schemas.microsoft.com/identity/claims/objectidentifier";
pub(crate) const CLAIM_TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
pub(crate) const CLAIM_DISPLAY_NAME: &str =
    "http://schemas.microsoft.com/identity/claims/displayname";
pub(crate) const CLAIM_EMAIL: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
pub(crate) const CLAIM_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
pub(crate) const CLAIM_GIVEN_NAME: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
pub(crate) const CLAIM_SURNAME: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";
pub(crate) const CLAIM_GROUPS: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
pub(crate) const CLAIM_GROUPS_LINK: &str = "http://schemas.microsoft.com/claims/groups.link";

/// Entra's claims, each `None` when the assertion did not carry it (an absent claim changes
/// nothing in the directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntraClaims {
    /// `objectidentifier`: the user's immutable object id in the tenant.
    pub object_id: Option<String>,
    /// `tenantid`.
    pub tenant_id: Option<String>,
    /// `displayname`.
    pub display_name: Option<String>,
    /// `emailaddress`.
    pub email: Option<String>,
    /// `name` (Entra sends the user principal name).
    pub name: Option<String>,
    /// `givenname`.
    pub given_name: Option<String>,
    /// `surname`.
    pub surname: Option<String>,
    /// `groups`: object ids (or names when the application emits them so); `Some(vec![])` is not
    /// produced: an empty claim is absent.
    pub groups: Option<Vec<String>>,
    /// `groups.link`: the user is in more groups than the token carries (150 for SAML); the
    /// caller resolves them through Graph (`getMemberObjects`). The link as Entra sent it.
    pub groups_overage: Option<String>,
}

impl EntraClaims {
    pub(crate) fn from_attributes(attributes: &BTreeMap<String, Vec<String>>) -> Self {
        let single = |name: &str| {
            attributes
                .get(name)
                .and_then(|v| v.first())
                .filter(|v| !v.is_empty())
                .cloned()
        };
        Self {
            object_id: single(CLAIM_OBJECT_ID),
            tenant_id: single(CLAIM_TENANT_ID),
            display_name: single(CLAIM_DISPLAY_NAME),
            email: single(CLAIM_EMAIL),
            name: single(CLAIM_NAME),
            given_name: single(CLAIM_GIVEN_NAME),
            surname: single(CLAIM_SURNAME),
            groups: attributes
                .get(CLAIM_GROUPS)
                .filter(|g| !g.is_empty())
                .cloned(),
            groups_overage: single(CLAIM_GROUPS_LINK),
        }
    }
}

/// A validated login: everything here was read from the verified (signed) part of the response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SamlLogin {
    /// Who signed in: Entra's `objectidentifier` when present, else the NameID's value.
    pub subject: String,
    pub name_id: NameId,
    /// The IdP's entity id (the assertion's Issuer).
    pub issuer: String,
    /// The request this answers (`None` for an IdP-initiated login).
    pub in_response_to: Option<String>,
    pub assertion_id: String,
    pub session_index: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub authn_instant: OffsetDateTime,
    /// The end of the assertion's validity (its earliest NotOnOrAfter).
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: OffsetDateTime,
    pub claims: EntraClaims,
    /// Every attribute as sent (name to values), for mappings beyond Entra's claims.
    pub attributes: BTreeMap<String, Vec<String>>,
}
