//! The SAML identity provider's signing keys in the store: sealed with the store's key in
//! `secrets` (one secret: the signing key, since when it signs, the next key with its
//! activation, the replaced key with its retirement), rotated by `idsync-saml`'s
//! [`IdpKeys::maintain`] at start-up and at every maintenance (hourly) with the server's clock.
//! Every process of one store reads the keys from the store before maintaining them, so they
//! sign with the same key.

use idsync_saml::{IdpKeys, KeyRollover, NextKey, RetiredKey, SigningKey};
use idsync_store::{Keyring, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The sealed secret holding the keys.
const KEY_SECRET: &str = "sso.saml-idp.signing-key";

#[derive(Serialize, Deserialize)]
struct StoredKey {
    key_pem: String,
    certificate_pem: String,
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    current: StoredKey,
    signs_since_ms: i64,
    next: Option<(StoredKey, i64)>,
    previous: Option<(StoredKey, i64)>,
}

/// What the secret holds: the keys, or (stores from before rotation) the one key.
#[derive(Deserialize)]
#[serde(untagged)]
enum Sealed {
    Keys(StoredKeys),
    Single(StoredKey),
}

pub(crate) fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn to_stored(key: &SigningKey) -> Result<StoredKey, String> {
    Ok(StoredKey {
        key_pem: key
            .private_key_pem()
            .map_err(|e| e.to_string())?
            .to_string(),
        certificate_pem: key.certificate().to_pem().map_err(|e| e.to_string())?,
    })
}

fn from_stored(key: &StoredKey) -> Result<SigningKey, String> {
    SigningKey::from_pem(&key.key_pem, &key.certificate_pem)
        .map_err(|e| format!("the sealed SAML signing key is unusable: {e}"))
}

/// The keys in the store, if any, and whether they must be stored again. A store from before
/// rotation holds one key: it signs from `now_ms`, so its first rotation comes a period after
/// the upgrade (stored in the new form, so that moment is kept).
pub(crate) async fn load(
    store: &Store,
    keyring: &Keyring,
    now_ms: i64,
) -> Result<Option<(IdpKeys, bool)>, String> {
    let Some(bytes) = store
        .get_secret(keyring, KEY_SECRET)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let sealed: Sealed = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the sealed SAML signing keys are unreadable: {e}"))?;
    let keys = match sealed {
        Sealed::Single(key) => (
            IdpKeys {
                current: from_stored(&key)?,
                signs_since: instant(now_ms),
                next: None,
                previous: None,
            },
            true,
        ),
        Sealed::Keys(k) => (
            IdpKeys {
                current: from_stored(&k.current)?,
                signs_since: instant(k.signs_since_ms),
                next: match &k.next {
                    Some((key, at)) => Some(NextKey {
                        key: from_stored(key)?,
                        signs_from: instant(*at),
                    }),
                    None => None,
                },
                previous: match &k.previous {
                    Some((key, at)) => Some(RetiredKey {
                        key: from_stored(key)?,
                        retired_at: instant(*at),
                    }),
                    None => None,
                },
            },
            false,
        ),
    };
    Ok(Some(keys))
}

/// Seals `keys` in the store.
pub(crate) async fn save(
    store: &Store,
    keyring: &Keyring,
    keys: &IdpKeys,
    now_ms: i64,
) -> Result<(), String> {
    let stored = StoredKeys {
        current: to_stored(&keys.current)?,
        signs_since_ms: millis(keys.signs_since),
        next: match &keys.next {
            Some(n) => Some((to_stored(&n.key)?, millis(n.signs_from))),
            None => None,
        },
        previous: match &keys.previous {
            Some(p) => Some((to_stored(&p.key)?, millis(p.retired_at))),
            None => None,
        },
    };
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| e.to_string())?);
    store
        .put_secret(keyring, KEY_SECRET, &bytes, now_ms)
        .await
        .map_err(|e| e.to_string())
}

