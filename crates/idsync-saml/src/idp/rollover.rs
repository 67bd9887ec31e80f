//! The identity provider's signing keys over time. A service provider pins our certificate
//! (Atlassian's SSO app takes exactly one, typed in by its admin), so a new key cannot simply
//! start signing: it is generated and **published** in the metadata `overlap` before it signs,
//! signs from its activation, and the key it replaced stays published for `overlap` after.
//! Time is a parameter: the caller passes its clock's `now`.

use rand_core::{CryptoRng, RngCore};
use time::{Duration, OffsetDateTime};

use crate::error::SamlError;
use crate::keys::{Certificate, SigningKey};

/// How long a generated certificate is valid: longer than the longest rotation period plus
/// its overlaps, so a certificate never expires while it is published.
pub const CERTIFICATE_VALIDITY: Duration = Duration::days(5 * 365);

/// The longest rotation period [`KeyRollover::new`] accepts.
pub const MAX_ROTATION_PERIOD: Duration = Duration::days(3 * 365);

/// When the signing key rotates: a key signs for `period`; its successor is published
/// `overlap` before taking over, and it stays published `overlap` after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRollover {
    period: Duration,
    overlap: Duration,
}

impl KeyRollover {
    /// Refuses an overlap that is not positive or not shorter than half the period (the next
    /// key's publication and the replaced key's would run into each other), and a period
    /// beyond [`MAX_ROTATION_PERIOD`].
    pub fn new(period: Duration, overlap: Duration) -> Result<Self, SamlError> {
        if period > MAX_ROTATION_PERIOD {
            return Err(SamlError::Config(
                "the key rotation period must be at most 3 years".into(),
            ));
        }
        if overlap <= Duration::ZERO || overlap * 2 >= period {
            return Err(SamlError::Config(
                "the key overlap must be positive and shorter than half the rotation period".into(),
            ));
        }
        Ok(Self { period, overlap })
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn overlap(&self) -> Duration {
        self.overlap
    }
}

/// A generated key waiting to sign: published from now, signing from `signs_from`.
#[derive(Debug, Clone)]
pub struct NextKey {
    pub key: SigningKey,
    pub signs_from: OffsetDateTime,
}

/// A replaced key, published until `retired_at` + the overlap.
#[derive(Debug, Clone)]
pub struct RetiredKey {
    pub key: SigningKey,
    pub retired_at: OffsetDateTime,
}

/// The key that signs, since when, and the keys published beside it.
#[derive(Debug, Clone)]
pub struct IdpKeys {
    pub current: SigningKey,
    pub signs_since: OffsetDateTime,
    pub next: Option<NextKey>,
    pub previous: Option<RetiredKey>,
}

/// A key for `common_name`, its certificate valid from an hour before `now` (clock skew at
/// the service providers).
pub fn generate_key<R: RngCore + CryptoRng>(
    rng: &mut R,
    common_name: &str,
    now: OffsetDateTime,
) -> Result<SigningKey, SamlError> {
    SigningKey::generate(
        rng,
        common_name,
        now - Duration::hours(1),
        CERTIFICATE_VALIDITY,
    )
}

impl IdpKeys {
    /// A first key, signing from `now`.
    pub fn generate<R: RngCore + CryptoRng>(
        rng: &mut R,
        common_name: &str,
        now: OffsetDateTime,
    ) -> Result<Self, SamlError> {
        Ok(Self {
            current: generate_key(rng, common_name, now)?,
            signs_since: now,
            next: None,
            previous: None,
        })
    }

    /// Brings the keys to `now`: the next key takes over once its time has come (the current
    /// one is retired, still published); a retired key past its overlap is dropped; and a next
    /// key is generated `overlap` before the current one's period ends (or, when that moment
    /// was missed, to sign `overlap` from now, so it is always published a whole overlap
    /// before it signs). Returns whether anything changed (the caller stores the keys).
    pub fn maintain<R: RngCore + CryptoRng>(
        &mut self,
        now: OffsetDateTime,
        rollover: &KeyRollover,
        rng: &mut R,
        common_name: &str,
    ) -> Result<bool, SamlError> {
        let mut changed = false;
        if let Some(next) = self.next.take_if(|n| now >= n.signs_from) {
            let old = std::mem::replace(&mut self.current, next.key);
            self.previous = Some(RetiredKey {
                key: old,
                retired_at: now,
            });
            self.signs_since = now;
            changed = true;
        }
        if self
            .previous
            .take_if(|p| now >= p.retired_at + rollover.overlap)
            .is_some()
        {
            changed = true;
        }
        let due = self.signs_since + rollover.period;
        if self.next.is_none() && now >= due - rollover.overlap {
            self.next = Some(NextKey {
                key: generate_key(rng, common_name, now)?,
                signs_from: due.max(now + rollover.overlap),
            });
            changed = true;
        }
        Ok(changed)
    }

    /// The certificates published beside the signing one: the next key's, the replaced key's.
    pub fn also_published(&self) -> Vec<Certificate> {
        self.next
            .iter()
            .map(|n| n.key.certificate().clone())
            .chain(self.previous.iter().map(|p| p.key.certificate().clone()))
            .collect()
    }
}
