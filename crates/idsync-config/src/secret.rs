use std::fmt;

/// A secret value from the configuration. It never prints: Debug and Display show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A 32-byte key that seals the secrets idsync keeps in its store (`[store] secret_key`).
/// Given as base64 (`openssl rand -base64 32`) or 64 hex digits (`openssl rand -hex 32`),
/// through `${file:PATH}` or `${env:NAME}`. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; SecretKey::LEN]);

impl SecretKey {
    pub const LEN: usize = 32;

    /// Decode a key; the error says what is wrong without showing the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let text = text.trim();
        let bytes = if text.len() == 2 * Self::LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..Self::LEN)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "not hexadecimal".to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| {
                    format!(
                        "a key is {} bytes in base64 (`openssl rand -base64 32`) or 64 hex digits (`openssl rand -hex 32`); this value ({} characters) is neither",
                        Self::LEN,
                        text.chars().count()
                    )
                })?
        };
        let n = bytes.len();
        bytes.try_into().map(SecretKey).map_err(|_| {
            format!(
                "a key is {} bytes; this one decodes to {n} (make one with `openssl rand -base64 32`)",
                Self::LEN
            )
        })
    }

    /// The key's bytes, for the store that seals with it.
    pub fn expose(&self) -> [u8; SecretKey::LEN] {
        self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_decode_from_base64_or_hex_and_other_lengths_are_refused() {
        let b64 = SecretKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let hex =
            SecretKey::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")
                .unwrap();
        assert_eq!(b64, hex);
        assert_eq!(b64.expose()[31], 31);
        let short = SecretKey::parse("AAECAwQFBgcICQoLDA0ODw==").unwrap_err();
        assert!(short.contains("decodes to 16"), "{short}");
        let junk = SecretKey::parse("correct horse battery staple").unwrap_err();
        assert!(!junk.contains("horse"), "{junk}");
        assert_eq!(format!("{b64:?}"), "SecretKey(***)");
    }
}
