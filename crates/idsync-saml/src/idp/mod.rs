//! The identity provider side: idsync is the IdP the products (Atlassian Data Center's SSO app,
//! any SAML 2.0 service provider) trust.

mod request;
mod response;
mod rollover;

pub use request::SpRequest;
pub use response::{SamlUser, ATTR_DISPLAY_NAME, ATTR_EMAIL, ATTR_GROUPS, ATTR_USERNAME};
pub use rollover::{
    generate_key, IdpKeys, KeyRollover, NextKey, RetiredKey, CERTIFICATE_VALIDITY,
    MAX_ROTATION_PERIOD,
};

use crate::error::SamlError;
use crate::keys::{Certificate, SigningKey};
use crate::protocol::{check_skew, NameIdFormat, BINDING_POST, BINDING_REDIRECT};
use crate::xml::{escape_attr, NS_MD};

/// A service provider (a product) registered with our IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSp {
    /// Its entity id (the Issuer of its AuthnRequests, the Audience of our assertions).
    pub entity_id: String,
    /// Its one ACS URL: responses go there only, whatever a request asks (exact match).
    pub acs_url: String,
    /// The NameID format we send it.
    pub name_id_format: NameIdFormat,
    /// Certificates its signed AuthnRequests are verified with.
    pub request_certificates: Vec<Certificate>,
    /// Refuse its unsigned AuthnRequests (needs `request_certificates`).
    pub require_signed_requests: bool,
}

/// The identity provider's configuration.
#[derive(Debug, Clone)]
pub struct IdentityProviderConfig {
    /// Our entity id (the Issuer of our responses).
    pub entity_id: String,
    /// Our SSO URL (HTTP-Redirect and HTTP-POST both).
    pub sso_url: String,
    /// The key responses are signed with.
    pub signing_key: SigningKey,
    /// Certificates published beside the signing key's during a rotation: the next key's
    /// before it signs, the replaced key's after ([`IdpKeys::also_published`]).
    pub also_published: Vec<Certificate>,
    pub service_providers: Vec<RegisteredSp>,
    /// How long an assertion is valid (SubjectConfirmationData and Conditions NotOnOrAfter).
    pub assertion_lifetime: time::Duration,
    /// How old an AuthnRequest may be (its IssueInstant), and the skew allowed on it.
    pub request_max_age: time::Duration,
    pub clock_skew: time::Duration,
}

/// Our identity provider.
#[derive(Debug, Clone)]
pub struct IdentityProvider {
    config: IdentityProviderConfig,
}

impl IdentityProvider {
    /// Checks the configuration: bounded skew and lifetimes, unique SP entity ids, signed
    /// requests required only where a certificate can verify them.
    pub fn new(config: IdentityProviderConfig) -> Result<Self, SamlError> {
        check_skew(config.clock_skew)?;
        if config.assertion_lifetime <= time::Duration::ZERO
            || config.assertion_lifetime > time::Duration::hours(1)
        {
            return Err(SamlError::Config(
                "the assertion lifetime must be between 1 s and 1 h".into(),
            ));
        }
        if config.request_max_age <= time::Duration::ZERO
            || config.request_max_age > time::Duration::hours(1)
        {
            return Err(SamlError::Config(
                "the request age limit must be between 1 s and 1 h".into(),
            ));
        }
        for (i, sp) in config.service_providers.iter().enumerate() {
            if config.service_providers[..i]
                .iter()
                .any(|o| o.entity_id == sp.entity_id)
            {
                return Err(SamlError::Config(format!(
                    "service provider {} registered twice",
                    sp.entity_id
                )));
            }
            if sp.require_signed_requests && sp.request_certificates.is_empty() {
                return Err(SamlError::Config(format!(
                    "service provider {} requires signed requests but has no certificate",
                    sp.entity_id
                )));
            }
        }
        Ok(Self { config })
    }

    pub fn config(&self) -> &IdentityProviderConfig {
        &self.config
    }

    pub(crate) fn service_provider(&self, entity_id: &str) -> Result<&RegisteredSp, SamlError> {
        self.config
            .service_providers
            .iter()
            .find(|sp| sp.entity_id == entity_id)
            .ok_or_else(|| SamlError::UnknownServiceProvider(entity_id.to_owned()))
    }

    /// Our IdP metadata: entity id, SSO URL for HTTP-Redirect and HTTP-POST, the signing
    /// certificates (the signing one, and the next or the replaced one during a rotation), NameID formats.
    pub fn metadata_xml(&self) -> String {
        let config = &self.config;
        let key = |cert: &Certificate| {
            format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
                 <ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>",
                cert.to_base64()
            )
        };
        let mut keys = key(config.signing_key.certificate());
        for other in &config.also_published {
            keys.push_str(&key(other));
        }
        let formats: String = [
            NameIdFormat::Unspecified,
            NameIdFormat::EmailAddress,
            NameIdFormat::Persistent,
        ]
        .iter()
        .map(|f| format!("<md:NameIDFormat>{}</md:NameIDFormat>", f.uri()))
        .collect();
        let sso = escape_attr(&config.sso_url);
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<md:EntityDescriptor xmlns:md=\"{NS_MD}\" entityID=\"{entity}\">\
             <md:IDPSSODescriptor WantAuthnRequestsSigned=\"false\" \
             protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{keys}{formats}\
             <md:SingleSignOnService Binding=\"{BINDING_REDIRECT}\" Location=\"{sso}\"/>\
             <md:SingleSignOnService Binding=\"{BINDING_POST}\" Location=\"{sso}\"/>\
             </md:IDPSSODescriptor></md:EntityDescriptor>\n",
            entity = escape_attr(&config.entity_id),
        )
    }
}
