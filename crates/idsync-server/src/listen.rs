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
//!   per episode, the connection idle longest is closed to free one, and accepting resumes
//!   after a short pause.
//!
//! Why this shape and these defaults: `docs/decisions/0020-connection-limits.md`.

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use idsync_config::ServerConfig;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// hyper's own limits on a request head, set above those of [`crate::limits`] so that ours
/// answer first (with a body of the endpoint's kind); past these hyper answers 431 or 414
/// itself, with an empty body, and closes the connection. 256 KiB of read buffer per
/// connection at most.
const HYPER_MAX_BUF: usize = 256 * 1024;
const HYPER_MAX_HEADERS: usize = 4 * crate::limits::MAX_HEADERS;

/// How long after its last answer a connection may be closed to make room: by then hyper has
/// written that answer out (unless the client does not read it).
const SETTLED: Duration = Duration::from_millis(100);

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
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                stream
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
            let req = req.map(|body| Body::new(WatchedBody { inner: body, conn }));
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

enum Close {
    /// Drop the connection: it outlived what it may (why), or makes room without a request.
    Now(&'static str),
    /// Made room for another while a request is in flight: close once it is answered.
    AfterRequest,
}

/// Resolves when the connection has outlived what it may, or must make room.
async fn watchdog(conn: &Conn) -> Close {
    loop {
        let (deadline, why) = {
            let st = conn.state();
            if st.evicted {
                return if st.in_flight == 0 {
                    Close::Now("closed to make room for a new connection")
                } else {
                    Close::AfterRequest
                };
            }
            st.deadline(&conn.limits)
        };
        let changed = conn.changed.notified();
        match deadline {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        let st = conn.state();
                        if st.deadline(&conn.limits).0.is_some_and(|d| d <= Instant::now()) {
                            return Close::Now(why);
                        }
                    }
                    () = changed => {}
                }
            }
            None => changed.await,
        }
    }
}

/// The connections being served, so that the one idle longest can be closed.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, limits: ConnLimits) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            limits,
            state: Mutex::new(ConnState {
                in_flight: 0,
                since: Instant::now(),
                head_started: false,
                served_one: false,
                body_wait: false,
                evicted: false,
                closed: false,
            }),
            changed: Notify::new(),
            closed: Notify::new(),
        });
        self.lock().insert(id, Arc::clone(&conn));
        conn
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Close the connection that has waited longest for a request (none in flight); the one
    /// closed, or `None` when every connection has a request in flight (or has just been
    /// answered: its answer may still be on its way out).
    fn evict_idlest(&self) -> Option<Arc<Conn>> {
        let now = Instant::now();
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter_map(|c| {
                let st = c.state();
                let quiet = !st.served_one || st.head_started || now - st.since >= SETTLED;
                (st.in_flight == 0 && !st.evicted && quiet).then_some((st.since, c))
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, c)| Arc::clone(c))?;
        drop(conns);
        idlest.state().evicted = true;
        idlest.changed.notify_one();
        tracing::debug!(connection = idlest.id, "closing the idlest connection");
        Some(idlest)
    }
}

/// One connection, as its watchdog, its IO and its requests see it.
struct Conn {
    id: u64,
    limits: ConnLimits,
    state: Mutex<ConnState>,
    /// The state changed: the watchdog recomputes its deadline.
    changed: Notify,
    closed: Notify,
}

struct ConnState {
    /// Requests whose answer is not yet fully handed to hyper.
    in_flight: usize,
    /// When the current phase began: the accept, the end of the last answer, the first byte
    /// of a head, the last byte read while a body is awaited.
    since: Instant,
    /// Bytes of a new request's head have arrived (none in flight).
    head_started: bool,
    served_one: bool,
    /// A handler waits for request-body bytes.
    body_wait: bool,
    evicted: bool,
    closed: bool,
}

impl ConnState {
    fn deadline(&self, limits: &ConnLimits) -> (Option<Instant>, &'static str) {
        if self.in_flight > 0 {
            if self.body_wait {
                return (
                    Some(self.since + limits.idle_timeout),
                    "request body stalled past idle_timeout",
                );
            }
            return (None, "");
        }
        if self.head_started || !self.served_one {
            (
                Some(self.since + limits.header_timeout),
                "request head not complete within header_timeout",
            )
        } else {
            (
                Some(self.since + limits.idle_timeout),
                "idle past idle_timeout",
            )
        }
    }
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut ConnState)) {
        f(&mut self.state());
        self.changed.notify_one();
    }

    /// Bytes arrived from the client.
    fn read_some(&self) {
        let mut st = self.state();
        if st.in_flight == 0 && !st.head_started && st.served_one {
            st.head_started = true;
            st.since = Instant::now();
        } else if st.in_flight > 0 && st.body_wait {
            st.since = Instant::now();
        } else {
            return;
        }
        drop(st);
        self.changed.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.state().closed
    }

    fn mark_closed(&self) {
        self.state().closed = true;
        self.closed.notify_waiters();
    }
}

