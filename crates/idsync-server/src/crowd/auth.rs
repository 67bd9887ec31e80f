//! Application authentication: HTTP Basic with an application's name and password, as Crowd
//! has it. Products send the credentials on every call, and argon2 costs tens of milliseconds
//! on purpose: a password is verified once, off the async threads, and the verified
//! credentials are kept in memory (by a SHA-256 of target, name and password, never the
//! password itself) and taken on trust for [`RECHECK_MS`]; after that the store is read again
//! (one query, no argon2), so a revocation by another process takes effect within it. Wrong
//! credentials are rate-limited per remote address before any argon2 work.

use super::allow::AllowList;
use base64::Engine;
use idsync_core::Clock;
use idsync_store::{CrowdApp, Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How long verified credentials are taken on trust before the store is read again.
pub const RECHECK_MS: i64 = 5_000;
/// Failed authentications an address may make in a burst, and how many it gets back a minute.
pub const FAILURE_BURST: f64 = 10.0;
pub const FAILURES_PER_MINUTE: f64 = 10.0;
/// Verified credentials kept at most (the cache empties when it would grow past).
const MAX_VERIFIED: usize = 10_000;
/// Addresses whose failures are counted at most (full ones are dropped first).
const MAX_ADDRESSES: usize = 10_000;

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    /// No Basic credentials, an unknown application, or a wrong password.
    Unauthenticated(String),
    /// The application may not call from this address.
    AddressNotAllowed {
        app: String,
        address: String,
    },
    /// Too many failed authentications from this address: wait this many seconds.
    TooManyFailures {
        retry_after_s: u64,
    },
    Store(StoreError),
}

/// An authenticated application.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub app: CrowdApp,
}

struct Verified {
    app: CrowdApp,
    allow: AllowList,
    checked_ms: i64,
}

/// Credentials verified so far, and failures per address.
pub struct Auth {
    store: Store,
    clock: Arc<dyn Clock>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    failures: Mutex<HashMap<IpAddr, (f64, i64)>>,
    /// Argon2 verifications under way at most (each takes ~19 MiB and a core for tens of
    /// milliseconds): a burst of guesses waits here instead of exhausting memory.
    verifying: tokio::sync::Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Maps of plain values: a holder that panicked left nothing half-done that matters.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `Authorization: Basic base64(name:password)`.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let value = header?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

impl Auth {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            verified: Mutex::default(),
            failures: Mutex::default(),
            verifying: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            ),
        }
    }

    fn key(target: &str, name: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [target, name, password] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        h.finalize().into()
    }

    /// Authenticate an application of `target` calling from `peer`.
    pub async fn check(
        &self,
        target: &str,
        credentials: Option<(String, String)>,
        peer: Option<IpAddr>,
    ) -> Result<Authenticated, Refusal> {
        let now = self.clock.now_ms();
        let Some((name, password)) = credentials else {
            return Err(Refusal::Unauthenticated(
                "Application failed to authenticate: no Basic credentials (application name and password)".into(),
            ));
        };
        let key = Self::key(target, &name, &password);
        let cached = {
            let mut v = lock(&self.verified);
            match v.get_mut(&key) {
                Some(e) if now - e.checked_ms < RECHECK_MS && now >= e.checked_ms => {
                    Some((e.app.clone(), e.allow.clone(), true))
                }
                Some(e) => Some((e.app.clone(), e.allow.clone(), false)),
                None => None,
            }
        };
        let (app, allow) = match cached {
            Some((app, allow, true)) => (app, allow),
            Some((app, allow, false)) => {
                // Still live, with the same password hash? One query, no argon2.
                let live = self
                    .store
                    .live_crowd_app(target, &name)
                    .await
                    .map_err(Refusal::Store)?;
                match live {
                    Some(l) if l.id == app.id && l.hash == app.hash => {
                        // Host names are asked again at each re-check (DNS may have moved).
                        let allow = if allow.has_hosts() {
                            allow.resolve().await
                        } else {
                            allow
                        };
                        if let Some(e) = lock(&self.verified).get_mut(&key) {
                            e.checked_ms = now;
                            e.app = l.clone();
                            e.allow = allow.clone();
                        }
                        (l, allow)
                    }
                    _ => {
                        lock(&self.verified).remove(&key);
                        tracing::info!(
                            target,
                            app = %name,
                            "application revoked or its password changed: refused from now on"
                        );
                        self.verify(target, &name, password, key, peer, now).await?
                    }
                }
            }
            None => self.verify(target, &name, password, key, peer, now).await?,
        };
        if let Some(addr) = peer {
            if !allow.allows(addr) {
                return Err(Refusal::AddressNotAllowed {
                    app: app.name.clone(),
                    address: addr.to_canonical().to_string(),
                });
            }
        } else if !app.allow.is_empty() {
            return Err(Refusal::AddressNotAllowed {
                app: app.name.clone(),
                address: "(unknown)".into(),
            });
        }
        if app
            .last_used_ms
            .is_none_or(|t| now - t >= 60_000 || t > now)
        {
            match self.store.crowd_app_used(&app, now).await {
                Ok(()) => {
                    if let Some(e) = lock(&self.verified).get_mut(&key) {
                        e.app.last_used_ms = Some(now);
                    }
                }
                Err(e) => {
                    tracing::warn!(target, app = %app.name, error = %e, "cannot note the application's use");
                }
            }
        }
        Ok(Authenticated { app })
    }

    /// The full check: the application from the store, its password by argon2 off the async
    /// threads. Failures count against the address.
    async fn verify(
        &self,
        target: &str,
        name: &str,
        password: String,
        key: [u8; 32],
        peer: Option<IpAddr>,
        now: i64,
    ) -> Result<(CrowdApp, AllowList), Refusal> {
        if let Some(retry_after_s) = self.throttled(peer, now) {
            return Err(Refusal::TooManyFailures { retry_after_s });
        }
        let app = self
            .store
            .live_crowd_app(target, name)
            .await
            .map_err(Refusal::Store)?;
        // An unknown application costs the same argon2 work as a wrong password: its name
        // cannot be told apart by the time of the answer.
        let hash = app.as_ref().map(|a| a.hash.clone());
        let Ok(_permit) = self.verifying.acquire().await else {
            return Err(Refusal::Unauthenticated(
                "Application failed to authenticate".into(),
            ));
        };
        // Guesses that waited for their turn are counted again first.
        if let Some(retry_after_s) = self.throttled(peer, self.clock.now_ms()) {
            return Err(Refusal::TooManyFailures { retry_after_s });
        }
        let verified = tokio::task::spawn_blocking(move || match hash {
            Some(h) => idsync_store::verify_password(&h, &password),
            None => {
                let _ = idsync_store::verify_password(dummy_hash(), &password);
                false
            }
        })
        .await
        .unwrap_or(false);
        let ok = app.is_some() && verified;
        let (Some(app), true) = (app, ok) else {
            self.failed(peer, now);
            tracing::info!(target, app = name, peer = ?peer, "application failed to authenticate");
            return Err(Refusal::Unauthenticated(
                "Application failed to authenticate".into(),
            ));
        };
        let allow = match AllowList::parse(&app.allow) {
            Ok(a) if a.has_hosts() => a.resolve().await,
            Ok(a) => a,
            Err(e) => {
                // Written by `idsync crowd app create`, which checks it: a corrupt row.
                tracing::error!(target, app = name, error = %e, "the application's allow-list is corrupt: refused");
                return Err(Refusal::AddressNotAllowed {
                    app: app.name.clone(),
                    address: peer.map_or("(unknown)".into(), |p| p.to_string()),
                });
            }
        };
        let mut v = lock(&self.verified);
        if v.len() >= MAX_VERIFIED {
            v.clear();
        }
        v.insert(
            key,
            Verified {
                app: app.clone(),
                allow: allow.clone(),
                checked_ms: now,
            },
        );
        Ok((app, allow))
    }

    /// Seconds to wait when `peer` has no failures left.
    fn throttled(&self, peer: Option<IpAddr>, now: i64) -> Option<u64> {
        let peer = peer?;
        let f = lock(&self.failures);
        let (tokens, at) = *f.get(&peer.to_canonical())?;
        let tokens = refill(tokens, at, now);
        (tokens < 1.0).then(|| {
            let per_ms = FAILURES_PER_MINUTE / 60_000.0;
            (((1.0 - tokens) / per_ms) / 1000.0).ceil().max(1.0) as u64
        })
    }

    fn failed(&self, peer: Option<IpAddr>, now: i64) {
        let Some(peer) = peer else { return };
        let mut f = lock(&self.failures);
        if f.len() >= MAX_ADDRESSES {
            f.retain(|_, (t, at)| refill(*t, *at, now) < FAILURE_BURST);
        }
        let entry = f.entry(peer.to_canonical()).or_insert((FAILURE_BURST, now));
        let tokens = refill(entry.0, entry.1, now);
        *entry = ((tokens - 1.0).max(0.0), now);
    }
}

