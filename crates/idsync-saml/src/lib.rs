//! SAML 2.0 for idsync, both sides, without IO: time and randomness are parameters, the HTTP
//! bindings are strings in and out.
//!
//! - [`ServiceProvider`]: idsync signs users in at the company's IdP (Entra): SP metadata, the
//!   import of the IdP's federation metadata, AuthnRequests by HTTP-Redirect, and the validation
//!   of the Response posted back ([`SamlLogin`] with Entra's claims).
//! - [`IdentityProvider`]: idsync is the IdP the products trust: IdP metadata, SPs' AuthnRequests
//!   (registered SPs, registered ACS URLs only), signed Responses with signed Assertions,
//!   SP-initiated and IdP-initiated, delivered by an auto-posting HTML form.
//!
//! XML signatures are verified by the crate's own restricted implementation (decision 0044):
//! no DTDs, exclusive c14n, SHA-256, RSA-SHA256, one enveloped signature with one reference to
//! the element that holds it, and every value read from the verified element only.
#![forbid(unsafe_code)]

mod binding;
mod c14n;
mod dsig;
mod error;
mod idp;
mod keys;
mod protocol;
mod replay;
mod sp;
mod xml;

pub use binding::{decode_post, PostForm, RedirectMessage, MAX_RELAY_STATE_BYTES};
pub use dsig::canonicalize_exclusive;
pub use error::SamlError;
pub use idp::{
    generate_key, IdentityProvider, IdentityProviderConfig, IdpKeys, KeyRollover, NextKey,
    RegisteredSp, RetiredKey, SamlUser, SpRequest, ATTR_DISPLAY_NAME, ATTR_EMAIL, ATTR_GROUPS,
    ATTR_USERNAME, CERTIFICATE_VALIDITY, MAX_ROTATION_PERIOD,
};
pub use keys::{Certificate, SigningKey, GENERATED_KEY_BITS};
pub use protocol::{NameId, NameIdFormat, MAX_CLOCK_SKEW};
pub use replay::{MemoryReplayCache, MemorySentRequests, ReplayCache, SentRequests};
pub use sp::{
    AuthnRequestRedirect, EntraClaims, IdpDescriptor, ResponseCheck, SamlLogin, ServiceProvider,
    ServiceProviderConfig, SignatureRequirement,
};
pub use xml::MAX_DOCUMENT_BYTES;