/// A request in flight, from hyper's call until its answer's body is done (or dropped).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: Arc<Conn>) -> Self {
        conn.update(|st| {
            st.in_flight += 1;
            st.head_started = false;
        });
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|st| {
            st.in_flight = st.in_flight.saturating_sub(1);
            if st.in_flight == 0 {
                st.served_one = true;
                st.body_wait = false;
                st.since = Instant::now();
            }
        });
    }
}

/// The socket, reporting the bytes it reads.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read_some();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body, telling the watchdog while a handler waits for its bytes.
struct WatchedBody {
    inner: Incoming,
    conn: Arc<Conn>,
}

impl http_body::Body for WatchedBody {
    type Data = <Incoming as http_body::Body>::Data;
    type Error = <Incoming as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        let waiting = r.is_pending();
        let was = self.conn.state().body_wait;
        if waiting != was {
            self.conn.update(|st| {
                st.body_wait = waiting;
                if waiting {
                    st.since = Instant::now();
                }
            });
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.conn.update(|st| st.body_wait = false);
    }
}

/// An answer's body, holding its request in flight until hyper has taken all of it.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            max_connections: 2,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn phases_give_their_deadlines() {
        let reg = Registry::default();
        let c = reg.add(limits());
        let t0 = c.state().since;
        assert_eq!(
            c.state().deadline(&c.limits).0,
            Some(t0 + limits().header_timeout)
        );
        let guard = InFlight::start(Arc::clone(&c));
        assert_eq!(c.state().deadline(&c.limits).0, None);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        let t1 = c.state().since;
        assert_eq!(t1, t0 + Duration::from_secs(5));
        assert_eq!(
            c.state().deadline(&c.limits).0,
            Some(t1 + limits().idle_timeout)
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        c.read_some();
        let t2 = c.state().since;
        assert_eq!(
            c.state().deadline(&c.limits).0,
            Some(t2 + limits().header_timeout)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_idlest_connection_without_a_request_is_evicted() {
        let reg = Registry::default();
        let a = reg.add(limits());
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = reg.add(limits());
        let _busy = InFlight::start(Arc::clone(&a));
        let evicted = reg.evict_idlest().map(|c| c.id);
        assert_eq!(evicted, Some(b.id), "a has a request in flight");
        assert!(b.state().evicted);
        assert!(
            reg.evict_idlest().is_none(),
            "b is already closing, a is busy"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_just_answered_is_left_to_send_its_answer() {
        let reg = Registry::default();
        let a = reg.add(limits());
        drop(InFlight::start(Arc::clone(&a)));
        assert!(reg.evict_idlest().is_none(), "answered a moment ago");
        tokio::time::advance(SETTLED).await;
        assert_eq!(reg.evict_idlest().map(|c| c.id), Some(a.id));
    }

    #[tokio::test(start_paused = true)]
    async fn evicted_with_a_request_in_flight_closes_after_it() {
        let reg = Registry::default();
        let a = reg.add(limits());
        assert!(reg.evict_idlest().is_some());
        let busy = InFlight::start(Arc::clone(&a));
        assert!(matches!(watchdog(&a).await, Close::AfterRequest));
        drop(busy);
        assert!(matches!(watchdog(&a).await, Close::Now(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_fires_at_the_phase_deadline() {
        let reg = Registry::default();
        let a = reg.add(limits());
        let started = Instant::now();
        assert!(matches!(watchdog(&a).await, Close::Now(_)));
        assert_eq!(Instant::now() - started, limits().header_timeout);
        let busy = InFlight::start(Arc::clone(&a));
        let waited = tokio::time::timeout(Duration::from_secs(3600), watchdog(&a)).await;
        assert!(waited.is_err(), "no deadline while a request is in flight");
        drop(busy);
        let started = Instant::now();
        assert!(matches!(watchdog(&a).await, Close::Now(_)));
        assert_eq!(Instant::now() - started, limits().idle_timeout);
    }
}
