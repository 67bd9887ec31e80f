//! The provider's signing keys: RSA 2048 generated here, serialisable (so the server can store
//! them sealed), rotated as a function of time with an overlap during which the previous key
//! stays published (tokens it signed still verify at relying parties that cached the JWKS).

use ring::signature::RsaKeyPair;
use serde::{Deserialize, Serialize};

use crate::jose::{Jwk, JwkSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    #[error("the stored signing key {kid} is not a valid RSA PKCS#8 key: {reason}")]
    Invalid { kid: String, reason: String },
    #[error("key rotation settings: {0}")]
    Settings(String),
}

/// The RSA modulus size of generated keys.
pub const RSA_BITS: usize = 2048;

/// One signing key. `pkcs8` is the private key (PKCS#8 DER, base64url); `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The JWK thumbprint (RFC 7638) of the public key: stable, derived, unique per key.
    pub kid: String,
    pub created_at_ms: i64,
    pkcs8: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates an RSA 2048 key. Slow (tens to hundreds of milliseconds): call it off the
    /// async threads (`tokio::task::spawn_blocking`).
    pub fn generate(now_ms: i64) -> Result<Self, KeyError> {
        use rsa::pkcs8::EncodePrivateKey;
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let der = private
            .to_pkcs8_der()
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_pkcs8_der(der.as_bytes(), now_ms)
    }

    /// A key from its PKCS#8 DER bytes (an RSA private key).
    pub fn from_pkcs8_der(der: &[u8], created_at_ms: i64) -> Result<Self, KeyError> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Invalid {
            kid: String::new(),
            reason: e.to_string(),
        })?;
        let kid = thumbprint(&pair);
        Ok(Self {
            kid,
            created_at_ms,
            pkcs8: crate::b64::encode(der),
        })
    }

    /// The key pair, parsed and checked.
    pub fn key_pair(&self) -> Result<RsaKeyPair, KeyError> {
        let invalid = |reason: String| KeyError::Invalid {
            kid: self.kid.clone(),
            reason,
        };
        let der = crate::b64::decode(&self.pkcs8).ok_or_else(|| invalid("not base64url".into()))?;
        let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| invalid(e.to_string()))?;
        if thumbprint(&pair) != self.kid {
            return Err(invalid("the kid is not the key's thumbprint".into()));
        }
        Ok(pair)
    }

    /// The public key as a JWK (`use: sig`, `alg: RS256`).
    pub fn public_jwk(&self) -> Result<Jwk, KeyError> {
        Ok(public_jwk(&self.key_pair()?, &self.kid))
    }
}

fn public_parts(pair: &RsaKeyPair) -> (String, String) {
    let components: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    (
        crate::b64::encode(&components.n),
        crate::b64::encode(&components.e),
    )
}

fn public_jwk(pair: &RsaKeyPair, kid: &str) -> Jwk {
    let (n, e) = public_parts(pair);
    Jwk {
        kty: "RSA".to_owned(),
        kid: Some(kid.to_owned()),
        key_use: Some("sig".to_owned()),
        alg: Some("RS256".to_owned()),
        n: Some(n),
        e: Some(e),
        ..Jwk::default()
    }
}

/// RFC 7638: SHA-256 over `{"e":...,"kty":"RSA","n":...}` with no whitespace, base64url.
fn thumbprint(pair: &RsaKeyPair) -> String {
    let (n, e) = public_parts(pair);
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    crate::b64::encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// When keys rotate: a new key every `period_ms`; the previous one stays published for
/// `overlap_ms` after it stopped signing (at least the longest token lifetime plus the time
/// relying parties cache a JWKS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub period_ms: i64,
    pub overlap_ms: i64,
}

impl Default for KeyRotation {
    /// 90 days, with a 2-day overlap.
    fn default() -> Self {
        Self {
            period_ms: 90 * 24 * 3_600_000,
            overlap_ms: 2 * 24 * 3_600_000,
        }
    }
}

impl KeyRotation {
    pub fn validate(&self) -> Result<(), KeyError> {
        if self.period_ms < 60_000 {
            return Err(KeyError::Settings(
                "the period must be a minute or more".into(),
            ));
        }
        if self.overlap_ms < 0 || self.overlap_ms >= self.period_ms {
            return Err(KeyError::Settings(
                "the overlap must be at least zero and shorter than the period".into(),
            ));
        }
        Ok(())
    }
}

/// The key that signs now, and the one it replaced while that one is still published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    pub current: SigningKey,
    pub previous: Option<RetiredKey>,
}

/// A key that no longer signs, published until `retired_at_ms + overlap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    pub key: SigningKey,
    pub retired_at_ms: i64,
}

impl KeySet {
    /// A first key set (generates a key: slow, see [`SigningKey::generate`]).
    pub fn generate(now_ms: i64) -> Result<Self, KeyError> {
        Ok(Self {
            current: SigningKey::generate(now_ms)?,
            previous: None,
        })
    }

    /// Whether the current key is due for replacement.
    pub fn rotation_due(&self, now_ms: i64, rotation: &KeyRotation) -> bool {
        now_ms.saturating_sub(self.current.created_at_ms) >= rotation.period_ms
    }

    /// `next` becomes the signing key; the current one is retired (published for the overlap).
    pub fn rotate(&mut self, next: SigningKey, now_ms: i64) {
        let old = std::mem::replace(&mut self.current, next);
        self.previous = Some(RetiredKey {
            key: old,
            retired_at_ms: now_ms,
        });
    }

    /// Drops the previous key once its overlap has passed. Returns whether anything changed.
    pub fn prune(&mut self, now_ms: i64, rotation: &KeyRotation) -> bool {
        let expired = self
            .previous
            .as_ref()
            .is_some_and(|p| now_ms.saturating_sub(p.retired_at_ms) >= rotation.overlap_ms);
        if expired {
            self.previous = None;
        }
        expired
    }

    /// Prunes and, when due, rotates (generating a key: slow). Returns whether the set changed,
    /// so the caller knows to store it.
    pub fn maintain(&mut self, now_ms: i64, rotation: &KeyRotation) -> Result<bool, KeyError> {
        let mut changed = self.prune(now_ms, rotation);
        if self.rotation_due(now_ms, rotation) {
            let next = SigningKey::generate(now_ms)?;
            self.rotate(next, now_ms);
            changed = true;
        }
        Ok(changed)
    }

    /// The published JWKS: the current key, then the previous one while it overlaps.
    pub fn jwks(&self) -> Result<JwkSet, KeyError> {
        let mut keys = vec![self.current.public_jwk()?];
        if let Some(previous) = &self.previous {
            keys.push(previous.key.public_jwk()?);
        }
        Ok(JwkSet { keys })
    }
}
