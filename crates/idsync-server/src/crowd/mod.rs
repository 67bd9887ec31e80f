//! The Crowd-compatible directory idsync serves to Atlassian Data Center products
//! (decision 0031): `/crowd/<target>/rest/usermanagement/1/...`, one base per target of type
//! `crowd`. Here: routing, application authentication (`auth`), the remote-address
//! allow-list (`allow`), the body cap, the served directory built from the flow's ledger and
//! cached by ledger version (`directory`), the event feed from the store (`events`); the
//! protocol itself (entities, JSON and XML, searches, errors) is `idsync_crowd::handle`.

mod allow;
mod auth;
mod directory;
mod events;

pub use allow::{AllowList, BadAllowEntry};
pub use auth::{FAILURES_PER_MINUTE, FAILURE_BURST, RECHECK_MS};

use auth::{Auth, Refusal};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use idsync_crowd::{ErrorReason, Format};
use idsync_engine::Service;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The largest request body read (Crowd's requests are small: search restrictions,
/// refused writes); larger is answered 413 with Crowd's error body.
pub const MAX_CROWD_BODY: usize = 256 * 1024;

const PREFIX: &str = "/crowd/";
const API: &str = "/rest/usermanagement/";
/// The API versions served: 1, and `latest` as Atlassian's REST modules alias it (clients such
/// as atlassian-python-api ask for it).
const VERSIONS: [&str; 2] = ["1", "latest"];

/// One served target.
struct Served {
    flow: String,
    directory: directory::DirectoryCache,
    feed: events::Feed,
}

#[derive(Clone)]
pub(crate) struct CrowdState {
    svc: Arc<Service>,
    targets: Arc<BTreeMap<String, Served>>,
    auth: Arc<Auth>,
    /// Requests per application, as per SCIM token (`[server] scim_rate`, `scim_burst`).
    rate: Option<Arc<crate::limits::RateLimiter>>,
}

pub(crate) fn router(svc: Arc<Service>, rate: Option<crate::RateLimit>) -> Router {
    let rt = &svc.runtime;
    let rate = rate
        .and_then(|r| crate::limits::RateLimiter::new(r, Arc::clone(&rt.clock)))
        .map(Arc::new);
    let targets = rt
        .crowd
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                Served {
                    flow: c.flow.clone(),
                    directory: Default::default(),
                    feed: Default::default(),
                },
            )
        })
        .collect();
    let state = CrowdState {
        auth: Arc::new(Auth::new(rt.store.clone(), Arc::clone(&rt.clock))),
        targets: Arc::new(targets),
        rate,
        svc,
    };
    Router::new()
        .route("/crowd/{*rest}", any(serve))
        .with_state(state)
}

/// Crowd's error answer.
fn crowd_error(
    status: u16,
    reason: ErrorReason,
    message: &str,
    format: Format,
    extra: &[(header::HeaderName, String)],
) -> Response {
    let mut resp = to_http(idsync_crowd::error_response(
        status, reason, message, format,
    ));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(k.clone(), v);
        }
    }
    resp
}

