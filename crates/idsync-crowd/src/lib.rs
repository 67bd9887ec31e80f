//! Atlassian Crowd's REST API, usermanagement version 1, for idsync: what a Crowd server needs to
//! answer the Crowd directory connector of Jira, Confluence, Bitbucket, Bamboo and Fisheye, and
//! the common Crowd clients. No IO: the HTTP front-end (idsync-server) authenticates the
//! application, builds a [`Directory`] from a flow's ledger, loads its [`EventLog`], and hands
//! each request to [`handle`].
//!
//! - [`model`]: Crowd's user and group entities and the conversion from idsync's model.
//! - [`codec`]: the XML writer and the readers of POSTed bodies (XML and JSON).
//! - [`render`]: users, groups, lists, attributes, memberships, events and the cookie
//!   configuration written in JSON and XML as Crowd writes them, with their `link`s.
//! - [`error`]: Crowd's error reasons, statuses and bodies.
//! - [`restriction`]: the search restriction language (the `restriction` query parameter and
//!   the POSTed `search-restriction` bodies) and its evaluation.
//! - [`directory`]: the served directory with its indexes and every query the API needs.
//! - [`event`]: events and the in-memory event log behind `event` and `event/{token}`.
//! - [`handler`]: the request handler (decision 0030 says what it answers and why).
//! - [`url`]: percent-encoding of links, percent-decoding of paths.
//!
//! Nothing here panics or answers 5xx on any input.

pub mod codec;
pub mod directory;
pub mod error;
pub mod event;
pub mod handler;
pub mod model;
pub mod render;
pub mod restriction;
pub mod url;

pub use directory::Directory;
pub use error::{error_response, ErrorReason};
pub use event::{Event, EventLog};
pub use handler::handle;
pub use model::{CrowdGroup, CrowdUser};

/// The largest page a search or a list answers with: a larger `max-results` (or a negative one,
/// Crowd's "all results") is clamped to it rather than refused. Clients page with `start-index`
/// (the products' connector pages through searches); the Python clients ask for 99,999 in one
/// page, which a directory of up to 50,000 members of one group still answers whole.
pub const MAX_RESULTS_CAP: usize = 50_000;

/// The representation of a body: Crowd speaks JSON and XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// The format to answer in, from an `Accept` header. Crowd's default (no header, `*/*`, or
    /// nothing it knows) is XML, as its Jersey resources list XML first.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Xml;
        };
        // The first media range naming JSON or XML wins (clients send one of them, sometimes
        // with parameters or q-values).
        for range in accept.split(',') {
            let media = range.split(';').next().unwrap_or("").trim();
            let media = media.to_ascii_lowercase();
            if media == "application/json" || media.ends_with("+json") {
                return Format::Json;
            }
            if media == "application/xml" || media == "text/xml" || media.ends_with("+xml") {
                return Format::Xml;
            }
        }
        Format::Xml
    }

    /// The format of a request body, from its `Content-Type` header (XML when absent or unknown).
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(ct) => {
                let media = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                if media == "application/json" || media.ends_with("+json") {
                    Format::Json
                } else {
                    Format::Xml
                }
            }
            None => Format::Xml,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        }
    }
}

/// One request, as the front-end received it after authenticating the application.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, upper case (`GET`, `POST`, `PUT`, `DELETE`).
    pub method: &'a str,
    /// The path after `.../rest/usermanagement/1/`, as received (still percent-encoded; the
    /// handler decodes it), without the query: `user`, `group/user/direct`, `event/<token>`.
    pub path: &'a str,
    /// The query parameters, already percent-decoded, in order (a name may repeat).
    pub query: &'a [(String, String)],
    /// The absolute URL of `.../rest/usermanagement/1` as the client reached it, without a
    /// trailing slash, e.g. `http://127.0.0.1:8080/crowd/jira/rest/usermanagement/1`: the base of
    /// the `link` elements of the answers.
    pub base_url: &'a str,
    pub accept: Format,
    pub content_type: Format,
    pub body: &'a [u8],
}

/// An answer: the front-end writes `status`, `Content-Type: format.mime()` (when `body` is not
/// empty), `headers`, and `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub format: Format,
    /// Extra headers (e.g. `Location`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An answer with a body in `format`.
    pub fn new(status: u16, format: Format, body: Vec<u8>) -> Response {
        Response {
            status,
            format,
            headers: Vec::new(),
            body,
        }
    }
}
