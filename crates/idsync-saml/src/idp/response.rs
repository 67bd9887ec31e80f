//! Our signed Response with its signed Assertion, to the SP's registered ACS URL by HTTP-POST:
//! SP-initiated (answering an [`SpRequest`]) or IdP-initiated (unsolicited).

use rand_core::{CryptoRng, RngCore};
use time::OffsetDateTime;

use super::{IdentityProvider, RegisteredSp, SpRequest};
use crate::binding::{encode_post, PostForm, MAX_RELAY_STATE_BYTES};
use crate::dsig::sign_enveloped;
use crate::error::SamlError;
use crate::protocol::{format_instant, new_id, CM_BEARER, STATUS_SUCCESS};
use crate::xml::{escape_attr, escape_text, NS_SAML, NS_SAMLP};

/// Attribute names of our assertions (Atlassian's SSO app maps them with `${username}`,
/// `${email}`, `${displayName}` and a groups attribute `groups`).
pub const ATTR_USERNAME: &str = "username";
pub const ATTR_EMAIL: &str = "email";
pub const ATTR_DISPLAY_NAME: &str = "displayName";
pub const ATTR_GROUPS: &str = "groups";

const NAME_FORMAT_BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
const AUTHN_CONTEXT: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

/// The signed-in user as the product should see them (groups by name, after the flow's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlUser {
    /// The NameID's value (the product's username, by default).
    pub name_id: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
    /// Our session at the IdP (the AuthnStatement's SessionIndex).
    pub session_index: String,
    /// When the user authenticated.
    pub authn_instant: OffsetDateTime,
}

impl IdentityProvider {
    /// The answer to an accepted AuthnRequest.
    pub fn respond<R: RngCore + CryptoRng>(
        &self,
        request: &SpRequest,
        user: &SamlUser,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<PostForm, SamlError> {
        let sp = self.service_provider(&request.sp_entity_id)?;
        self.build(
            sp,
            Some(&request.id),
            request.relay_state.as_deref(),
            user,
            now,
            rng,
        )
    }

    /// An IdP-initiated (unsolicited) response to a registered SP, at its registered ACS URL.
    pub fn respond_unsolicited<R: RngCore + CryptoRng>(
        &self,
        sp_entity_id: &str,
        relay_state: Option<&str>,
        user: &SamlUser,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<PostForm, SamlError> {
        let sp = self.service_provider(sp_entity_id)?;
        if relay_state.is_some_and(|r| r.len() > MAX_RELAY_STATE_BYTES) {
            return Err(SamlError::TooLarge {
                what: "RelayState",
                limit: MAX_RELAY_STATE_BYTES,
            });
        }
        self.build(sp, None, relay_state, user, now, rng)
    }

    fn build<R: RngCore + CryptoRng>(
        &self,
        sp: &RegisteredSp,
        in_response_to: Option<&str>,
        relay_state: Option<&str>,
        user: &SamlUser,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<PostForm, SamlError> {
        let config = &self.config;
        let issuer = escape_text(&config.entity_id);
        let acs = escape_attr(&sp.acs_url);
        let instant = format_instant(now);
        let until = format_instant(now + config.assertion_lifetime);
        // Valid from the skew before now, for a product whose clock is a little behind ours.
        let not_before = format_instant(now - config.clock_skew);
        let irt = in_response_to
            .map(|i| format!(" InResponseTo=\"{}\"", escape_attr(i)))
            .unwrap_or_default();
        // The registered SP's format: the caller chose `user.name_id` for it (the request's
        // NameIDPolicy is in `SpRequest::name_id_format` for the caller to refuse or honour).
        let format = &sp.name_id_format;

        let mut attributes = String::new();
        let mut attribute = |name: &str, values: &[&str]| {
            if values.is_empty() {
                return;
            }
            attributes.push_str(&format!(
                "<saml:Attribute Name=\"{name}\" NameFormat=\"{NAME_FORMAT_BASIC}\">"
            ));
            for value in values {
                attributes.push_str(&format!(
                    "<saml:AttributeValue>{}</saml:AttributeValue>",
                    escape_text(value)
                ));
            }
            attributes.push_str("</saml:Attribute>");
        };
        attribute(ATTR_USERNAME, &[user.username.as_str()]);
        attribute(ATTR_EMAIL, user.email.as_deref().as_slice());
        attribute(ATTR_DISPLAY_NAME, user.display_name.as_deref().as_slice());
        let groups: Vec<&str> = user.groups.iter().map(String::as_str).collect();
        attribute(ATTR_GROUPS, &groups);

        let assertion_id = new_id(rng);
        let assertion = format!(
            "<saml:Assertion xmlns:saml=\"{NS_SAML}\" ID=\"{assertion_id}\" Version=\"2.0\" IssueInstant=\"{instant}\">\
             <saml:Issuer>{issuer}</saml:Issuer>\
             <saml:Subject><saml:NameID Format=\"{format}\">{name_id}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"{CM_BEARER}\">\
             <saml:SubjectConfirmationData{irt} NotOnOrAfter=\"{until}\" Recipient=\"{acs}\"/>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{not_before}\" NotOnOrAfter=\"{until}\">\
             <saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{authn}\" SessionIndex=\"{session}\">\
             <saml:AuthnContext><saml:AuthnContextClassRef>{AUTHN_CONTEXT}</saml:AuthnContextClassRef></saml:AuthnContext>\
             </saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>",
            format = escape_attr(format.uri()),
            name_id = escape_text(&user.name_id),
            audience = escape_text(&sp.entity_id),
            authn = format_instant(user.authn_instant),
            session = escape_attr(&user.session_index),
        );
        let assertion = sign_enveloped(&assertion, &assertion_id, &config.signing_key)?;

        let response_id = new_id(rng);
        let response = format!(
            "<samlp:Response xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{response_id}\" Version=\"2.0\" \
             IssueInstant=\"{instant}\" Destination=\"{acs}\"{irt}>\
             <saml:Issuer>{issuer}</saml:Issuer>\
             <samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"/></samlp:Status>{assertion}</samlp:Response>"
        );
        let response = sign_enveloped(&response, &response_id, &config.signing_key)?;
        Ok(PostForm {
            action: sp.acs_url.clone(),
            parameter: "SAMLResponse",
            value: encode_post(&response),
            relay_state: relay_state.map(str::to_owned),
        })
    }
}
