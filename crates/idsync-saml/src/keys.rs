//! Keys and certificates: idsync's RSA signing key with its self-signed certificate (generated,
//! exported for sealing in the store, imported back), and the certificates of peers (from PEM or
//! from the base64 DER of a metadata document) with their RSA public keys.

use std::str::FromStr;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::{CryptoRng, RngCore};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::{Decode, DecodePem, Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use crate::error::SamlError;

/// The RSA modulus size of generated keys.
pub const GENERATED_KEY_BITS: usize = 2048;
const MIN_KEY_BITS: usize = 2048;

/// A peer's (or our own) X.509 certificate and its RSA public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    key: RsaPublicKey,
    not_after: SystemTime,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("bytes", &self.der.len())
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads a DER certificate; only RSA keys of at least 2048 bits are accepted.
    pub fn from_der(der: &[u8]) -> Result<Self, SamlError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| SamlError::Certificate(format!("not an RSA public key: {e}")))?;
        if key.size() * 8 < MIN_KEY_BITS {
            return Err(SamlError::Certificate(format!(
                "RSA key of {} bits, at least {MIN_KEY_BITS} required",
                key.size() * 8
            )));
        }
        let not_after = cert.tbs_certificate.validity.not_after.to_system_time();
        Ok(Self {
            der: der.to_vec(),
            key,
            not_after,
        })
    }

    /// Reads a PEM certificate (`-----BEGIN CERTIFICATE-----`).
    pub fn from_pem(pem: &str) -> Result<Self, SamlError> {
        let cert = x509_cert::Certificate::from_pem(pem.trim())
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        Self::from_der(
            &cert
                .to_der()
                .map_err(|e| SamlError::Certificate(e.to_string()))?,
        )
    }

    /// Reads the base64 DER of a metadata `X509Certificate` element (whitespace allowed).
    pub fn from_base64(text: &str) -> Result<Self, SamlError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(compact)
            .map_err(|e| SamlError::Certificate(format!("not base64: {e}")))?;
        Self::from_der(&der)
    }

    /// The base64 DER, as metadata and KeyInfo carry it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.der)
    }

    /// The PEM form.
    pub fn to_pem(&self) -> Result<String, SamlError> {
        let cert = x509_cert::Certificate::from_der(&self.der)
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        cert.to_pem(LineEnding::LF)
            .map_err(|e| SamlError::Certificate(e.to_string()))
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// When the certificate expires (SAML peers use the key, not the validity, but the admin page
    /// shows it).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub(crate) fn public_key(&self) -> &RsaPublicKey {
        &self.key
    }
}

/// idsync's signing key: an RSA private key and the certificate published for it.
#[derive(Clone)]
pub struct SigningKey {
    key: RsaPrivateKey,
    certificate: Certificate,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a 2048-bit RSA key and a self-signed certificate for it (`CN=<common_name>`,
    /// valid from `not_before` for `valid_for`).
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        common_name: &str,
        not_before: time::OffsetDateTime,
        valid_for: time::Duration,
    ) -> Result<Self, SamlError> {
        let key = RsaPrivateKey::new(rng, GENERATED_KEY_BITS)
            .map_err(|e| SamlError::Key(e.to_string()))?;
        let mut serial = [0u8; 16];
        rng.fill_bytes(&mut serial);
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        let serial =
            SerialNumber::new(&serial).map_err(|e| SamlError::Certificate(e.to_string()))?;
        let time = |t: time::OffsetDateTime| {
            Time::try_from(SystemTime::from(t)).map_err(|e| SamlError::Certificate(e.to_string()))
        };
        let validity = Validity {
            not_before: time(not_before)?,
            not_after: time(not_before + valid_for)?,
        };
        let cn: String = common_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || " .-_:/".contains(*c))
            .collect();
        let subject = Name::from_str(&format!("CN={cn}"))
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        let public = key.to_public_key();
        let spki_der = public
            .to_public_key_der()
            .map_err(|e| SamlError::Key(e.to_string()))?;
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
        let builder =
            CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer)
                .map_err(|e| SamlError::Certificate(e.to_string()))?;
        let cert = builder
            .build::<rsa::pkcs1v15::Signature>()
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        let der = cert
            .to_der()
            .map_err(|e| SamlError::Certificate(e.to_string()))?;
        Ok(Self {
            key,
            certificate: Certificate::from_der(&der)?,
        })
    }

    /// Reads a private key (PKCS#8 or PKCS#1 PEM) and its certificate (PEM); refuses a
    /// certificate of another key.
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str) -> Result<Self, SamlError> {
        let text = private_key_pem.trim();
        let key = RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
            .map_err(|e| SamlError::Key(format!("not an RSA private key in PEM: {e}")))?;
        let certificate = Certificate::from_pem(certificate_pem)?;
        if certificate.public_key() != &key.to_public_key() {
            return Err(SamlError::Key(
                "the certificate is not the private key's".into(),
            ));
        }
        Ok(Self { key, certificate })
    }

    /// The private key as PKCS#8 PEM, to be sealed in the store (zeroed when dropped).
    pub fn private_key_pem(
        &self,
    ) -> Result<rsa::pkcs8::der::zeroize::Zeroizing<String>, SamlError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SamlError::Key(e.to_string()))
    }

    /// The certificate published in metadata and KeyInfo.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        use rsa::signature::{SignatureEncoding, Signer};
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(self.key.clone());
        signer.sign(message).to_vec()
    }
}

/// Verifies RSASSA-PKCS1-v1_5 with SHA-256 of `message` against any of `keys`.
pub(crate) fn verify_rsa_sha256(
    keys: &[&RsaPublicKey],
    message: &[u8],
    signature: &[u8],
) -> Result<(), SamlError> {
    use rsa::signature::Verifier;
    let signature = rsa::pkcs1v15::Signature::try_from(signature)
        .map_err(|_| SamlError::BadSignature { keys: keys.len() })?;
    for key in keys {
        let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new((*key).clone());
        if verifier.verify(message, &signature).is_ok() {
            return Ok(());
        }
    }
    Err(SamlError::BadSignature { keys: keys.len() })
}
