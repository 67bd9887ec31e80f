//! The accept loop and the life of each connection: what a client may hold, and for how long.
//!
//! - At most `max_connections` connections are served at once. A new connection beyond it
//!   closes the connection that has been waiting longest for a request (none in flight); when
//!   every connection has a request in flight, new ones wait in the listen backlog.
//! - A request's head must arrive within `header_timeout` of its first byte (of the accept, for
//!   a connection's first request); between requests a connection may stay `idle_timeout`; a
//!   request body that stops arriving is given `idle_timeout` without a byte. Past these the
//!   connection is closed without an answer.
//! - Running out of file descriptors (EMFILE, ENFILE) does not stop the loop: it is logged once
//!   a minute at most, the connection idle longest is closed to free one, and accepting resumes
//!   (after a short pause when nothing was idle).
//!
//! The connection's phases and the watchdog that enforces them are in `conn.rs`.
//!
//! Why this shape and these defaults: `docs/decisions/0020-connection-limits.md`.

use crate::conn::{watchdog, Close, Conn, InFlight, Registry, Tracked, Watched, WatchedBody};
use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use idsync_config::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// hyper's own limits on a request head, set above those of [`crate::limits`] so that ours
/// answer first (with a body of the endpoint's kind); past these hyper answers 431 or 414
/// itself, with an empty body, and closes the connection. 256 KiB of read buffer per
/// connection at most.
const HYPER_MAX_BUF: usize = 256 * 1024;
const HYPER_MAX_HEADERS: usize = 4 * crate::limits::MAX_HEADERS;

/// Longest pause of the accept loop when the process is out of descriptors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a connection may hold, and for how long (`[server]` in idsync.toml).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl From<&ServerConfig> for ConnLimits {
    fn from(c: &ServerConfig) -> Self {
        ConnLimits {
            max_connections: c.max_connections.max(1),
            header_timeout: c.header_timeout,
            idle_timeout: c.idle_timeout,
        }
    }
}

/// Serve `app` on `listener` until `shutdown` completes; then stop accepting, let requests in
/// flight finish, and return once every connection is closed.
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(HYPER_MAX_BUF)
        .max_headers(HYPER_MAX_HEADERS)
        .header_read_timeout(None);
    let http = Arc::new(http);
    let mut exhausted = Exhaustion::default();
    let mut at_cap = false;
    let mut backoff = Duration::from_millis(10);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                (stream, peer)
            }
            Err(e) if out_of_descriptors(&e) => {
                if let Some(times) = exhausted.report() {
                    tracing::warn!(
                        error = %e,
                        connections = registry.len(),
                        times,
                        "out of file descriptors: closing idle connections and pausing accept (raise the open-files limit or lower [server] max_connections)"
                    );
                }
                if let Some(closed) = registry.evict_idlest() {
                    wait_closed(closed).await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                continue;
            }
            Err(e) => {
                // The peer gave up before the accept (ECONNABORTED and the like): next one.
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let freed = registry.evict_idlest();
                if freed.is_none() && !at_cap {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "every connection has a request in flight: new connections wait ([server] max_connections)"
                    );
                }
                at_cap = freed.is_none();
                tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = registry.add(limits);
        tokio::spawn(run_connection(ConnTask {
            stream,
            peer,
            app: app.clone(),
            http: Arc::clone(&http),
            conn,
            registry: Arc::clone(&registry),
            stop: stop_rx.clone(),
            _permit: permit,
        }));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends.
    let _ = permits
        .acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// Running out of descriptors, told once a minute at most (with how often it happened).
#[derive(Default)]
struct Exhaustion {
    told: Option<Instant>,
    since: u64,
}

impl Exhaustion {
    const QUIET: Duration = Duration::from_secs(60);

    /// Count one more; `Some(count)` when it is time to tell.
    fn report(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self
            .told
            .is_some_and(|t| now.duration_since(t) < Self::QUIET)
        {
            return None;
        }
        self.told = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// Wait (a little) for an evicted connection to let go of its socket.
async fn wait_closed(conn: Arc<Conn>) {
    let closed = conn.closed.notified();
    if conn.is_closed() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), closed).await;
}

/// What a connection's task owns.
struct ConnTask {
    stream: TcpStream,
    /// The client's address (handlers read it as `ConnectInfo<SocketAddr>`).
    peer: std::net::SocketAddr,
    app: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

async fn run_connection(task: ConnTask) {
    let ConnTask {
        stream,
        peer,
        app,
        http,
        conn,
        registry,
        mut stop,
        _permit,
    } = task;
    let io = hyper_util::rt::TokioIo::new(Watched {
        inner: stream,
        conn: Arc::clone(&conn),
    });
    let service_conn = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let guard = InFlight::start(Arc::clone(&service_conn));
        let app = app.clone();
        let conn = Arc::clone(&service_conn);
        async move {
            let mut req = req.map(|body| Body::new(WatchedBody { inner: body, conn }));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    _in_flight: guard,
                })
            }))
        }
    });
    let served = http.serve_connection(io, service);
    tokio::pin!(served);
    // Stopping: a connection without a request in flight (a partial head is not one) closes
    // now; one with a request finishes it and then closes.
    let mut stopping = *stop.borrow();
    if stopping {
        registry.remove(conn.id);
        conn.mark_closed();
        return;
    }
    loop {
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            close = watchdog(&conn) => match close {
                Close::Now(why) => {
                    tracing::debug!(reason = why, "connection closed");
                    break;
                }
                Close::AfterRequest => {
                    // Chosen to make room just as a request arrived: hyper answers it, then
                    // closes the connection.
                    conn.state().evicted = false;
                    served.as_mut().graceful_shutdown();
                }
            },
            r = stop.changed(), if !stopping => {
                if r.is_err() || *stop.borrow() {
                    stopping = true;
                    if conn.state().in_flight == 0 {
                        tracing::debug!("connection closed: shutting down");
                        break;
                    }
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
    registry.remove(conn.id);
    conn.mark_closed();
}
