//! What can go wrong talking to Graph.

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("cannot build the HTTP client: {0}")]
    Setup(String),
    #[error("sign-in to tenant {tenant} failed: {message}")]
    Auth { tenant: String, message: String },
    #[error("{message} (missing: {}; grant admin consent for {} on the app registration)", missing.join(", "), missing.join(", "))]
    Consent {
        message: String,
        missing: Vec<String>,
    },
    #[error("not found: {0}")]
    NotFound(String),
    /// Graph asks for a synchronization reset (410 Gone, `syncStateNotFound`,
    /// `resyncRequired`): a full read is needed. `location` is the URL Graph named in its
    /// `Location` header to start the new round from, when it named one.
    #[error("the delta link expired or is no longer valid ({reason}): a full read is needed")]
    DeltaExpired {
        reason: String,
        location: Option<String>,
    },
    #[error("Graph kept throttling {url} after {attempts} attempts")]
    Throttled { url: String, attempts: u32 },
    #[error("Graph answered {status} {code} for {url}: {message}")]
    Http {
        status: u16,
        code: String,
        message: String,
        url: String,
    },
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    #[error("invalid answer from {url}: {message}")]
    Invalid { url: String, message: String },
    #[error("refusing to follow a link to {0}: it is not on the configured Graph host")]
    ForeignLink(String),
}