/// The keys of the store brought to `now_ms` (made the first time), and whether they changed;
/// changed keys are stored. Key generation runs on a blocking thread.
pub(crate) async fn maintain(
    store: &Store,
    keyring: &Keyring,
    rollover: KeyRollover,
    common_name: &str,
    now_ms: i64,
) -> Result<(IdpKeys, bool), String> {
    let loaded = load(store, keyring, now_ms).await?;
    let cn = common_name.to_string();
    let (keys, changed) = tokio::task::spawn_blocking(move || {
        let now = instant(now_ms);
        let mut rng = rand::rngs::OsRng;
        match loaded {
            Some((mut keys, upgraded)) => {
                let changed = keys.maintain(now, &rollover, &mut rng, &cn)?;
                Ok::<_, idsync_saml::SamlError>((keys, changed || upgraded))
            }
            None => Ok((IdpKeys::generate(&mut rng, &cn, now)?, true)),
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if changed {
        save(store, keyring, &keys, now_ms).await?;
    }
    Ok((keys, changed))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::saml_idp::SamlIdp;
    use super::*;
    use idsync_config::{SsoConfig, SsoSamlClientConfig};
    use idsync_saml::{Certificate, IdpDescriptor, SamlUser};
    use idsync_store::SealKey;
    use std::time::Duration;

    const DAY_MS: i64 = 86_400_000;
    const T0: i64 = 1_800_000_000_000;
    const SP: &str = "https://confluence.example.com/plugins/servlet/samlsso";

    pub(crate) fn config() -> SsoConfig {
        let day = Duration::from_secs(86_400);
        SsoConfig {
            issuer: "https://idsync.example.com".into(),
            key_rotation: SsoConfig::DEFAULT_KEY_ROTATION,
            key_overlap: SsoConfig::DEFAULT_KEY_OVERLAP,
            saml_key_rotation: day * 10,
            saml_key_overlap: day * 2,
            code_ttl: SsoConfig::DEFAULT_CODE_TTL,
            token_ttl: SsoConfig::DEFAULT_TOKEN_TTL,
            login_timeout: SsoConfig::DEFAULT_LOGIN_TIMEOUT,
            sign_in_rate: SsoConfig::DEFAULT_SIGN_IN_RATE,
            sign_in_burst: SsoConfig::DEFAULT_SIGN_IN_BURST,
            max_pending_sign_ins: SsoConfig::DEFAULT_MAX_PENDING_SIGN_INS,
            upstreams: Default::default(),
            saml_upstreams: Default::default(),
            clients: Default::default(),
            saml_clients: [(
                "confluence".to_string(),
                SsoSamlClientConfig {
                    name: "confluence".into(),
                    entity_id: SP.into(),
                    acs_url: "https://confluence.example.com/acs".into(),
                    upstream: "idp".into(),
                    flow: "to-crowd".into(),
                },
            )]
            .into(),
        }
    }

    async fn setup() -> (Store, Keyring) {
        let store = Store::open_in_memory().await.unwrap();
        (store, Keyring::new(SealKey::new([7; 32]), vec![]))
    }

    async fn idp(store: &Store, keyring: &Keyring, now_ms: i64) -> SamlIdp {
        SamlIdp::start(
            &config(),
            "https://idsync.example.com",
            store,
            keyring,
            now_ms,
        )
        .await
        .unwrap()
        .unwrap()
    }

    /// The certificates the served metadata publishes, in order.
    fn published(idp: &SamlIdp) -> Vec<Certificate> {
        IdpDescriptor::from_metadata(&idp.idp().metadata_xml())
            .unwrap()
            .signing_certificates
    }

    fn signing(idp: &SamlIdp) -> Certificate {
        idp.idp().config().signing_key.certificate().clone()
    }

    /// The certificate in the KeyInfo of a response signed now.
    fn signs_response_with(idp: &SamlIdp, cert: &Certificate, now_ms: i64) -> bool {
        let user = SamlUser {
            name_id: "alice".into(),
            username: "alice".into(),
            email: None,
            display_name: None,
            groups: vec![],
            session_index: "_s".into(),
            authn_instant: instant(now_ms),
        };
        let form = idp
            .idp()
            .respond_unsolicited(SP, None, &user, instant(now_ms), &mut rand::rngs::OsRng)
            .unwrap();
        form.xml().unwrap().contains(&cert.to_base64())
    }

    #[tokio::test]
    async fn the_saml_key_rotates_with_overlap_by_the_servers_clock_and_survives_restarts() {
        let (store, keyring) = setup().await;
        let a = idp(&store, &keyring, T0).await;
        let old = signing(&a);
        assert_eq!(published(&a), vec![old.clone()]);
        // A restart, or another process of the same store: the same key.
        assert_eq!(
            published(&idp(&store, &keyring, T0 + DAY_MS).await),
            vec![old.clone()]
        );
        assert!(!a.maintain_keys(T0 + 7 * DAY_MS).await.unwrap());

        // The overlap before the switch: the next key is published, the old one signs.
        assert!(a.maintain_keys(T0 + 8 * DAY_MS).await.unwrap());
        let both = published(&a);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], old);
        let new = both[1].clone();
        assert_eq!(signing(&a), old);
        assert!(signs_response_with(&a, &old, T0 + 8 * DAY_MS));
        // Another process reads the same next key from the store.
        let b = idp(&store, &keyring, T0 + 9 * DAY_MS).await;
        assert_eq!(published(&b), vec![old.clone(), new.clone()]);

        // From its activation the new key signs; the old one stays published.
        assert!(a.maintain_keys(T0 + 10 * DAY_MS).await.unwrap());
        assert_eq!(signing(&a), new);
        assert!(signs_response_with(&a, &new, T0 + 10 * DAY_MS));
        assert_eq!(published(&a), vec![new.clone(), old.clone()]);
        // The other process follows at its own maintenance.
        assert!(b.maintain_keys(T0 + 10 * DAY_MS + 1).await.unwrap());
        assert_eq!(published(&b), vec![new.clone(), old.clone()]);

        // After the overlap, only the new key.
        assert!(!a.maintain_keys(T0 + 11 * DAY_MS).await.unwrap());
        assert!(a.maintain_keys(T0 + 12 * DAY_MS).await.unwrap());
        assert_eq!(published(&a), vec![new.clone()]);
        assert_eq!(
            published(&idp(&store, &keyring, T0 + 12 * DAY_MS).await),
            vec![new]
        );
    }

    #[tokio::test]
    async fn a_key_sealed_before_rotation_keeps_signing_and_rotates_a_period_after_the_upgrade() {
        let (store, keyring) = setup().await;
        let key = idsync_saml::generate_key(&mut rand::rngs::OsRng, "idsync", instant(T0)).unwrap();
        let single = serde_json::to_vec(&to_stored(&key).unwrap()).unwrap();
        store
            .put_secret(&keyring, KEY_SECRET, &single, T0)
            .await
            .unwrap();
        let a = idp(&store, &keyring, T0).await;
        assert_eq!(published(&a), vec![key.certificate().clone()]);
        // The upgrade's moment was stored: nine days later the next key is published (a
        // restart must not restart the period).
        let later = idp(&store, &keyring, T0 + 9 * DAY_MS).await;
        assert_eq!(published(&later).len(), 2);
        assert_eq!(signing(&later), key.certificate().clone());
    }
}
