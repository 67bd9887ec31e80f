//! One connection as the accept loop's watchdog sees it: its phase (waiting for a head,
//! between requests, a request in flight, a handler waiting for body bytes), the deadline of
//! that phase, and the registry from which the connection idle longest is chosen to make room.

use crate::listen::ConnLimits;
use axum::body::Body;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long after its last answer a connection may be closed to make room: by then hyper has
/// written that answer out (unless the client does not read it).
const SETTLED: Duration = Duration::from_millis(100);

pub(crate) enum Close {
    /// Drop the connection: it outlived what it may (why), or makes room without a request.
    Now(&'static str),
    /// Made room for another while a request is in flight: close once it is answered.
    AfterRequest,
}

/// Resolves when the connection has outlived what it may, or must make room.
pub(crate) async fn watchdog(conn: &Conn) -> Close {
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
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add(&self, limits: ConnLimits) -> Arc<Conn> {
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

    pub(crate) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Close the connection that has waited longest for a request (none in flight); the one
    /// closed, or `None` when every connection has a request in flight (or has just been
    /// answered: its answer may still be on its way out).
    pub(crate) fn evict_idlest(&self) -> Option<Arc<Conn>> {
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
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) limits: ConnLimits,
    pub(crate) state: Mutex<ConnState>,
    /// The state changed: the watchdog recomputes its deadline.
    pub(crate) changed: Notify,
    pub(crate) closed: Notify,
}

pub(crate) struct ConnState {
    /// Requests whose answer is not yet fully handed to hyper.
    pub(crate) in_flight: usize,
    /// When the current phase began: the accept, the end of the last answer, the first byte
    /// of a head, the last byte read while a body is awaited.
    pub(crate) since: Instant,
    /// Bytes of a new request's head have arrived (none in flight).
    pub(crate) head_started: bool,
    pub(crate) served_one: bool,
    /// A handler waits for request-body bytes.
    pub(crate) body_wait: bool,
    pub(crate) evicted: bool,
    pub(crate) closed: bool,
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
    pub(crate) fn state(&self) -> MutexGuard<'_, ConnState> {
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

    pub(crate) fn is_closed(&self) -> bool {
        self.state().closed
    }

    pub(crate) fn mark_closed(&self) {
        self.state().closed = true;
        self.closed.notify_waiters();
    }
}

/// A request in flight, from hyper's call until its answer's body is done (or dropped).
pub(crate) struct InFlight(Arc<Conn>);

impl InFlight {
    pub(crate) fn start(conn: Arc<Conn>) -> Self {
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
pub(crate) struct Watched {
    pub(crate) inner: TcpStream,
    pub(crate) conn: Arc<Conn>,
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
pub(crate) struct WatchedBody {
    pub(crate) inner: Incoming,
    pub(crate) conn: Arc<Conn>,
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
pub(crate) struct Tracked {
    pub(crate) inner: Body,
    pub(crate) _in_flight: InFlight,
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
