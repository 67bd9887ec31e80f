//! The crate's one error type: every refusal has its own stable variant, so the server can map
//! each to a page and a log entry, and the tests can tell one check from another.

/// Why a SAML message, key or document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    /// Larger than the crate reads (a bound against memory exhaustion).
    #[error("the {what} is larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    /// Not well-formed XML, or XML with a DTD (refused: no entities, no external references).
    #[error("not well-formed XML (DTDs and entities are refused): {0}")]
    Xml(String),
    /// Not valid base64 (or not UTF-8 once decoded).
    #[error("not valid base64 or UTF-8: {0}")]
    Encoding(String),
    /// The DEFLATE data of an HTTP-Redirect message does not inflate (or inflates too large).
    #[error("the deflated message does not inflate within {limit} bytes")]
    Inflate { limit: usize },
    /// The document is not the SAML element expected, or lacks a part it must have.
    #[error("not a valid SAML {expected}: {detail}")]
    Malformed {
        expected: &'static str,
        detail: String,
    },
    /// A part that must be signed (by configuration) carries no signature.
    #[error("the {0} is not signed, and it must be")]
    Unsigned(&'static str),
    /// The signature's structure is refused: several signatures or references, a reference to
    /// another element, a duplicated ID, a transform that is not allowed...
    #[error("signature refused: {0}")]
    SignatureStructure(String),
    /// A signature, digest or canonicalization algorithm that is not accepted.
    #[error("algorithm not accepted: {0}")]
    Algorithm(String),
    /// The signed content was changed after signing.
    #[error("the digest of the signed element does not match: it was changed after signing")]
    DigestMismatch,
    /// The signature does not verify with any trusted key.
    #[error("the signature does not verify with any of the {keys} trusted key(s)")]
    BadSignature { keys: usize },
    /// The IdP answered with a status other than Success.
    #[error("the identity provider answered {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        status: String,
        message: Option<String>,
    },
    /// The Issuer is not the trusted identity provider (or not the registered service provider).
    #[error("issuer {found:?} is not the expected {expected:?}")]
    Issuer { expected: String, found: String },
    /// The Response's Destination is not our ACS URL (or the request's is not our SSO URL).
    #[error("destination {found:?} is not {expected:?}")]
    Destination { expected: String, found: String },
    /// No bearer SubjectConfirmationData names our ACS URL as Recipient.
    #[error("recipient {found:?} is not our ACS URL {expected:?}")]
    Recipient { expected: String, found: String },
    /// The assertion's audience restriction does not name our entity id.
    #[error("the assertion is for audience {found:?}, not for {expected:?}")]
    Audience {
        expected: String,
        found: Vec<String>,
    },
    /// `InResponseTo` names no request we sent (or one already answered, or expired).
    #[error("InResponseTo {0:?} answers no pending request of ours")]
    UnknownRequest(String),
    /// The Response's and the assertion's `InResponseTo` differ.
    #[error("InResponseTo differs between the response ({response:?}) and the assertion ({assertion:?})")]
    InResponseToMismatch { response: String, assertion: String },
    /// A response without `InResponseTo` while unsolicited responses are not allowed.
    #[error("unsolicited response (no InResponseTo), and unsolicited responses are not allowed")]
    Unsolicited,
    /// Not valid yet (NotBefore later than now plus the allowed skew).
    #[error("not valid before {not_before} (now {now}, skew allowed {skew_seconds} s)")]
    NotYetValid {
        not_before: String,
        now: String,
        skew_seconds: i64,
    },
    /// No longer valid (NotOnOrAfter reached, after the allowed skew).
    #[error("expired at {not_on_or_after} (now {now}, skew allowed {skew_seconds} s)")]
    Expired {
        not_on_or_after: String,
        now: String,
        skew_seconds: i64,
    },
    /// The assertion was already used once.
    #[error("assertion {0:?} was already used (replay)")]
    Replay(String),
    /// The replay cache is full of unexpired entries: refusing beats forgetting one.
    #[error("the replay cache is full ({capacity} unexpired assertion ids)")]
    ReplayCacheFull { capacity: usize },
    /// An AuthnRequest from a service provider that is not registered.
    #[error("service provider {0:?} is not registered")]
    UnknownServiceProvider(String),
    /// An AuthnRequest asks for an ACS URL other than the registered one (no open redirect).
    #[error("ACS URL {found:?} is not the registered {registered:?}")]
    AcsUrl { registered: String, found: String },
    /// An unsupported binding or a feature the crate refuses (encrypted assertions...).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A key that cannot be read, generated or used.
    #[error("key: {0}")]
    Key(String),
    /// A certificate that cannot be read or made.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A metadata document that cannot be used.
    #[error("metadata: {0}")]
    Metadata(String),
    /// A configuration value that is not acceptable (an unbounded skew, no signature required...).
    #[error("configuration: {0}")]
    Config(String),
}

pub(crate) fn malformed(expected: &'static str, detail: impl Into<String>) -> SamlError {
    SamlError::Malformed {
        expected,
        detail: detail.into(),
    }
}
