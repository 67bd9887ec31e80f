//! Secrets at rest: values idsync must keep that are secret are sealed with XChaCha20-Poly1305
//! under a key the operator gives (`[store] secret_key`), never stored in clear.
//!
//! Each sealed value keeps the id of the key that sealed it (derived from the key itself, so
//! nobody names keys). Old keys stay in the [`Keyring`] for opening only; [`Store::rotate_secrets`]
//! seals everything again under the current key, after which the old keys can go. The nonce is
//! random (24 bytes: no risk of reuse), and the associated data binds each ciphertext to its
//! name and key id, so a value copied under another name, or a key id changed by hand, is
//! refused like any other tampering. See `docs/decisions/0023-secrets-at-rest.md`.

use crate::{Store, StoreError};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use zeroize::Zeroizing;

/// Length of a sealing key in bytes.
pub const SECRET_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Errors of sealed secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name:?} is sealed under key {key_id}, which is not configured (give it in [store] previous_secret_keys to open it, or run `idsync secrets rotate` with it)")]
    UnknownKey { name: String, key_id: String },
    #[error("secret {name:?} cannot be opened under key {key_id}: its ciphertext, nonce, name or key id was changed (authentication failed)")]
    Tampered { name: String, key_id: String },
    #[error("secret {name:?} is stored in a form that cannot be read: {message}")]
    Malformed { name: String, message: String },
    #[error("cannot make a nonce: the operating system's random source failed: {0}")]
    Random(String),
    #[error("cannot seal secret {name:?}")]
    Seal { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SecretError {
    fn from(e: sqlx::Error) -> Self {
        SecretError::Store(StoreError::Database(e))
    }
}

/// One sealing key: 32 bytes and the id derived from them. Never prints its bytes.
#[derive(Clone)]
pub struct SealKey {
    id: String,
    key: Zeroizing<[u8; SECRET_KEY_LEN]>,
}

impl SealKey {
    pub fn new(bytes: [u8; SECRET_KEY_LEN]) -> Self {
        let mut h = Sha256::new();
        h.update(b"idsync sealing key id\0");
        h.update(bytes);
        let id: String = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        SealKey {
            id,
            key: Zeroizing::new(bytes),
        }
    }

    /// The key's id: 12 hex digits of a hash of the key, stored with each value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.key))
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({}, ***)", self.id)
    }
}

/// The current key, which seals, and earlier keys, which only open.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: SealKey,
    previous: Vec<SealKey>,
}

impl Keyring {
    pub fn new(current: SealKey, previous: Vec<SealKey>) -> Self {
        Keyring { current, previous }
    }

    pub fn current(&self) -> &SealKey {
        &self.current
    }

    fn find(&self, id: &str) -> Option<&SealKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

/// A sealed secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretInfo {
    pub name: String,
    pub key_id: String,
    pub created_ms: i64,
    pub sealed_ms: i64,
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RotateSummary {
    /// Sealed again under the current key.
    pub resealed: u64,
    /// Already under the current key.
    pub current: u64,
}

/// The associated data of a sealed value: its name and key id.
fn aad(name: &str, key_id: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + key_id.len() + 16);
    a.extend_from_slice(b"idsync secret\0");
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(key_id.as_bytes());
    a
}

/// Seal `value` under `key`: (nonce, ciphertext with its tag), both base64.
fn seal(key: &SealKey, name: &str, value: &[u8]) -> Result<(String, String), SecretError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| SecretError::Random(e.to_string()))?;
    let aad = aad(name, &key.id);
    let sealed = key
        .cipher()
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: value,
                aad: &aad,
            },
        )
        .map_err(|_| SecretError::Seal {
            name: name.to_string(),
        })?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok((b64.encode(nonce), b64.encode(sealed)))
}

/// Open what [`seal`] made, with the key its row names.
fn open(
    keys: &Keyring,
    name: &str,
    key_id: &str,
    nonce: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let key = keys.find(key_id).ok_or_else(|| SecretError::UnknownKey {
        name: name.to_string(),
        key_id: key_id.to_string(),
    })?;
    let malformed = |message: String| SecretError::Malformed {
        name: name.to_string(),
        message,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonce: [u8; NONCE_LEN] = b64
        .decode(nonce)
        .map_err(|e| malformed(format!("nonce: {e}")))?
        .try_into()
        .map_err(|v: Vec<u8>| malformed(format!("nonce of {} bytes, not {NONCE_LEN}", v.len())))?;
    let sealed = b64
        .decode(sealed)
        .map_err(|e| malformed(format!("ciphertext: {e}")))?;
    let aad = aad(name, key_id);
    key.cipher()
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &sealed,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SecretError::Tampered {
            name: name.to_string(),
            key_id: key_id.to_string(),
        })
}

