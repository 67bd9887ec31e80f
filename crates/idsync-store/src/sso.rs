//! The single sign-on broker's state (decision 0045): the OpenID provider's signing keys
//! (sealed in `secrets` with the store's keyring, decision 0023), its authorization codes
//! (redeemed by one atomic UPDATE), its access tokens, and the logins in progress at an
//! upstream identity provider. Migration 0026.

use crate::{Keyring, SecretError, Store, StoreError};
use async_trait::async_trait;
use idsync_oidc::provider::{
    AccessGrant, CodeGrant, ProviderStore, Redeemed, StoreError as OpError,
};
use idsync_oidc::KeySet;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The name the provider's key set is sealed under in `secrets`.
pub const SSO_KEYS_SECRET: &str = "sso.oidc.signing-keys";

/// The SHA-256 of a secret value (a state, a code), hex: what the store keys it by.
pub fn secret_hash(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a purge of the broker's state removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SsoPurged {
    pub codes: u64,
    pub tokens: u64,
    pub pending: u64,
}

impl Store {
    /// Keeps a login in progress at upstream `upstream` under its state (hashed) until
    /// `expires_ms`.
    pub async fn put_sso_pending(
        &self,
        state: &str,
        upstream: &str,
        data: &str,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sso_pending (state_hash, upstream, data, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(secret_hash(state))
        .bind(upstream)
        .bind(data)
        .bind(expires_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes the login in progress under `state`: it is gone after this, whatever follows
    /// (a state is used once). `None` when there is none or it expired at `now_ms`.
    /// Returns (upstream, data).
    pub async fn take_sso_pending(
        &self,
        state: &str,
        now_ms: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM sso_pending WHERE state_hash = $1 RETURNING upstream, data, expires_ms",
        )
        .bind(secret_hash(state))
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.and_then(|r| {
            let expires: i64 = r.get(2);
            (expires > now_ms).then(|| (r.get(0), r.get(1)))
        }))
    }

    /// How many logins are in progress at `now_ms` (not expired), counting no further than
    /// `at_most`: the scan stops there, so the cost is bounded whatever the table holds.
    pub async fn count_sso_pending(&self, now_ms: i64, at_most: u64) -> Result<u64, StoreError> {
        let limit = i64::try_from(at_most).unwrap_or(i64::MAX);
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM sso_pending WHERE expires_ms > $1 LIMIT $2)",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_one(&self.reader)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Forgets codes past their retention, tokens past their expiry and logins in progress
    /// past theirs.
    pub async fn purge_sso(&self, now_ms: i64) -> Result<SsoPurged, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut run = async |sql: &str| -> Result<u64, StoreError> {
            Ok(sqlx::query(sql)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected())
        };
        let codes = run("DELETE FROM sso_codes WHERE retain_until_ms <= $1").await?;
        let tokens = run("DELETE FROM sso_tokens WHERE expires_ms <= $1").await?;
        let pending = run("DELETE FROM sso_pending WHERE expires_ms <= $1").await?;
        tx.commit().await?;
        Ok(SsoPurged {
            codes,
            tokens,
            pending,
        })
    }
}

/// The OpenID provider's [`ProviderStore`] on the store: keys sealed with `keys`.
#[derive(Debug, Clone)]
pub struct SsoStore {
    store: Store,
    keys: Keyring,
}

