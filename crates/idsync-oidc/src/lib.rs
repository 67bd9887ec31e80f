//! OpenID Connect both ways, for idsync's single sign-on broker.
//!
//! - [`rp`]: the relying party idsync is when it signs users in at the company's identity
//!   provider (Entra ID, Azure AD B2C user flows, any OpenID provider): discovery, the JWKS with
//!   key rotation, the authorization code flow with PKCE, state and nonce, and ID token
//!   validation that yields typed [`rp::LoginClaims`].
//! - [`provider`]: the OpenID provider idsync is for the products that trust it: discovery,
//!   JWKS with overlapping keys, the authorization, token and userinfo endpoints as
//!   framework-neutral handlers that take parsed parameters and return a [`provider::Response`].
//!
//! Cryptography is `ring`'s (signing and verification); `rsa` only generates provider keys.
//! Time comes from an [`idsync_core::Clock`]. See docs/decisions/0041-oidc-crate.md.

pub mod jose;
pub mod keys;
pub mod provider;
pub mod rp;

mod b64;
mod pkce;

pub use jose::{Algorithm, JoseError, Jwk, JwkSet};
pub use keys::{KeyError, KeyRotation, KeySet, SigningKey};
pub use pkce::{pkce_challenge, random_token};