/// A hash nobody's password matches, verified against for unknown applications.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        idsync_store::hash_password("idsync: no such application").unwrap_or_default()
    })
}

fn refill(tokens: f64, at: i64, now: i64) -> f64 {
    let elapsed = (now - at).max(0) as f64;
    (tokens + elapsed * FAILURES_PER_MINUTE / 60_000.0).min(FAILURE_BURST)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn basic_credentials_are_read_as_crowd_clients_send_them() {
        let enc = base64::engine::general_purpose::STANDARD.encode("jira:s3:cret");
        assert_eq!(
            basic_credentials(Some(&format!("Basic {enc}"))),
            Some(("jira".into(), "s3:cret".into()))
        );
        assert_eq!(
            basic_credentials(Some(&format!("basic  {enc}"))).unwrap().0,
            "jira"
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert_eq!(basic_credentials(None), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_guesses_from_one_address_are_limited_too() {
        let store = Store::open_in_memory().await.unwrap();
        let (_, pw) = store.create_crowd_app("dc", "jira", &[], 0).await.unwrap();
        let auth = Arc::new(Auth::new(store, Arc::new(idsync_core::SystemClock)));
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let tries: Vec<_> = (0..40)
            .map(|_| {
                let auth = Arc::clone(&auth);
                tokio::spawn(async move {
                    auth.check("dc", Some(("jira".into(), "guess".into())), Some(peer))
                        .await
                })
            })
            .collect();
        let mut unauthenticated = 0;
        let mut throttled = 0;
        for t in tries {
            match t.await.unwrap() {
                Err(Refusal::Unauthenticated(_)) => unauthenticated += 1,
                Err(Refusal::TooManyFailures { .. }) => throttled += 1,
                other => panic!("{other:?}"),
            }
        }
        // Each guess is counted before the next one is verified: about one burst gets an
        // answer, the rest are throttled without argon2 work.
        let burst = FAILURE_BURST as usize;
        assert!(
            unauthenticated <= burst + 2,
            "{unauthenticated} {throttled}"
        );
        assert_eq!(unauthenticated + throttled, 40);
        // Another address, and the right password, are not held up.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(auth
            .check("dc", Some(("jira".into(), pw)), Some(other))
            .await
            .is_ok());
    }

    #[test]
    fn failures_refill_over_time() {
        assert_eq!(refill(0.0, 0, 6_000), 1.0);
        assert_eq!(refill(9.5, 0, 600_000), FAILURE_BURST);
    }
}
