//! What a provider handler answers, for the server to turn into an HTTP response.

use serde_json::Value;

/// A handler's answer. The server renders it; nothing here depends on a web framework.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `303 See Other` to `location` (the authorization endpoint's answers).
    Redirect { location: String },
    /// A JSON body with its status and extra headers (`Cache-Control: no-store` on token
    /// answers, `WWW-Authenticate` on 401s). A `Null` body means no body (userinfo's 401).
    Json {
        status: u16,
        body: Value,
        headers: Vec<(&'static str, String)>,
    },
    /// An error shown to the user instead of a redirect: the request cannot be trusted to name
    /// where to send the browser (unknown client, unregistered redirect URI). The texts are
    /// plain text: escape them when rendering HTML.
    ErrorPage {
        status: u16,
        title: String,
        message: String,
    },
}

impl Response {
    pub(crate) fn json(status: u16, body: Value) -> Self {
        Self::Json {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub(crate) fn no_store(status: u16, body: Value) -> Self {
        Self::Json {
            status,
            body,
            headers: vec![
                ("cache-control", "no-store".to_owned()),
                ("pragma", "no-cache".to_owned()),
            ],
        }
    }

    pub(crate) fn error_page(status: u16, title: &str, message: impl Into<String>) -> Self {
        Self::ErrorPage {
            status,
            title: title.to_owned(),
            message: message.into(),
        }
    }

    /// The HTTP status of this answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Redirect { .. } => 303,
            Self::Json { status, .. } | Self::ErrorPage { status, .. } => *status,
        }
    }
}

/// `name=value` pairs as a handler takes them; a name given twice is refused by the handlers
/// that care (RFC 6749 §3.1: parameters must not be repeated).
pub(crate) struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    pub(crate) fn new(pairs: &'a [(String, String)]) -> Self {
        Self { pairs }
    }

    /// The value of `name`: `Ok(None)` when absent or empty, `Err(())` when repeated.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut found = None;
        for (k, v) in self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(());
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// The first name given more than once, if any.
    pub(crate) fn repeated(&self) -> Option<&'a str> {
        self.pairs.iter().enumerate().find_map(|(i, (k, _))| {
            self.pairs[..i]
                .iter()
                .any(|(p, _)| p == k)
                .then_some(k.as_str())
        })
    }
}
