//! The request handler: one Crowd REST request against a [`Directory`] and an [`EventLog`].

use crate::error::{error_response, ErrorReason};
use crate::{Directory, EventLog, Request, Response};

/// The answer to one request. Never panics; never answers 5xx for anything in the request.
pub fn handle(req: &Request, _dir: &Directory, _events: &EventLog) -> Response {
    error_response(
        404,
        ErrorReason::UnsupportedOperation,
        &format!("{} {} is not served yet", req.method, req.path),
        req.accept,
    )
}
