//! JSON Web Keys (RFC 7517) and compact JSON Web Signatures (RFC 7515) for ID tokens.
//!
//! Only asymmetric algorithms are accepted: RS256, PS256 and ES256. `none`, the HMAC family and
//! anything else is refused before a key is looked at, so a token "signed" with a provider's
//! public key as an HMAC secret, or not signed at all, never verifies.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The largest compact token accepted (Entra ID tokens with 200 groups are about 10 KiB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("the token is not a compact JWS (three base64url parts)")]
    Malformed,
    #[error("the token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the token's header is not valid JSON with an `alg`")]
    BadHeader,
    #[error("the token's payload is not a JSON object")]
    BadPayload,
    #[error("algorithm `{0}` is not accepted (RS256, PS256 and ES256 are)")]
    AlgorithmNotAllowed(String),
    #[error("the token's header lists critical extensions, which are not supported")]
    CriticalHeader,
    #[error("no key of the provider's JWKS matches the token (kid {kid:?}, alg {alg})")]
    UnknownKey { kid: Option<String>, alg: String },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The signature algorithms this crate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    RS256,
    PS256,
    ES256,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "PS256" => Some(Self::PS256),
            "ES256" => Some(Self::ES256),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
        }
    }
}

/// One JSON Web Key; members this crate does not use are kept out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A JWK Set document (`{"keys": [...]}`). Keys of types this crate does not know are dropped
/// when it is read, not treated as an error (a provider may publish encryption keys too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Reads a JWKS document, keeping the keys this crate can verify with.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<Value>,
        }
        let raw: Raw = serde_json::from_slice(body)?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .filter(|k| k.kty == "RSA" || k.kty == "EC")
            .collect();
        Ok(Self { keys })
    }
}

impl Jwk {
    /// Whether this key may verify a token signed with `alg`: the right key type (and curve),
    /// not marked for encryption, and no different `alg` of its own.
    fn fits(&self, alg: Algorithm) -> bool {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return false;
        }
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        match alg {
            Algorithm::RS256 | Algorithm::PS256 => self.kty == "RSA",
            Algorithm::ES256 => self.kty == "EC" && self.crv.as_deref() == Some("P-256"),
        }
    }

    fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        match alg {
            Algorithm::RS256 | Algorithm::PS256 => {
                let (Some(n), Some(e)) = (
                    self.n.as_deref().and_then(crate::b64::decode),
                    self.e.as_deref().and_then(crate::b64::decode),
                ) else {
                    return false;
                };
                let params = if alg == Algorithm::RS256 {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            Algorithm::ES256 => {
                let (Some(x), Some(y)) = (
                    self.x.as_deref().and_then(crate::b64::decode),
                    self.y.as_deref().and_then(crate::b64::decode),
                ) else {
                    return false;
                };
                if x.len() != 32 || y.len() != 32 {
                    return false;
                }
                let mut point = Vec::with_capacity(65);
                point.push(4u8);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// A compact JWS split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub header: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
    payload: Map<String, Value>,
}

impl UnverifiedToken {
    /// Splits and decodes a token. The algorithm is checked here, before any key is chosen.
    pub fn parse(token: &str) -> Result<Self, JoseError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JoseError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoseError::Malformed);
        };
        let header_bytes = crate::b64::decode(h).ok_or(JoseError::Malformed)?;
        let header: Map<String, Value> =
            serde_json::from_slice(&header_bytes).map_err(|_| JoseError::BadHeader)?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JoseError::BadHeader)?;
        let alg = Algorithm::parse(alg_name)
            .ok_or_else(|| JoseError::AlgorithmNotAllowed(alg_name.to_owned()))?;
        if header.contains_key("crit") {
            return Err(JoseError::CriticalHeader);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(JoseError::BadHeader),
        };
        let signature = crate::b64::decode(s).ok_or(JoseError::Malformed)?;
        if signature.is_empty() {
            return Err(JoseError::BadSignature);
        }
        let payload_bytes = crate::b64::decode(p).ok_or(JoseError::Malformed)?;
        let payload: Map<String, Value> =
            serde_json::from_slice(&payload_bytes).map_err(|_| JoseError::BadPayload)?;
        Ok(Self {
            alg,
            kid,
            header,
            signing_input: format!("{h}.{p}"),
            signature,
            payload,
        })
    }

    /// The keys of `keys` that could have signed this token (by `kid` when it has one).
    pub fn candidate_keys<'a>(&self, keys: &'a [Jwk]) -> Vec<&'a Jwk> {
        keys.iter()
            .filter(|k| match &self.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .filter(|k| k.fits(self.alg))
            .collect()
    }

    /// Verifies the signature with one of `keys` and returns the payload.
    pub fn verify(self, keys: &[&Jwk]) -> Result<Map<String, Value>, JoseError> {
        if keys.is_empty() {
            return Err(JoseError::UnknownKey {
                kid: self.kid,
                alg: self.alg.name().to_owned(),
            });
        }
        let ok = keys
            .iter()
            .any(|k| k.verify(self.alg, self.signing_input.as_bytes(), &self.signature));
        if ok {
            Ok(self.payload)
        } else {
            Err(JoseError::BadSignature)
        }
    }
}

/// Signs `claims` as a compact JWS with RS256 under `kid`.
pub(crate) fn sign_rs256(
    key: &ring::signature::RsaKeyPair,
    kid: &str,
    claims: &Map<String, Value>,
) -> Result<String, JoseError> {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let h = crate::b64::encode(header.to_string().as_bytes());
    let p = crate::b64::encode(Value::Object(claims.clone()).to_string().as_bytes());
    let input = format!("{h}.{p}");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| JoseError::Signing("RSA signing failed".to_owned()))?;
    Ok(format!("{input}.{}", crate::b64::encode(&sig)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives as a token, parsing answers an error or a token, never a panic.
        #[test]
        fn parsing_any_text_does_not_panic(text in "\\PC{0,200}", dots in 0usize..4) {
            let token = std::iter::repeat_n(text.as_str(), dots + 1).collect::<Vec<_>>().join(".");
            let _ = UnverifiedToken::parse(&token);
        }

        #[test]
        fn parsing_any_base64_parts_does_not_panic(
            header in proptest::collection::vec(any::<u8>(), 0..64),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            sig in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let token = format!(
                "{}.{}.{}",
                crate::b64::encode(&header),
                crate::b64::encode(&payload),
                crate::b64::encode(&sig)
            );
            if let Ok(parsed) = UnverifiedToken::parse(&token) {
                let key = Jwk { kty: "RSA".into(), n: Some("AQAB".into()), e: Some("AQAB".into()), ..Jwk::default() };
                let _ = parsed.verify(&[&key]);
            }
        }
    }

    #[test]
    fn the_algorithm_is_refused_before_any_key() {
        let header = crate::b64::encode(br#"{"alg":"HS256","kid":"k"}"#);
        let payload = crate::b64::encode(b"{}");
        let token = format!("{header}.{payload}.c2ln");
        assert_eq!(
            UnverifiedToken::parse(&token).unwrap_err(),
            JoseError::AlgorithmNotAllowed("HS256".into())
        );
        let header = crate::b64::encode(br#"{"alg":"RS256","crit":["exp"]}"#);
        assert_eq!(
            UnverifiedToken::parse(&format!("{header}.{payload}.c2ln")).unwrap_err(),
            JoseError::CriticalHeader
        );
    }
}
