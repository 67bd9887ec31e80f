//! An SP's AuthnRequest, received by HTTP-Redirect or HTTP-POST: from a registered SP, for its
//! registered ACS URL only (no open redirect), fresh, signed when the SP must sign.

use time::OffsetDateTime;

use super::IdentityProvider;
use crate::binding::{decode_post, RedirectMessage, MAX_RELAY_STATE_BYTES};
use crate::dsig::verify_enveloped;
use crate::error::{malformed, SamlError};
use crate::protocol::{check_window, parse_instant, NameIdFormat, BINDING_POST};
use crate::xml::{at_most_one, exactly_one, is, parse, text_of, NS_SAML, NS_SAMLP};

const WHAT: &str = "AuthnRequest";

/// An accepted AuthnRequest: answer it with [`IdentityProvider::respond`] once the user signed in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpRequest {
    /// The request's ID (our response's InResponseTo).
    pub id: String,
    /// The registered SP that sent it.
    pub sp_entity_id: String,
    /// Where the response goes: the SP's registered ACS URL.
    pub acs_url: String,
    pub relay_state: Option<String>,
    /// The NameID format asked for in NameIDPolicy, if any.
    pub name_id_format: Option<NameIdFormat>,
    pub force_authn: bool,
    pub is_passive: bool,
    /// Whether a signature was verified on it.
    pub signed: bool,
}

impl IdentityProvider {
    /// An AuthnRequest by HTTP-Redirect: `raw_query` is the request's query string as received.
    pub fn accept_redirect(
        &self,
        raw_query: &str,
        now: OffsetDateTime,
    ) -> Result<SpRequest, SamlError> {
        let message = RedirectMessage::decode(raw_query, "SAMLRequest")?;
        let mut request = self.check_request(&message.xml, message.relay_state.clone(), now)?;
        let sp = self.service_provider(&request.sp_entity_id)?;
        if message.is_signed() && !sp.request_certificates.is_empty() {
            message.verify(&sp.request_certificates)?;
            request.signed = true;
        } else if sp.require_signed_requests {
            return Err(SamlError::Unsigned("AuthnRequest"));
        }
        Ok(request)
    }

    /// An AuthnRequest by HTTP-POST: the `SAMLRequest` and `RelayState` form fields.
    pub fn accept_post(
        &self,
        saml_request: &str,
        relay_state: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<SpRequest, SamlError> {
        let xml = decode_post(saml_request)?;
        let mut request = self.check_request(&xml, relay_state.map(str::to_owned), now)?;
        let sp = self.service_provider(&request.sp_entity_id)?;
        let doc = parse(&xml)?;
        if !sp.request_certificates.is_empty()
            && verify_enveloped(doc.root_element(), &sp.request_certificates)?.is_some()
        {
            request.signed = true;
        }
        if sp.require_signed_requests && !request.signed {
            return Err(SamlError::Unsigned("AuthnRequest"));
        }
        Ok(request)
    }

    fn check_request(
        &self,
        xml: &str,
        relay_state: Option<String>,
        now: OffsetDateTime,
    ) -> Result<SpRequest, SamlError> {
        if relay_state
            .as_ref()
            .is_some_and(|r| r.len() > MAX_RELAY_STATE_BYTES)
        {
            return Err(SamlError::TooLarge {
                what: "RelayState",
                limit: MAX_RELAY_STATE_BYTES,
            });
        }
        let doc = parse(xml)?;
        let root = doc.root_element();
        if !is(root, NS_SAMLP, "AuthnRequest") {
            return Err(malformed(
                WHAT,
                format!("the root element is {}", root.tag_name().name()),
            ));
        }
        if root.attribute("Version") != Some("2.0") {
            return Err(malformed(WHAT, "Version is not 2.0"));
        }
        let id = root
            .attribute("ID")
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| malformed(WHAT, "no ID"))?
            .to_owned();
        let issuer = text_of(exactly_one(root, NS_SAML, "Issuer", WHAT)?, WHAT)?;
        let sp = self.service_provider(&issuer)?;
        let config = &self.config;
        if let Some(destination) = root.attribute("Destination") {
            if destination != config.sso_url {
                return Err(SamlError::Destination {
                    expected: config.sso_url.clone(),
                    found: destination.to_owned(),
                });
            }
        }
        let issued = parse_instant(root.attribute("IssueInstant").unwrap_or_default(), WHAT)?;
        check_window(
            now,
            config.clock_skew,
            Some(issued),
            Some(issued + config.request_max_age),
        )?;
        if let Some(acs) = root.attribute("AssertionConsumerServiceURL") {
            if acs != sp.acs_url {
                return Err(SamlError::AcsUrl {
                    registered: sp.acs_url.clone(),
                    found: acs.to_owned(),
                });
            }
        }
        if let Some(index) = root.attribute("AssertionConsumerServiceIndex") {
            if index != "0" {
                return Err(SamlError::AcsUrl {
                    registered: sp.acs_url.clone(),
                    found: format!("index {index}"),
                });
            }
        }
        if let Some(binding) = root.attribute("ProtocolBinding") {
            if binding != BINDING_POST {
                return Err(SamlError::Unsupported(format!(
                    "response binding {binding} (HTTP-POST only)"
                )));
            }
        }
        let name_id_format = at_most_one(root, NS_SAMLP, "NameIDPolicy", WHAT)?
            .and_then(|p| p.attribute("Format"))
            .map(|f| NameIdFormat::from_uri(Some(f)));
        let flag = |name: &str| matches!(root.attribute(name), Some("true" | "1"));
        Ok(SpRequest {
            id,
            sp_entity_id: sp.entity_id.clone(),
            acs_url: sp.acs_url.clone(),
            relay_state,
            name_id_format,
            force_authn: flag("ForceAuthn"),
            is_passive: flag("IsPassive"),
            signed: false,
        })
    }
}
