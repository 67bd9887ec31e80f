//! The service provider side: idsync signs users in at the company's IdP (Entra).

mod claims;
mod metadata;
mod response;

use rand_core::{CryptoRng, RngCore};
use time::OffsetDateTime;

pub use claims::{EntraClaims, SamlLogin};
pub use metadata::IdpDescriptor;
pub use response::ResponseCheck;

use crate::binding::redirect_url;
use crate::error::SamlError;
use crate::keys::SigningKey;
use crate::protocol::{check_skew, format_instant, new_id, NameIdFormat, BINDING_POST};
use crate::xml::{escape_attr, escape_text, NS_SAML, NS_SAMLP};

/// Which signatures a response must carry (each one present is verified either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureRequirement {
    /// The Response element must be signed.
    pub response: bool,
    /// The Assertion element must be signed (Entra's default: "Sign SAML assertion").
    pub assertion: bool,
}

/// The service provider's configuration.
#[derive(Debug, Clone)]
pub struct ServiceProviderConfig {
    /// Our entity id (the Audience the IdP writes).
    pub entity_id: String,
    /// Our Assertion Consumer Service URL (HTTP-POST).
    pub acs_url: String,
    /// The NameID format asked for in the AuthnRequest's NameIDPolicy (none: the IdP's choice).
    pub name_id_format: Option<NameIdFormat>,
    /// Signs AuthnRequests (the HTTP-Redirect query signature) and is published in our metadata.
    pub signing_key: Option<SigningKey>,
    /// Which signatures are required; at least one.
    pub require: SignatureRequirement,
    /// Accept IdP-initiated responses (no InResponseTo).
    pub allow_unsolicited: bool,
    /// Clock skew allowed on every time check (at most [`crate::MAX_CLOCK_SKEW`]).
    pub clock_skew: time::Duration,
}

/// A service provider trusting one identity provider.
#[derive(Debug, Clone)]
pub struct ServiceProvider {
    config: ServiceProviderConfig,
    idp: IdpDescriptor,
}

/// An AuthnRequest to send by HTTP-Redirect. Remember `id` (e.g. in
/// [`crate::MemorySentRequests`]) until `issued_at` plus the login's time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequestRedirect {
    pub id: String,
    pub issued_at: OffsetDateTime,
    /// The IdP's SSO URL with `SAMLRequest`, `RelayState`, and the signature when we sign.
    pub url: String,
}

impl ServiceProvider {
    /// Checks the configuration (a bounded skew, at least one signature required, no empty ids).
    pub fn new(config: ServiceProviderConfig, idp: IdpDescriptor) -> Result<Self, SamlError> {
        check_skew(config.clock_skew)?;
        if !config.require.response && !config.require.assertion {
            return Err(SamlError::Config(
                "the response, the assertion or both must be required signed".into(),
            ));
        }
        if config.entity_id.trim().is_empty() || config.acs_url.trim().is_empty() {
            return Err(SamlError::Config(
                "the entity id and the ACS URL must not be empty".into(),
            ));
        }
        if idp.signing_certificates.is_empty() {
            return Err(SamlError::Config(format!(
                "identity provider {} has no signing certificate",
                idp.entity_id
            )));
        }
        Ok(Self { config, idp })
    }

    pub fn config(&self) -> &ServiceProviderConfig {
        &self.config
    }

    pub fn idp(&self) -> &IdpDescriptor {
        &self.idp
    }

    /// An AuthnRequest for the HTTP-Redirect binding (deflated, base64, URL-encoded), asking for
    /// an HTTP-POST answer at our ACS URL; signed with the query signature when we have a key.
    pub fn authn_request<R: RngCore + CryptoRng>(
        &self,
        now: OffsetDateTime,
        rng: &mut R,
        relay_state: Option<&str>,
    ) -> Result<AuthnRequestRedirect, SamlError> {
        let id = new_id(rng);
        let policy = self
            .config
            .name_id_format
            .as_ref()
            .map(|f| {
                format!(
                    "<samlp:NameIDPolicy Format=\"{}\" AllowCreate=\"true\"/>",
                    escape_attr(f.uri())
                )
            })
            .unwrap_or_default();
        let xml = format!(
            "<samlp:AuthnRequest xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{instant}\" Destination=\"{destination}\" AssertionConsumerServiceURL=\"{acs}\" \
             ProtocolBinding=\"{BINDING_POST}\"><saml:Issuer>{issuer}</saml:Issuer>{policy}</samlp:AuthnRequest>",
            instant = format_instant(now),
            destination = escape_attr(&self.idp.sso_url),
            acs = escape_attr(&self.config.acs_url),
            issuer = escape_text(&self.config.entity_id),
        );
        let url = redirect_url(
            &self.idp.sso_url,
            "SAMLRequest",
            &xml,
            relay_state,
            self.config.signing_key.as_ref(),
        );
        Ok(AuthnRequestRedirect {
            id,
            issued_at: now,
            url,
        })
    }
}
