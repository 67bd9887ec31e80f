//! Where the provider keeps its signing keys, authorization codes and access tokens: a small
//! trait the server implements over its store (keys sealed at rest), and an in-memory one for
//! tests and a single node. Codes and tokens are keyed by their SHA-256, never by themselves.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::UserInfo;
use crate::keys::KeySet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider store: {0}")]
pub struct StoreError(pub String);

/// What an authorization code was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge, when the request had one.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub user: UserInfo,
    pub auth_time_s: i64,
    /// The code cannot be redeemed after this.
    pub expires_at_ms: i64,
    /// The record (used or not) is kept until this, so a replay is recognised while the tokens
    /// it was redeemed for are alive.
    pub retain_until_ms: i64,
}

/// What an access token grants (the userinfo endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub client_id: String,
    /// The hash of the code it was issued for (to revoke it when that code is replayed).
    pub code_hash: String,
    pub user: UserInfo,
    pub scope: Vec<String>,
    pub expires_at_ms: i64,
}

/// A code looked up for redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub grant: CodeGrant,
    /// The code had been redeemed before: this is a replay.
    pub already_used: bool,
}

#[async_trait]
pub trait ProviderStore: Send + Sync {
    async fn load_keys(&self) -> Result<Option<KeySet>, StoreError>;
    async fn save_keys(&self, keys: &KeySet) -> Result<(), StoreError>;
    async fn put_code(&self, code_hash: &str, grant: &CodeGrant) -> Result<(), StoreError>;
    /// Marks the code used and returns it, saying whether it was used before. Must be atomic:
    /// two redemptions racing see one `already_used: false` at most.
    async fn redeem_code(&self, code_hash: &str) -> Result<Option<Redeemed>, StoreError>;
    async fn put_access_token(
        &self,
        token_hash: &str,
        grant: &AccessGrant,
    ) -> Result<(), StoreError>;
    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessGrant>, StoreError>;
    /// Revokes every access token issued for the code. Returns how many.
    async fn revoke_code_tokens(&self, code_hash: &str) -> Result<usize, StoreError>;
    /// Forgets codes past their retention and tokens past their expiry.
    async fn purge(&self, now_ms: i64) -> Result<(), StoreError>;
}

#[derive(Default)]
struct Memory {
    keys: Option<KeySet>,
    codes: HashMap<String, (CodeGrant, bool)>,
    tokens: HashMap<String, AccessGrant>,
}

/// The in-memory store: for tests and a single node (codes and tokens do not survive a restart,
/// which only ends logins in flight).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Memory>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError("the in-memory store's lock is poisoned".into()))
    }
}

#[async_trait]
impl ProviderStore for MemoryStore {
    async fn load_keys(&self) -> Result<Option<KeySet>, StoreError> {
        Ok(self.lock()?.keys.clone())
    }
    async fn save_keys(&self, keys: &KeySet) -> Result<(), StoreError> {
        self.lock()?.keys = Some(keys.clone());
        Ok(())
    }
    async fn put_code(&self, code_hash: &str, grant: &CodeGrant) -> Result<(), StoreError> {
        self.lock()?
            .codes
            .insert(code_hash.to_owned(), (grant.clone(), false));
        Ok(())
    }
    async fn redeem_code(&self, code_hash: &str) -> Result<Option<Redeemed>, StoreError> {
        let mut inner = self.lock()?;
        Ok(inner.codes.get_mut(code_hash).map(|(grant, used)| {
            let already_used = *used;
            *used = true;
            Redeemed {
                grant: grant.clone(),
                already_used,
            }
        }))
    }
    async fn put_access_token(
        &self,
        token_hash: &str,
        grant: &AccessGrant,
    ) -> Result<(), StoreError> {
        self.lock()?
            .tokens
            .insert(token_hash.to_owned(), grant.clone());
        Ok(())
    }
    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessGrant>, StoreError> {
        Ok(self.lock()?.tokens.get(token_hash).cloned())
    }
    async fn revoke_code_tokens(&self, code_hash: &str) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let before = inner.tokens.len();
        inner.tokens.retain(|_, t| t.code_hash != code_hash);
        Ok(before - inner.tokens.len())
    }
    async fn purge(&self, now_ms: i64) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.codes.retain(|_, (g, _)| g.retain_until_ms > now_ms);
        inner.tokens.retain(|_, t| t.expires_at_ms > now_ms);
        Ok(())
    }
}