fn to_http(r: idsync_crowd::Response) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let has_body = !r.body.is_empty();
    let mut resp = (status, r.body).into_response();
    let h = resp.headers_mut();
    if has_body {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(match r.format {
                Format::Json => "application/json",
                Format::Xml => "application/xml",
            }),
        );
    }
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    resp
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Every request under `/crowd/`.
async fn serve(State(st): State<CrowdState>, req: Request) -> Response {
    let headers = req.headers();
    let accept = Format::from_accept(header_str(headers, header::ACCEPT));
    let content_type = Format::from_content_type(header_str(headers, header::CONTENT_TYPE));
    let path = req.uri().path().to_string();
    // /crowd/<target>/rest/usermanagement/1/<resource>
    let Some((target, rest)) = path
        .strip_prefix(PREFIX)
        .and_then(|p| p.split_once('/'))
        .map(|(t, r)| (t.to_string(), format!("/{r}")))
    else {
        return not_found(&path, accept);
    };
    let Some(served) = st.targets.get(&target) else {
        return crowd_error(
            404,
            ErrorReason::IllegalArgument,
            // Not authenticated yet: the other targets' names are not listed.
            &format!("no Crowd directory is served at /crowd/{target}/"),
            accept,
            &[],
        );
    };
    let Some((version, resource)) = rest.strip_prefix(API).and_then(|r| {
        VERSIONS.iter().find_map(|v| match r.strip_prefix(v) {
            Some("") => Some((*v, "")),
            Some(res) => res.strip_prefix('/').map(|res| (*v, res)),
            None => None,
        })
    }) else {
        return not_found(&path, accept);
    };
    let resource = resource.to_string();

    // The application: Basic credentials, then its address.
    let peer: Option<IpAddr> = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let credentials = auth::basic_credentials(header_str(headers, header::AUTHORIZATION));
    let app = match st.auth.check(&target, credentials, peer).await {
        Ok(a) => a.app,
        Err(refusal) => return refused(refusal, accept),
    };

    if let Some(limiter) = &st.rate {
        if let Err(retry_after) = limiter.check(&app.id).0 {
            let l = limiter.limit;
            return crowd_error(
                429,
                ErrorReason::OperationFailed,
                &format!(
                    "over this application's rate limit of {} requests per second ({} at once): retry after {retry_after} s",
                    l.per_second, l.burst
                ),
                accept,
                &[(header::RETRY_AFTER, retry_after.to_string())],
            );
        }
    }

    let method = req.method().as_str().to_string();
    let query: Vec<(String, String)> = match req.uri().query().map(serde_urlencoded::from_str) {
        None => Vec::new(),
        Some(Ok(q)) => q,
        Some(Err(e)) => {
            return crowd_error(
                400,
                ErrorReason::IllegalArgument,
                &format!("the query string cannot be read: {e}"),
                accept,
                &[],
            )
        }
    };
    let host = header_str(headers, header::HOST)
        .unwrap_or("localhost")
        .to_string();
    // Behind a TLS-terminating proxy the links of the answers say https.
    let scheme = match header_str(
        headers,
        header::HeaderName::from_static("x-forwarded-proto"),
    ) {
        Some(p) if p.trim().eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let base_url = format!("{scheme}://{host}{PREFIX}{target}{API}{version}");
    let body = match axum::body::to_bytes(req.into_body(), MAX_CROWD_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return crowd_error(
                413,
                ErrorReason::IllegalArgument,
                &format!("the request body is larger than {MAX_CROWD_BODY} bytes"),
                accept,
                &[],
            )
        }
    };

    let rt = &st.svc.runtime;
    // Answers that need no directory never wait for one to be updated or built.
    let dir = match directory_need(&resource) {
        Need::Current => match served.directory.current(&rt.store, &served.flow).await {
            Ok(d) => Some(d),
            Err(e) => return unavailable(&target, &e.to_string(), accept),
        },
        Need::AsIs => served.directory.as_is().await,
        Need::Nothing => None,
    };
    let feed = if resource == "event" || resource.starts_with("event/") {
        match served.feed.current(&rt.store, &target, &served.flow).await {
            Ok(f) => f,
            Err(e) => return unavailable(&target, &e.to_string(), accept),
        }
    } else {
        // Only the event resources read the feed.
        Arc::new(idsync_crowd::EventLog::default())
    };
    tracing::debug!(target = %target, app = %app.name, method = %method, resource = %resource, "crowd request");
    // Lists of a large directory take a while to write: off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let req = idsync_crowd::Request {
            method: &method,
            path: &resource,
            query: &query,
            base_url: &base_url,
            accept,
            content_type,
            body: &body,
        };
        let empty = idsync_crowd::Directory::default();
        let dir = dir
            .as_ref()
            .and_then(|d| d.as_ref())
            .map_or(&empty, |b| &b.dir);
        idsync_crowd::handle(&req, dir, &feed)
    })
    .await;
    match answer {
        Ok(r) => to_http(r),
        Err(e) => {
            tracing::error!(target = %target, error = %e, "the crowd request handler failed");
            crowd_error(
                500,
                ErrorReason::OperationFailed,
                "the request could not be answered",
                accept,
                &[],
            )
        }
    }
}

/// What a resource needs of the served directory.
enum Need {
    /// The directory as of the ledger now.
    Current,
    /// Whatever is served, without waiting for an update (the event feed names managers
    /// by it).
    AsIs,
    /// Nothing: the current event token, cookie configuration, sessions.
    Nothing,
}

fn directory_need(resource: &str) -> Need {
    let r = resource.trim_matches('/');
    if r.starts_with("event/") {
        Need::AsIs
    } else if r == "event" || r == "config/cookie" || r == "session" || r.starts_with("session/") {
        Need::Nothing
    } else {
        Need::Current
    }
}

fn not_found(path: &str, format: Format) -> Response {
    crowd_error(
        404,
        ErrorReason::IllegalArgument,
        &format!("{path} is not a resource of Crowd's usermanagement API (/crowd/<target>/rest/usermanagement/1/... or .../latest/...)"),
        format,
        &[],
    )
}

fn unavailable(target: &str, why: &str, format: Format) -> Response {
    tracing::error!(
        target,
        error = why,
        "cannot read the served crowd directory"
    );
    crowd_error(
        503,
        ErrorReason::OperationFailed,
        "the directory cannot be read right now",
        format,
        &[(header::RETRY_AFTER, "5".into())],
    )
}

/// The answer to an application that was not let in, as Crowd answers: 401 with
/// `WWW-Authenticate` for missing or wrong credentials, 403 for an address not allowed.
fn refused(refusal: Refusal, format: Format) -> Response {
    let challenge = (
        header::WWW_AUTHENTICATE,
        "Basic realm=\"Crowd REST Service\"".to_string(),
    );
    match refusal {
        Refusal::Unauthenticated(why) => crowd_error(
            401,
            ErrorReason::ApplicationAccessDenied,
            &why,
            format,
            &[challenge],
        ),
        Refusal::AddressNotAllowed { app, address } => crowd_error(
            403,
            ErrorReason::ApplicationAccessDenied,
            &format!("Client with address \"{address}\" is forbidden from making requests to the application, {app}."),
            format,
            &[],
        ),
        Refusal::TooManyFailures { retry_after_s } => crowd_error(
            429,
            ErrorReason::ApplicationAccessDenied,
            &format!("too many failed authentications from this address: retry after {retry_after_s} s"),
            format,
            &[(header::RETRY_AFTER, retry_after_s.to_string())],
        ),
        Refusal::Store(e) => unavailable("", &e.to_string(), format),
    }
}
