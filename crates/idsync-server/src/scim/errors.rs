//! Errors on the SCIM endpoint: always a SCIM error body (RFC 7644 §3.12) with its status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use idsync_scim::ScimError;
use idsync_store::StoreError;

/// An error on the SCIM endpoint: always a SCIM error body with status and scimType.
pub(crate) struct ScimFailure(pub(crate) ScimError);

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for ScimFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(msg) => Self(ScimError::uniqueness(msg)),
            StoreError::NotFound(msg) => Self(ScimError::not_found(msg)),
            StoreError::Invalid(msg) => Self(ScimError::invalid_value(msg)),
            other => {
                tracing::error!(error = %other, "store error on the SCIM endpoint");
                Self(ScimError::internal(
                    "the store failed; the request changed nothing",
                ))
            }
        }
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.0.to_json().to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub(super) type ScimResult = Result<Response, ScimFailure>;
