//! The identity provider's JWKS, cached. A token whose `kid` is not in the cache makes it fetch
//! the JWKS again (the provider rotated its keys), but at most once per `refetch_interval`: a
//! flood of tokens with made-up `kid`s costs the provider one request per interval, not one
//! per token. The cache is also read again once it is older than `max_age` (a key the provider
//! withdrew stops being trusted then).

use std::sync::Arc;

use idsync_core::Clock;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{http, RpError};
use crate::jose::{JoseError, Jwk, JwkSet, UnverifiedToken};

#[derive(Default)]
struct State {
    keys: Arc<Vec<Jwk>>,
    fetched_at_ms: Option<i64>,
    fetches: u64,
}

pub(crate) struct JwksCache {
    uri: String,
    refetch_interval_ms: i64,
    max_age_ms: i64,
    state: Mutex<State>,
}

impl JwksCache {
    pub(crate) fn new(uri: String, refetch_interval_ms: i64, max_age_ms: i64) -> Self {
        Self {
            uri,
            refetch_interval_ms,
            max_age_ms,
            state: Mutex::new(State::default()),
        }
    }

    /// How many times the JWKS was fetched (for metrics and tests).
    pub(crate) async fn fetches(&self) -> u64 {
        self.state.lock().await.fetches
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        state: &mut State,
        now_ms: i64,
    ) -> Result<(), RpError> {
        // The attempt counts even when it fails: a failing provider is not asked again sooner.
        state.fetched_at_ms = Some(now_ms);
        state.fetches += 1;
        let body = http::get(http, &self.uri).await?;
        let set = JwkSet::parse(&body).map_err(|e| RpError::BadDocument {
            url: self.uri.clone(),
            reason: e.to_string(),
        })?;
        tracing::debug!(uri = %self.uri, keys = set.keys.len(), "fetched the identity provider's JWKS");
        state.keys = Arc::new(set.keys);
        Ok(())
    }

    /// Verifies `token`'s signature with the provider's keys and returns its claims.
    pub(crate) async fn verify(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
        token: UnverifiedToken,
    ) -> Result<Map<String, Value>, RpError> {
        let now = clock.now_ms();
        let keys = {
            let mut state = self.state.lock().await;
            let stale = state
                .fetched_at_ms
                .is_none_or(|at| now.saturating_sub(at) >= self.max_age_ms);
            if stale {
                self.fetch(http, &mut state, now).await?;
            }
            if token.candidate_keys(&state.keys).is_empty() {
                let may_refetch = state
                    .fetched_at_ms
                    .is_none_or(|at| now.saturating_sub(at) >= self.refetch_interval_ms);
                if may_refetch {
                    tracing::info!(kid = ?token.kid, "a token names a key the cached JWKS lacks: fetching it again");
                    self.fetch(http, &mut state, now).await?;
                }
            }
            Arc::clone(&state.keys)
        };
        let candidates = token.candidate_keys(&keys);
        if candidates.is_empty() {
            return Err(RpError::Token(JoseError::UnknownKey {
                kid: token.kid.clone(),
                alg: token.alg.name().to_owned(),
            }));
        }
        Ok(token.verify(&candidates)?)
    }
}
