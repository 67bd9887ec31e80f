//! Certificate credentials: the app proves who it is with a JWT it signs with its certificate's
//! private key (OpenID Connect `private_key_jwt`), instead of sending a client secret.
//!
//! The assertion follows the Microsoft identity platform's current format: `alg` PS256 and the
//! certificate's SHA-256 thumbprint in `x5t#S256`; the SHA-1 thumbprint goes in `x5t` as well, for
//! clouds that still look the certificate up by it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use serde_json::json;

/// Why a certificate credential cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(
        "not PEM text ({0}); convert a .pfx with `openssl pkcs12 -in app.pfx -nodes -out app.pem`"
    )]
    NotPem(String),
    #[error(
        "no CERTIFICATE block found: the file must hold the certificate registered on the app"
    )]
    NoCertificate,
    #[error("no private key found: the file (or the key file) must hold a PRIVATE KEY or RSA PRIVATE KEY block")]
    NoKey,
    #[error("the private key is encrypted: decrypt it with `openssl pkey -in key.pem -out plain.pem`, and protect the file instead")]
    EncryptedKey,
    #[error("the private key is not a usable RSA key ({0}); Microsoft Entra accepts RSA certificates of 2048 bits or more")]
    BadKey(String),
    #[error("signing the client assertion failed")]
    Sign,
}

/// A certificate and its private key, ready to sign client assertions.
pub struct ClientCertificate {
    key: RsaKeyPair,
    sha1: [u8; 20],
    sha256: [u8; 32],
    rng: SystemRandom,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCertificate(thumbprint {})", self.thumbprint())
    }
}

impl ClientCertificate {
    /// From PEM text holding the certificate and, unless `key_pem` is given, its private key (the
    /// form `openssl pkcs12 -nodes` writes and azure-identity's CertificateCredential reads). The
    /// first CERTIFICATE block is the app's certificate; chain certificates after it are ignored.
    pub fn from_pem(cert_pem: &str, key_pem: Option<&str>) -> Result<Self, CertificateError> {
        let blocks =
            pem::parse_many(cert_pem).map_err(|e| CertificateError::NotPem(e.to_string()))?;
        let der = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.contents().to_vec())
            .ok_or(CertificateError::NoCertificate)?;
        let key_blocks = match key_pem {
            Some(k) => pem::parse_many(k).map_err(|e| CertificateError::NotPem(e.to_string()))?,
            None => blocks,
        };
        let key = key_blocks
            .iter()
            .find_map(|b| match b.tag() {
                "PRIVATE KEY" => Some(
                    RsaKeyPair::from_pkcs8(b.contents())
                        .map_err(|e| CertificateError::BadKey(e.to_string())),
                ),
                "RSA PRIVATE KEY" => Some(
                    RsaKeyPair::from_der(b.contents())
                        .map_err(|e| CertificateError::BadKey(e.to_string())),
                ),
                "ENCRYPTED PRIVATE KEY" => Some(Err(CertificateError::EncryptedKey)),
                _ => None,
            })
            .ok_or(CertificateError::NoKey)??;
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref());
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, &der).as_ref());
        Ok(ClientCertificate {
            key,
            sha1,
            sha256,
            rng: SystemRandom::new(),
        })
    }

    /// The SHA-1 thumbprint in hex, as the Entra admin center lists it.
    pub fn thumbprint(&self) -> String {
        self.sha1.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// A signed client assertion for `client_id`, addressed to the token endpoint `audience`,
    /// valid for ten minutes from `now_s` (Unix seconds).
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now_s: i64,
        jti: &str,
    ) -> Result<String, CertificateError> {
        let header = json!({
            "alg": "PS256",
            "typ": "JWT",
            "x5t#S256": URL_SAFE_NO_PAD.encode(self.sha256),
            "x5t": URL_SAFE_NO_PAD.encode(self.sha1),
        });
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now_s,
            "iat": now_s,
            "exp": now_s + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| CertificateError::Sign)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../idsync-sim/fixtures/app-cert.pem");

    #[test]
    fn refuses_what_it_cannot_sign_with() {
        let cert_only: String = FIXTURE
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .collect();
        assert!(matches!(
            ClientCertificate::from_pem(&cert_only, None),
            Err(CertificateError::NoKey)
        ));
        let key_only: String = FIXTURE
            .split_inclusive('\n')
            .take_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .collect();
        assert!(matches!(
            ClientCertificate::from_pem(&key_only, None),
            Err(CertificateError::NoCertificate)
        ));
        // Certificate and key in separate files work.
        assert!(ClientCertificate::from_pem(&cert_only, Some(&key_only)).is_ok());
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            ClientCertificate::from_pem(&cert_only, Some(encrypted)),
            Err(CertificateError::EncryptedKey)
        ));
        assert!(matches!(
            ClientCertificate::from_pem("\u{1}\u{2}binary pfx", None),
            Err(CertificateError::NoCertificate) | Err(CertificateError::NotPem(_))
        ));
    }

    #[test]
    fn assertion_carries_the_thumbprints_and_claims_entra_checks() {
        let Ok(c) = ClientCertificate::from_pem(FIXTURE, None) else {
            panic!("fixture loads");
        };
        let Ok(jwt) = c.assertion(
            "app-id",
            "https://login.example/t/oauth2/v2.0/token",
            1000,
            "j1",
        ) else {
            panic!("signs");
        };
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| -> serde_json::Value {
            URL_SAFE_NO_PAD
                .decode(s)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        let h = decode(parts[0]);
        assert_eq!(h["alg"], "PS256");
        assert_eq!(h["x5t#S256"].as_str().map(str::len), Some(43));
        assert_eq!(h["x5t"].as_str().map(str::len), Some(27));
        let c2 = decode(parts[1]);
        assert_eq!(c2["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(c2["iss"], "app-id");
        assert_eq!(c2["sub"], "app-id");
        assert_eq!(c2["exp"], 1600);
        assert_eq!(c.thumbprint().len(), 40);
    }
}
