//! Certificate credentials on the simulated token endpoint: client assertions (`private_key_jwt`)
//! checked the way Microsoft Entra checks them. The certificate is looked up by its thumbprint
//! (`x5t#S256`, or the older SHA-1 `x5t`) among those registered on the app, the signature
//! verified (PS256 or RS256), and `aud`, `iss`, `sub`, `exp`, `nbf` and `jti` checked.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ring::digest;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256};
use serde_json::Value;
use std::collections::HashMap;

/// Base64url with or without padding: Entra takes both, and azure-identity pads.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A certificate registered on an app registration (its public half only).
#[derive(Debug, Clone)]
pub struct RegisteredCert {
    sha1: Vec<u8>,
    sha256: Vec<u8>,
    /// PKCS#1 RSAPublicKey, as ring verifies with it.
    public_key: Vec<u8>,
}

/// One DER element: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
/// rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

impl RegisteredCert {
    /// From the certificate's DER; only RSA certificates are accepted, as by Entra.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let bad = || "not an X.509 certificate".to_string();
        let (SEQUENCE, cert, _) = tlv(der).ok_or_else(bad)? else {
            return Err(bad());
        };
        let (SEQUENCE, tbs, _) = tlv(cert).ok_or_else(bad)? else {
            return Err(bad());
        };
        let mut rest = tbs;
        // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
        if rest.first() == Some(&0xa0) {
            rest = tlv(rest).ok_or_else(bad)?.2;
        }
        for _ in 0..5 {
            rest = tlv(rest).ok_or_else(bad)?.2;
        }
        let (SEQUENCE, spki, _) = tlv(rest).ok_or_else(bad)? else {
            return Err(bad());
        };
        let (SEQUENCE, alg, after_alg) = tlv(spki).ok_or_else(bad)? else {
            return Err(bad());
        };
        let (_, oid, _) = tlv(alg).ok_or_else(bad)?;
        if oid != RSA_OID {
            return Err("only RSA certificates can sign client assertions".into());
        }
        let (0x03, bits, _) = tlv(after_alg).ok_or_else(bad)? else {
            return Err(bad());
        };
        let Some((0, key)) = bits.split_first() else {
            return Err(bad());
        };
        Ok(RegisteredCert {
            sha1: digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)
                .as_ref()
                .to_vec(),
            sha256: digest::digest(&digest::SHA256, der).as_ref().to_vec(),
            public_key: key.to_vec(),
        })
    }

    /// From PEM text: every CERTIFICATE block in it.
    pub fn from_pem(text: &str) -> Result<Vec<Self>, String> {
        let blocks = pem::parse_many(text).map_err(|e| e.to_string())?;
        let certs: Vec<Self> = blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| Self::from_der(b.contents()))
            .collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err("no CERTIFICATE block".into());
        }
        Ok(certs)
    }
}

/// A refusal, with the AADSTS code Entra uses for it.
#[derive(Debug)]
pub struct Refusal {
    pub error: &'static str,
    pub description: String,
}

fn refuse(error: &'static str, description: String) -> Refusal {
    Refusal { error, description }
}

fn part(s: &str) -> Option<Value> {
    let bytes = B64URL.decode(s).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `iss` of an assertion, read before it is verified (to find the app when the request
/// carries no client_id).
pub fn issuer(jwt: &str) -> Option<String> {
    let claims = part(jwt.split('.').nth(1)?)?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Check an assertion for `client_id` against the app's certificates. `seen` holds the jti of
/// assertions already used (with their expiry, in Unix seconds): one assertion signs in once.
pub fn verify(
    jwt: &str,
    client_id: &str,
    certs: &[RegisteredCert],
    audience: &str,
    now_s: i64,
    seen: &mut HashMap<String, i64>,
) -> Result<(), Refusal> {
    let malformed = || {
        refuse(
            "invalid_request",
            "AADSTS50027: JWT token is invalid or malformed.".into(),
        )
    };
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header = part(h).ok_or_else(malformed)?;
    let claims = part(c).ok_or_else(malformed)?;
    let sig = B64URL.decode(s).map_err(|_| malformed())?;
    let thumb = |k: &str| {
        header
            .get(k)
            .and_then(Value::as_str)
            .and_then(|t| B64URL.decode(t).ok())
    };
    let cert = match (thumb("x5t#S256"), thumb("x5t")) {
        (Some(t), _) => certs.iter().find(|c| c.sha256 == t),
        (None, Some(t)) => certs.iter().find(|c| c.sha1 == t),
        (None, None) => {
            return Err(refuse(
                "invalid_client",
                "AADSTS700027: Client assertion failed signature validation: the header names no certificate thumbprint (x5t#S256 or x5t).".into(),
            ))
        }
    };
    let Some(cert) = cert else {
        return Err(refuse(
            "invalid_client",
            format!("AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"),
        ));
    };
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("PS256") => &RSA_PSS_2048_8192_SHA256,
        Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
        other => {
            return Err(refuse(
                "invalid_client",
                format!("AADSTS5002738: Invalid JWT token. '{}' is not a supported signature algorithm (PS256, RS256).", other.unwrap_or("none")),
            ))
        }
    };
    let signed = &jwt[..h.len() + 1 + c.len()];
    if UnparsedPublicKey::new(alg, &cert.public_key)
        .verify(signed.as_bytes(), &sig)
        .is_err()
    {
        return Err(refuse(
            "invalid_client",
            format!("AADSTS700027: Client assertion failed signature validation. (Reason - The key used is expired or the signature does not match, app Id '{client_id}'.)"),
        ));
    }
    let claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    if claim("iss") != client_id || claim("sub") != client_id {
        return Err(refuse(
            "invalid_client",
            format!("AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter ('{client_id}'): iss and sub must both be the client id."),
        ));
    }
    if claim("aud") != audience {
        return Err(refuse(
            "invalid_client",
            format!("AADSTS700212: The audience of the client assertion must be the token endpoint, {audience} (got '{}').", claim("aud")),
        ));
    }
    // NumericDate may have a fraction (RFC 7519 2; MSAL sends one); nbf is optional.
    let date = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_f64)
            .map(|f| f.floor() as i64)
    };
    let exp = date("exp");
    let nbf = date("nbf").unwrap_or(0);
    // Entra allows five minutes of clock skew.
    match exp {
        Some(exp) if exp + 300 >= now_s && nbf - 300 <= now_s => {}
        _ => {
            return Err(refuse(
                "invalid_client",
                format!("AADSTS700024: Client assertion is not within its valid time range. Current time: {now_s}, assertion valid from {nbf}, expiry time of assertion {}.", exp.map(|e| e.to_string()).unwrap_or_else(|| "missing".into())),
            ))
        }
    }
    let jti = claim("jti");
    if jti.is_empty() {
        return Err(malformed());
    }
    seen.retain(|_, until| *until + 300 >= now_s);
    if seen.contains_key(jti) {
        return Err(refuse(
            "invalid_client",
            "AADSTS700025: The client assertion was already used (its jti was seen before); sign a new one for every request.".into(),
        ));
    }
    seen.insert(jti.to_string(), exp.unwrap_or(now_s));
    Ok(())
}