impl SsoStore {
    pub fn new(store: Store, keys: Keyring) -> Self {
        Self { store, keys }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn op(e: impl std::fmt::Display) -> OpError {
    OpError(e.to_string())
}

fn grant<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, OpError> {
    serde_json::from_str(json).map_err(|e| OpError(format!("a stored {what} cannot be read: {e}")))
}

fn json(value: &impl serde::Serialize) -> Result<String, OpError> {
    serde_json::to_string(value).map_err(op)
}

#[async_trait]
impl ProviderStore for SsoStore {
    async fn load_keys(&self) -> Result<Option<KeySet>, OpError> {
        let Some(bytes) = self
            .store
            .get_secret(&self.keys, SSO_KEYS_SECRET)
            .await
            .map_err(|e: SecretError| op(e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| OpError(format!("the sealed signing keys cannot be read: {e}")))
    }

    async fn save_keys(&self, keys: &KeySet) -> Result<(), OpError> {
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(keys).map_err(op)?);
        let now = keys.current.created_at_ms;
        self.store
            .put_secret(&self.keys, SSO_KEYS_SECRET, &bytes, now)
            .await
            .map_err(op)
    }

    async fn put_code(&self, code_hash: &str, grant: &CodeGrant) -> Result<(), OpError> {
        sqlx::query(
            "INSERT INTO sso_codes (hash, grant_json, used, expires_ms, retain_until_ms) VALUES ($1, $2, 0, $3, $4)",
        )
        .bind(code_hash)
        .bind(json(grant)?)
        .bind(grant.expires_at_ms)
        .bind(grant.retain_until_ms)
        .execute(&self.store.writer)
        .await
        .map_err(op)?;
        Ok(())
    }

    /// One UPDATE marks the code used and says how many times it was redeemed: the first
    /// redemption sees 1, any other (racing or later) more. SQLite runs it as one statement on
    /// the single writer connection, so two redemptions cannot both see 1.
    async fn redeem_code(&self, code_hash: &str) -> Result<Option<Redeemed>, OpError> {
        let row = sqlx::query(
            "UPDATE sso_codes SET used = used + 1 WHERE hash = $1 RETURNING grant_json, used",
        )
        .bind(code_hash)
        .fetch_optional(&self.store.writer)
        .await
        .map_err(op)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let used: i64 = row.get(1);
        Ok(Some(Redeemed {
            grant: grant("code", row.get(0))?,
            already_used: used > 1,
        }))
    }

    async fn put_access_token(&self, token_hash: &str, grant: &AccessGrant) -> Result<(), OpError> {
        sqlx::query(
            "INSERT INTO sso_tokens (hash, code_hash, grant_json, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(&grant.code_hash)
        .bind(json(grant)?)
        .bind(grant.expires_at_ms)
        .execute(&self.store.writer)
        .await
        .map_err(op)?;
        Ok(())
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessGrant>, OpError> {
        // The writer: a token issued a moment ago is seen at once.
        let row = sqlx::query("SELECT grant_json FROM sso_tokens WHERE hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.store.writer)
            .await
            .map_err(op)?;
        row.map(|r| grant("access token", r.get(0))).transpose()
    }

    async fn revoke_code_tokens(&self, code_hash: &str) -> Result<usize, OpError> {
        let n = sqlx::query("DELETE FROM sso_tokens WHERE code_hash = $1")
            .bind(code_hash)
            .execute(&self.store.writer)
            .await
            .map_err(op)?
            .rows_affected();
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn purge(&self, now_ms: i64) -> Result<(), OpError> {
        self.store.purge_sso(now_ms).await.map_err(op)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{SealKey, SECRET_KEY_LEN};
    use idsync_oidc::provider::UserInfo;

    fn code_grant(now: i64) -> CodeGrant {
        CodeGrant {
            client_id: "jira".into(),
            redirect_uri: "https://jira.example/cb".into(),
            code_challenge: None,
            nonce: None,
            scope: vec!["openid".into()],
            user: UserInfo {
                subject: "ann".into(),
                username: Some("ann".into()),
                email: None,
                display_name: None,
                groups: vec!["jira-users".into()],
            },
            auth_time_s: now / 1000,
            expires_at_ms: now + 60_000,
            retain_until_ms: now + 660_000,
        }
    }

    async fn sso_store() -> SsoStore {
        let store = Store::open_in_memory().await.unwrap();
        SsoStore::new(
            store,
            Keyring::new(SealKey::new([7; SECRET_KEY_LEN]), vec![]),
        )
    }

    #[tokio::test]
    async fn racing_redemptions_of_one_code_have_one_winner() {
        let s = sso_store().await;
        s.put_code("h", &code_grant(1_000)).await.unwrap();
        let tries = (0..16).map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.redeem_code("h").await.unwrap().unwrap() })
        });
        let mut first = 0;
        for t in tries {
            if !t.await.unwrap().already_used {
                first += 1;
            }
        }
        assert_eq!(first, 1);
        assert!(s.redeem_code("other").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn keys_are_sealed_tokens_revoked_by_code_and_state_taken_once() {
        let s = sso_store().await;
        assert!(s.load_keys().await.unwrap().is_none());
        let set = KeySet::generate(5).unwrap();
        s.save_keys(&set).await.unwrap();
        assert_eq!(
            s.load_keys().await.unwrap().unwrap().current.kid,
            set.current.kid
        );
        let wrong = SsoStore::new(
            s.store.clone(),
            Keyring::new(SealKey::new([8; SECRET_KEY_LEN]), vec![]),
        );
        assert!(wrong.load_keys().await.is_err());

        let g = AccessGrant {
            client_id: "jira".into(),
            code_hash: "c".into(),
            user: code_grant(0).user,
            scope: vec![],
            expires_at_ms: 100,
        };
        s.put_access_token("t", &g).await.unwrap();
        assert_eq!(s.access_token("t").await.unwrap(), Some(g));
        assert_eq!(s.revoke_code_tokens("c").await.unwrap(), 1);
        assert!(s.access_token("t").await.unwrap().is_none());

        let st = s.store();
        st.put_sso_pending("state-1", "entra", "{}", 50)
            .await
            .unwrap();
        st.put_sso_pending("state-2", "entra", "{}", 50)
            .await
            .unwrap();
        assert_eq!(st.count_sso_pending(10, 100).await.unwrap(), 2);
        assert_eq!(st.count_sso_pending(10, 1).await.unwrap(), 1, "bounded");
        assert_eq!(st.count_sso_pending(50, 100).await.unwrap(), 0, "expired");
        assert_eq!(
            st.take_sso_pending("state-1", 10).await.unwrap(),
            Some(("entra".into(), "{}".into()))
        );
        assert_eq!(st.take_sso_pending("state-1", 10).await.unwrap(), None);
        assert_eq!(
            st.take_sso_pending("state-2", 60).await.unwrap(),
            None,
            "expired"
        );
        s.put_code("old", &code_grant(0)).await.unwrap();
        let purged = st.purge_sso(10_000_000).await.unwrap();
        assert_eq!(purged.codes, 1);
    }
}
