use crate::jose::JoseError;

/// Why a sign-in at the upstream identity provider failed. Variants are stable: the server maps
/// them to the page the user sees and to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpError {
    #[error("relying party settings: {0}")]
    Config(String),
    #[error("could not reach {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {body}")]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} did not answer a valid document: {reason}")]
    BadDocument { url: String, reason: String },
    #[error("the discovery document's issuer {found:?} is not the configured issuer {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the identity provider refused the sign-in: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    ProviderError {
        error: String,
        description: Option<String>,
    },
    #[error("the sign-in's state does not match the one this login started with")]
    StateMismatch,
    #[error("the sign-in started too long ago (more than {max_age_s} s)")]
    LoginExpired { max_age_s: i64 },
    #[error("the answer carries no authorization code")]
    MissingCode,
    #[error("the token endpoint refused the code: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenRefused {
        error: String,
        description: Option<String>,
    },
    #[error("the ID token: {0}")]
    Token(#[from] JoseError),
    #[error("the ID token's issuer {found:?} is not {expected:?}")]
    WrongIssuer { expected: String, found: String },
    #[error("the ID token is not for this client (aud {found:?})")]
    WrongAudience { found: Vec<String> },
    #[error("the ID token has several audiences and its azp {found:?} is not this client")]
    WrongAuthorizedParty { found: Option<String> },
    #[error("the ID token expired at {exp} (now {now}, skew {skew_s} s)")]
    Expired { exp: i64, now: i64, skew_s: i64 },
    #[error("the ID token is not valid before {nbf} (now {now}, skew {skew_s} s)")]
    NotYetValid { nbf: i64, now: i64, skew_s: i64 },
    #[error("the ID token was issued in the future ({iat}, now {now}, skew {skew_s} s)")]
    IssuedInFuture { iat: i64, now: i64, skew_s: i64 },
    #[error("the ID token's nonce does not match this login's")]
    NonceMismatch,
    #[error("the ID token lacks the claim `{0}` or it has the wrong type")]
    MissingClaim(&'static str),
    #[error("the ID token is from tenant {found:?}, not {expected:?}")]
    WrongTenant { expected: String, found: String },
    #[error("the ID token is from user flow {found:?}, not {expected:?}")]
    WrongPolicy { expected: String, found: String },
}
