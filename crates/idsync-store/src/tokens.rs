//! Bearer tokens of the directories' push endpoints, kept as hashes (the secret is shown once),
//! with a short cache so that authentication does not read the store on every request.

use crate::{Store, StoreError};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// A bearer token of a directory's push endpoint. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub directory: String,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

fn hash(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

/// Write token use at most once a minute, so that authentication does not cost a write per
/// request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl Store {
    /// Create a token for a directory's push endpoint. The secret is returned once.
    pub async fn create_token(
        &self,
        dir: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(TokenInfo, String), StoreError> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!(
            "idsync_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO scim_tokens (id, dir, name, hash, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(dir)
        .bind(name)
        .bind(hash(&secret))
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        let info = TokenInfo {
            id,
            directory: dir.to_string(),
            name: name.to_string(),
            created_ms: now_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        Ok((info, secret))
    }

    pub async fn list_tokens(&self, dir: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = match dir {
            Some(d) => {
                sqlx::query(&format!(
                    "{TOKEN_COLUMNS} WHERE dir = $1 ORDER BY created_ms"
                ))
                .bind(d)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY dir, created_ms"))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        Ok(rows.iter().map(token_row).collect())
    }

    /// Revoke a token by id. False when there is no such live token. This process stops
    /// accepting it at once; another process serving the same store within
    /// `TOKEN_CACHE_MS`.
    pub async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE scim_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.tokens.lock().retain(|_, (info, _)| info.id != id);
        Ok(n > 0)
    }

    /// The live token with this secret, if any; notes its use. A token found is remembered for
    /// `TOKEN_CACHE_MS`, so that a busy endpoint does not read the store on every request.
    pub async fn verify_token(
        &self,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let hash = hash(secret);
        let cached = self
            .tokens
            .lock()
            .get(&hash)
            .filter(|(_, at)| (0..TOKEN_CACHE_MS).contains(&(now_ms - at)))
            .map(|(info, _)| info.clone());
        let mut info = match cached {
            Some(info) => info,
            None => {
                let Some(row) = sqlx::query(&format!(
                    "{TOKEN_COLUMNS} WHERE hash = $1 AND revoked_ms IS NULL"
                ))
                .bind(&hash)
                .fetch_optional(&self.reader)
                .await?
                else {
                    return Ok(None);
                };
                let info = token_row(&row);
                self.tokens
                    .lock()
                    .insert(hash.clone(), (info.clone(), now_ms));
                info
            }
        };
        if info
            .last_used_ms
            .is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS)
        {
            sqlx::query("UPDATE scim_tokens SET last_used_ms = $2 WHERE id = $1")
                .bind(&info.id)
                .bind(now_ms)
                .execute(&self.writer)
                .await?;
            info.last_used_ms = Some(now_ms);
            if let Some((kept, _)) = self.tokens.lock().get_mut(&hash) {
                kept.last_used_ms = Some(now_ms);
            }
        }
        Ok(Some(info))
    }
}

/// How long a verified token is taken on trust before the store is read again.
pub const TOKEN_CACHE_MS: i64 = 5_000;

/// Verified tokens by hash, with when they were read from the store.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenCache(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (TokenInfo, i64)>>>,
);

impl TokenCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (TokenInfo, i64)>> {
        // The map holds no invariant a panicking holder could break: a poisoned lock is used.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const TOKEN_COLUMNS: &str =
    "SELECT id, dir, name, created_ms, last_used_ms, revoked_ms FROM scim_tokens";

fn token_row(r: &sqlx::sqlite::SqliteRow) -> TokenInfo {
    TokenInfo {
        id: r.get(0),
        directory: r.get(1),
        name: r.get(2),
        created_ms: r.get(3),
        last_used_ms: r.get(4),
        revoked_ms: r.get(5),
    }
}
