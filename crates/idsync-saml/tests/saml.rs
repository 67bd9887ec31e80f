//! The SAML crate: XML signatures and their attacks, the service provider against Entra-shaped
//! and pysaml2 identity providers, the identity provider against pysaml2's service provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "saml/attacks.rs"]
mod attacks;
#[path = "saml/c14n.rs"]
mod c14n;
#[path = "saml/idp.rs"]
mod idp;
#[path = "saml/peers.rs"]
mod peers;
#[path = "saml/rollover.rs"]
mod rollover;
#[path = "saml/sp.rs"]
mod sp;
#[path = "saml/support.rs"]
mod support;
