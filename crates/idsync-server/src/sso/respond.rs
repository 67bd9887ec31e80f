//! Where the single sign-on endpoints' answers and errors become HTTP responses: the
//! provider's [`OpResponse`]s, and [`SsoError`] as an HTML page whose texts are escaped. Pages
//! and redirects are never cached, never framed, and send no referrer (a redirect's URL
//! carries a code or a state).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use idsync_oidc::provider::{ProviderError, Response as OpResponse};
use idsync_oidc::rp::RpError;

/// Why a sign-in cannot go on. Each is shown to the user as a page saying why.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("no identity provider named {0:?} is configured")]
    UnknownUpstream(String),
    #[error("this sign-in is unknown or has expired (or was already finished): start again from the product")]
    UnknownLogin,
    #[error("this sign-in was started in another browser (or this browser's cookies are off): start again from the product")]
    OtherBrowser,
    #[error(
        "the answer came from identity provider {came:?}, but the sign-in started at {started:?}"
    )]
    WrongUpstream { started: String, came: String },
    #[error("the identity provider cannot be reached or is misconfigured: {0}")]
    UpstreamUnavailable(RpError),
    #[error("the sign-in at the identity provider failed: {0}")]
    Upstream(RpError),
    #[error("{reason}")]
    Refused { reason: String },
    #[error("the identity provider's answer cannot be used: {0}")]
    Unusable(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the identity provider's SAML response was refused: {0}")]
    Saml(idsync_saml::SamlError),
    #[error("the sign-in could not be finished: {0}")]
    Internal(String),
    #[error("too many sign-ins were started from your network address (at most {burst} at once, then {per_second} a second): try again in {retry_after_s} s")]
    TooManySignIns {
        retry_after_s: u64,
        per_second: f64,
        burst: u32,
    },
    #[error("too many sign-ins are in progress (at most {max}): try again in {retry_after_s} s")]
    TooManyPending { retry_after_s: u64, max: u64 },
}

impl From<ProviderError> for SsoError {
    fn from(e: ProviderError) -> Self {
        SsoError::Internal(e.to_string())
    }
}

impl From<idsync_store::StoreError> for SsoError {
    fn from(e: idsync_store::StoreError) -> Self {
        SsoError::Internal(e.to_string())
    }
}

impl SsoError {
    fn status(&self) -> StatusCode {
        match self {
            SsoError::UnknownUpstream(_) => StatusCode::NOT_FOUND,
            SsoError::UnknownLogin
            | SsoError::WrongUpstream { .. }
            | SsoError::OtherBrowser
            | SsoError::BadRequest(_) => StatusCode::BAD_REQUEST,
            SsoError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            // A provider's refusal, a bad token, a mismatched state: the sign-in is refused.
            SsoError::Upstream(_)
            | SsoError::Refused { .. }
            | SsoError::Unusable(_)
            | SsoError::Saml(_) => StatusCode::FORBIDDEN,
            SsoError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SsoError::TooManySignIns { .. } => StatusCode::TOO_MANY_REQUESTS,
            SsoError::TooManyPending { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            SsoError::Refused { .. } => "Sign-in refused",
            SsoError::BadRequest(_) => "Sign-in request refused",
            SsoError::Upstream(_) | SsoError::Unusable(_) | SsoError::Saml(_) => "Sign-in failed",
            SsoError::UnknownLogin | SsoError::WrongUpstream { .. } | SsoError::OtherBrowser => {
                "Sign-in expired"
            }
            SsoError::UnknownUpstream(_) => "Unknown identity provider",
            SsoError::UpstreamUnavailable(_) => "Identity provider unavailable",
            SsoError::Internal(_) => "Sign-in error",
            SsoError::TooManySignIns { .. } => "Too many sign-ins",
            SsoError::TooManyPending { .. } => "Sign-in busy",
        }
    }
}

impl IntoResponse for SsoError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            SsoError::Internal(_) | SsoError::UpstreamUnavailable(_) => {
                tracing::error!(error = %self, "sign-in failed");
            }
            _ => tracing::warn!(error = %self, status = status.as_u16(), "sign-in refused"),
        }
        let mut resp = page(status, self.title(), &self.to_string());
        if let SsoError::TooManySignIns { retry_after_s, .. }
        | SsoError::TooManyPending { retry_after_s, .. } = &self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        resp
    }
}

/// `&`, `<`, `>`, `"` and `'` as entities: the page's texts are plain text, whatever they hold.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn guarded(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// A page with a title and a message, both escaped.
pub fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let (title, message) = (escape_html(title), escape_html(message));
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em}}</style></head>\
         <body><h1>{title}</h1><p>{message}</p><p><small>idsync single sign-on</small></p></body></html>\n"
    );
    guarded(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// A 303 to `location`.
pub fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => guarded((StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response()),
        Err(_) => {
            SsoError::Internal("a redirect URL that is not a valid header".into()).into_response()
        }
    }
}

/// A provider handler's answer as HTTP.
pub fn render(answer: OpResponse) -> Response {
    match answer {
        OpResponse::Redirect { location } => redirect(&location),
        OpResponse::Json {
            status,
            body,
            headers,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = if body.is_null() {
                status.into_response()
            } else {
                (status, Json(body)).into_response()
            };
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    resp.headers_mut().insert(name, v);
                }
            }
            resp
        }
        OpResponse::ErrorPage {
            status,
            title,
            message,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            tracing::warn!(status = status.as_u16(), title = %title, message = %message, "authorization request refused");
            page(status, &title, &message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_texts_are_escaped() {
        assert_eq!(
            escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
