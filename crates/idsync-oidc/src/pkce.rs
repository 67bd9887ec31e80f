//! Random values (state, nonce, PKCE verifiers, codes, access tokens) and the PKCE S256
//! transform (RFC 7636 §4.2).

use ring::digest::{digest, SHA256};

/// 32 random bytes, base64url: 43 characters, 256 bits. From `rand`'s thread RNG, a CSPRNG
/// seeded from the operating system. Valid as a PKCE verifier (RFC 7636 §4.1).
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    crate::b64::encode(&bytes)
}

/// `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    crate::b64::encode(digest(&SHA256, verifier.as_bytes()).as_ref())
}

/// SHA-256 of a secret, base64url: how codes and access tokens are keyed in a store, so a
/// copy of the store holds nothing that can be redeemed.
pub(crate) fn hash_secret(secret: &str) -> String {
    crate::b64::encode(digest(&SHA256, secret.as_bytes()).as_ref())
}

/// Compares two secrets in time independent of where they differ (and of their lengths: both
/// are hashed first).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    let a = digest(&SHA256, a.as_bytes());
    let b = digest(&SHA256, b.as_bytes());
    let mut diff = 0u8;
    for (x, y) in a.as_ref().iter().zip(b.as_ref()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// A PKCE verifier is 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub(crate) fn verifier_is_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn secrets_compare() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
        assert!(verifier_is_well_formed(&random_token()));
        assert!(!verifier_is_well_formed("short"));
    }
}
