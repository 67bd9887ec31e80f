//! The one place where errors become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use idsync_engine::EngineError;
use idsync_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("the request target is {length} bytes long, at most {max}")]
    UriTooLong { length: usize, max: usize },
    #[error("request headers too large: {0}")]
    HeadersTooLarge(String),
    /// Over a rate limit; `retry_after` in seconds.
    #[error("{detail}")]
    TooManyRequests { retry_after: u64, detail: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Engine(
                EngineError::UnknownFlow(_)
                | EngineError::UnknownSource(_)
                | EngineError::UnknownRun(_)
                | EngineError::UnknownUser { .. },
            ) => StatusCode::NOT_FOUND,
            ApiError::Engine(EngineError::NotHeld { .. } | EngineError::Busy { .. }) => {
                StatusCode::CONFLICT
            }
            // A reconcile of a flow whose target idsync serves: nothing remote to compare.
            ApiError::Engine(EngineError::NothingToReconcile { .. }) => StatusCode::BAD_REQUEST,
            ApiError::Engine(EngineError::Source { .. } | EngineError::Target { .. }) => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::Engine(_) | ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = (
            status,
            Json(json!({"error": self.to_string(), "status": status.as_u16()})),
        )
            .into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*retry_after).into());
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
