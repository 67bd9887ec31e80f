//! The OpenID Connect crate both ways, against real peers: npm `oidc-provider` as the upstream
//! provider, npm `openid-client` as a product, tokens forged with npm `jose`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "oidc/keys.rs"]
mod keys;
#[path = "oidc/provider_attacks.rs"]
mod provider_attacks;
#[path = "oidc/provider_client.rs"]
mod provider_client;
#[path = "oidc/rp_attacks.rs"]
mod rp_attacks;
#[path = "oidc/rp_claims.rs"]
mod rp_claims;
#[path = "oidc/rp_peer.rs"]
mod rp_peer;
#[path = "oidc/support.rs"]
mod support;