impl Store {
    /// Seal `value` under the keyring's current key and keep it as `name` (replacing what
    /// `name` held).
    pub async fn put_secret(
        &self,
        keys: &Keyring,
        name: &str,
        value: &[u8],
        now_ms: i64,
    ) -> Result<(), SecretError> {
        let (nonce, sealed) = seal(keys.current(), name, value)?;
        sqlx::query(
            "INSERT INTO secrets (name, key_id, nonce, sealed, created_ms, sealed_ms) VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, sealed = excluded.sealed, sealed_ms = excluded.sealed_ms",
        )
        .bind(name)
        .bind(keys.current().id())
        .bind(nonce)
        .bind(sealed)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The value kept as `name`, opened; `None` when there is none. A value sealed under a key
    /// the keyring does not hold, or changed in the store, is an error that says which.
    pub async fn get_secret(
        &self,
        keys: &Keyring,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, SecretError> {
        let row = sqlx::query("SELECT key_id, nonce, sealed FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.writer)
            .await?;
        row.map(|r| open(keys, name, r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    /// Forget the value kept as `name`; whether there was one.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, SecretError> {
        Ok(sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await?
            .rows_affected()
            > 0)
    }

    /// The sealed secrets by name, with the key each is sealed under (no values).
    pub async fn list_secrets(&self) -> Result<Vec<SecretInfo>, SecretError> {
        Ok(
            sqlx::query("SELECT name, key_id, created_ms, sealed_ms FROM secrets ORDER BY name")
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| SecretInfo {
                    name: r.get(0),
                    key_id: r.get(1),
                    created_ms: r.get(2),
                    sealed_ms: r.get(3),
                })
                .collect(),
        )
    }

    /// Seal every secret not under the current key again under it, in one transaction: when
    /// any of them cannot be opened (its key is not in the keyring, or it was changed),
    /// nothing is changed and the error names it.
    pub async fn rotate_secrets(
        &self,
        keys: &Keyring,
        now_ms: i64,
    ) -> Result<RotateSummary, SecretError> {
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query("SELECT name, key_id, nonce, sealed FROM secrets ORDER BY name")
            .fetch_all(&mut *tx)
            .await?;
        let mut summary = RotateSummary::default();
        for r in &rows {
            let (name, key_id): (&str, &str) = (r.get(0), r.get(1));
            // Opened even when already current: a rotation also proves every value opens.
            let value = open(keys, name, key_id, r.get(2), r.get(3))?;
            if key_id == keys.current().id() {
                summary.current += 1;
                continue;
            }
            let (nonce, sealed) = seal(keys.current(), name, &value)?;
            sqlx::query(
                "UPDATE secrets SET key_id = $2, nonce = $3, sealed = $4, sealed_ms = $5 WHERE name = $1",
            )
            .bind(name)
            .bind(keys.current().id())
            .bind(nonce)
            .bind(sealed)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            summary.resealed += 1;
        }
        tx.commit().await?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn key(b: u8) -> SealKey {
        SealKey::new([b; SECRET_KEY_LEN])
    }

    #[tokio::test]
    async fn sealed_values_open_with_their_key_only_and_never_sit_in_clear() {
        let store = Store::open_in_memory().await.unwrap();
        let keys = Keyring::new(key(1), vec![]);
        store
            .put_secret(&keys, "app-password", b"hunter2-distinctive", 10)
            .await
            .unwrap();
        let got = store.get_secret(&keys, "app-password").await.unwrap();
        assert_eq!(
            got.as_deref().map(Vec::as_slice),
            Some(&b"hunter2-distinctive"[..])
        );
        assert!(store.get_secret(&keys, "nothing").await.unwrap().is_none());
        let raw: String = sqlx::query_scalar("SELECT nonce || sealed || key_id FROM secrets")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert!(!raw.contains("hunter2"), "{raw}");
        assert_eq!(
            store.list_secrets().await.unwrap(),
            vec![SecretInfo {
                name: "app-password".into(),
                key_id: key(1).id().to_string(),
                created_ms: 10,
                sealed_ms: 10
            }]
        );
        // Sealing twice gives another nonce and ciphertext.
        store
            .put_secret(&keys, "other", b"hunter2-distinctive", 11)
            .await
            .unwrap();
        let sealed: Vec<String> = sqlx::query_scalar("SELECT sealed FROM secrets")
            .fetch_all(&store.writer)
            .await
            .unwrap();
        assert_ne!(sealed[0], sealed[1]);

        // Another key does not open it, and the error says which key it needs.
        let wrong = Keyring::new(key(2), vec![]);
        match store.get_secret(&wrong, "app-password").await {
            Err(SecretError::UnknownKey { key_id, .. }) => assert_eq!(key_id, key(1).id()),
            other => panic!("{other:?}"),
        }
        assert!(store.delete_secret("other").await.unwrap());
        assert!(!store.delete_secret("other").await.unwrap());
    }

    #[tokio::test]
    async fn tampered_ciphertext_name_or_key_id_is_refused() {
        let store = Store::open_in_memory().await.unwrap();
        let keys = Keyring::new(key(1), vec![key(2)]);
        store.put_secret(&keys, "a", b"value-a", 1).await.unwrap();
        store.put_secret(&keys, "b", b"value-b", 1).await.unwrap();
        let sealed: String = sqlx::query_scalar("SELECT sealed FROM secrets WHERE name = 'a'")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut bytes = b64.decode(&sealed).unwrap();
        bytes[0] ^= 1;
        sqlx::query("UPDATE secrets SET sealed = $1 WHERE name = 'a'")
            .bind(b64.encode(&bytes))
            .execute(&store.writer)
            .await
            .unwrap();
        let err = store.get_secret(&keys, "a").await.unwrap_err();
        assert!(matches!(err, SecretError::Tampered { .. }), "{err:?}");
        assert!(err.to_string().contains("authentication failed"), "{err}");

        // b's value copied under c's name does not open as c.
        sqlx::query("INSERT INTO secrets (name, key_id, nonce, sealed, created_ms, sealed_ms) SELECT 'c', key_id, nonce, sealed, 1, 1 FROM secrets WHERE name = 'b'")
            .execute(&store.writer)
            .await
            .unwrap();
        let err = store.get_secret(&keys, "c").await.unwrap_err();
        assert!(matches!(err, SecretError::Tampered { .. }), "{err:?}");
        // Nor does b under another configured key's id.
        sqlx::query("UPDATE secrets SET key_id = $1 WHERE name = 'b'")
            .bind(key(2).id())
            .execute(&store.writer)
            .await
            .unwrap();
        let err = store.get_secret(&keys, "b").await.unwrap_err();
        assert!(matches!(err, SecretError::Tampered { .. }), "{err:?}");
        sqlx::query("UPDATE secrets SET nonce = 'not base64!' WHERE name = 'b'")
            .execute(&store.writer)
            .await
            .unwrap();
        let err = store.get_secret(&keys, "b").await.unwrap_err();
        assert!(matches!(err, SecretError::Malformed { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn rotation_reseals_under_the_current_key_and_keeps_old_keys_for_opening() {
        let store = Store::open_in_memory().await.unwrap();
        let old = Keyring::new(key(1), vec![]);
        store.put_secret(&old, "a", b"value-a", 1).await.unwrap();
        store.put_secret(&old, "b", b"value-b", 1).await.unwrap();
        // The new key is current; the old one still opens what it sealed.
        let both = Keyring::new(key(2), vec![key(1)]);
        assert_eq!(
            &store.get_secret(&both, "a").await.unwrap().unwrap()[..],
            b"value-a"
        );
        store.put_secret(&both, "c", b"value-c", 2).await.unwrap();
        let summary = store.rotate_secrets(&both, 3).await.unwrap();
        assert_eq!(
            summary,
            RotateSummary {
                resealed: 2,
                current: 1
            }
        );
        // Without the old key, everything opens.
        let new = Keyring::new(key(2), vec![]);
        for (name, value) in [("a", "value-a"), ("b", "value-b"), ("c", "value-c")] {
            assert_eq!(
                &store.get_secret(&new, name).await.unwrap().unwrap()[..],
                value.as_bytes()
            );
        }
        assert!(store
            .list_secrets()
            .await
            .unwrap()
            .iter()
            .all(|s| s.key_id == key(2).id()));

        // A rotation that meets a value it cannot open changes nothing.
        store.put_secret(&old, "d", b"value-d", 4).await.unwrap();
        let third = Keyring::new(key(3), vec![key(2)]);
        let err = store.rotate_secrets(&third, 5).await.unwrap_err();
        assert!(
            matches!(&err, SecretError::UnknownKey { name, .. } if name == "d"),
            "{err:?}"
        );
        assert!(store
            .list_secrets()
            .await
            .unwrap()
            .iter()
            .all(|s| s.key_id != key(3).id()));
    }

    #[test]
    fn key_ids_differ_per_key_and_keys_never_print() {
        assert_ne!(key(1).id(), key(2).id());
        assert_eq!(key(1).id().len(), 12);
        let shown = format!("{:?}", Keyring::new(key(7), vec![key(8)]));
        assert!(!shown.contains("7, 7"), "{shown}");
    }
}
