//! What both sides share: NameID formats, instants, message IDs.

use rand_core::{CryptoRng, RngCore};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{malformed, SamlError};

pub(crate) const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub(crate) const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub(crate) const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub(crate) const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// The largest clock skew a configuration may allow.
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// A NameID format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NameIdFormat {
    /// `urn:oasis:names:tc:SAML:2.0:nameid-format:persistent` (Entra's default: a pairwise id).
    Persistent,
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress`.
    EmailAddress,
    /// `urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified` (also when no Format is given).
    Unspecified,
    /// `urn:oasis:names:tc:SAML:2.0:nameid-format:transient` (changes at every login).
    Transient,
    /// Any other format URI, kept as sent.
    Other(String),
}

impl NameIdFormat {
    /// The format's URI.
    pub fn uri(&self) -> &str {
        match self {
            Self::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            Self::EmailAddress => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            Self::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            Self::Transient => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
            Self::Other(uri) => uri,
        }
    }

    /// The format of a URI (absent means unspecified).
    pub fn from_uri(uri: Option<&str>) -> Self {
        match uri.map(str::trim) {
            None | Some("") => Self::Unspecified,
            Some(u) if u == Self::Persistent.uri() => Self::Persistent,
            Some(u) if u == Self::EmailAddress.uri() => Self::EmailAddress,
            Some(u) if u == Self::Unspecified.uri() => Self::Unspecified,
            Some(u) if u == Self::Transient.uri() => Self::Transient,
            Some(u) => Self::Other(u.to_owned()),
        }
    }
}

/// A NameID: its value (the whole text, comments never split it) and format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameId {
    pub value: String,
    pub format: NameIdFormat,
}

/// A fresh message or assertion ID: `_` and 32 hex digits from 128 random bits (an NCName).
pub(crate) fn new_id<R: RngCore + CryptoRng>(rng: &mut R) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    let mut id = String::with_capacity(33);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// An instant as SAML writes it: UTC, seconds, `Z`.
pub(crate) fn format_instant(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Reads an `xs:dateTime` (Entra writes seven fractional digits; UTC with `Z` or an offset).
pub(crate) fn parse_instant(
    value: &str,
    expected: &'static str,
) -> Result<OffsetDateTime, SamlError> {
    OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map_err(|e| malformed(expected, format!("instant {value:?}: {e}")))
}

pub(crate) fn skew_seconds(skew: time::Duration) -> i64 {
    skew.whole_seconds()
}

/// `now` is before `not_on_or_after` (plus skew), and not before `not_before` (minus skew).
pub(crate) fn check_window(
    now: OffsetDateTime,
    skew: time::Duration,
    not_before: Option<OffsetDateTime>,
    not_on_or_after: Option<OffsetDateTime>,
) -> Result<(), SamlError> {
    if let Some(nb) = not_before {
        if now + skew < nb {
            return Err(SamlError::NotYetValid {
                not_before: format_instant(nb),
                now: format_instant(now),
                skew_seconds: skew_seconds(skew),
            });
        }
    }
    if let Some(end) = not_on_or_after {
        if now - skew >= end {
            return Err(SamlError::Expired {
                not_on_or_after: format_instant(end),
                now: format_instant(now),
                skew_seconds: skew_seconds(skew),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_skew(skew: time::Duration) -> Result<(), SamlError> {
    if skew.is_negative() || skew > MAX_CLOCK_SKEW {
        return Err(SamlError::Config(format!(
            "clock skew of {} s: between 0 and {} s",
            skew.whole_seconds(),
            MAX_CLOCK_SKEW.whole_seconds()
        )));
    }
    Ok(())
}
