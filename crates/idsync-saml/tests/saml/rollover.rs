//! The IdP's signing key rotated with overlap: the next key is published before it signs, the
//! replaced one after; pysaml2's service provider, given the metadata, accepts what the new key
//! signed (and, given the old metadata alone, refuses it: the new key signs indeed).

use idsync_saml::{IdentityProvider, IdpDescriptor, IdpKeys, KeyRollover};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::support::{alice, idp_key, our_idp, pem, registered_sp, rng, try_peer, OUR_IDP_ENTITY};

const SP_ENTITY: &str = "https://confluence.example.com/plugins/servlet/samlsso";
const SP_ACS: &str = "https://confluence.example.com/plugins/servlet/samlconsumer";
const CN: &str = "https://idsync.example.com/sso/saml-idp";

fn rollover() -> KeyRollover {
    KeyRollover::new(Duration::days(10), Duration::days(2)).unwrap()
}

/// Our IdP signing with `keys` as they are.
fn idp(keys: &IdpKeys) -> IdentityProvider {
    let mut config = our_idp(vec![registered_sp(SP_ENTITY, SP_ACS)])
        .config()
        .clone();
    config.signing_key = keys.current.clone();
    config.also_published = keys.also_published();
    IdentityProvider::new(config).unwrap()
}

/// The certificates the metadata publishes, in order.
fn published(idp: &IdentityProvider) -> Vec<idsync_saml::Certificate> {
    IdpDescriptor::from_metadata(&idp.metadata_xml())
        .unwrap()
        .signing_certificates
}

/// pysaml2's service provider, trusting `metadata`, given an unsolicited response.
fn pysaml2_accepts(metadata: &str, response: &str) -> Result<serde_json::Value, String> {
    let (key_pem, cert_pem) = pem(&idp_key());
    try_peer(
        "sp-accept",
        &json!({
            "sp_entity": SP_ENTITY, "acs": SP_ACS,
            "key_pem": key_pem, "cert_pem": cert_pem,
            "idp_entity": OUR_IDP_ENTITY, "idp_metadata": metadata,
            "response": response, "allow_unsolicited": true,
        }),
    )
}

#[test]
fn the_next_key_is_published_ahead_signs_from_its_activation_and_the_old_one_leaves_after_the_overlap(
) {
    let r = rollover();
    let mut rng = rng();
    // pysaml2 checks times against the real clock: the new key takes over an hour ago.
    let now = OffsetDateTime::now_utc();
    let t0 = now - Duration::days(10) - Duration::hours(1);
    let mut keys = IdpKeys::generate(&mut rng, CN, t0).unwrap();
    let old = keys.current.certificate().clone();
    let old_metadata = idp(&keys).metadata_xml();
    assert_eq!(published(&idp(&keys)), vec![old.clone()]);

    // Before the overlap: nothing to do.
    assert!(!keys
        .maintain(t0 + Duration::days(7), &r, &mut rng, CN)
        .unwrap());
    assert_eq!(published(&idp(&keys)), vec![old.clone()]);

    // The overlap before the switch: the next key is published, the old one still signs.
    assert!(keys
        .maintain(t0 + Duration::days(8), &r, &mut rng, CN)
        .unwrap());
    let new = keys.next.as_ref().unwrap().key.certificate().clone();
    assert_ne!(new, old);
    assert_eq!(
        keys.next.as_ref().unwrap().signs_from,
        t0 + Duration::days(10)
    );
    assert_eq!(published(&idp(&keys)), vec![old.clone(), new.clone()]);
    assert_eq!(idp(&keys).config().signing_key.certificate(), &old);
    assert!(!keys
        .maintain(t0 + Duration::days(9), &r, &mut rng, CN)
        .unwrap());

    // The switch: the new key signs, the old one stays published.
    assert!(keys
        .maintain(t0 + Duration::days(10), &r, &mut rng, CN)
        .unwrap());
    let during = idp(&keys);
    assert_eq!(during.config().signing_key.certificate(), &new);
    assert_eq!(published(&during), vec![new.clone(), old.clone()]);
    let form = during
        .respond_unsolicited(SP_ENTITY, None, &alice(), now, &mut rng)
        .unwrap();
    let accepted = pysaml2_accepts(&during.metadata_xml(), &form.value)
        .expect("pysaml2, given the metadata, accepts the new key's response");
    assert_eq!(accepted["name_id"], "alice");
    let refused = pysaml2_accepts(&old_metadata, &form.value);
    assert!(
        refused.is_err(),
        "a service provider that knows the old certificate only accepted: {refused:?}"
    );

    // After the overlap: only the new key.
    assert!(!keys
        .maintain(t0 + Duration::days(11), &r, &mut rng, CN)
        .unwrap());
    assert_eq!(published(&idp(&keys)).len(), 2);
    assert!(keys
        .maintain(t0 + Duration::days(12), &r, &mut rng, CN)
        .unwrap());
    assert_eq!(published(&idp(&keys)), vec![new.clone()]);
    let after = idp(&keys);
    let form = after
        .respond_unsolicited(SP_ENTITY, None, &alice(), now, &mut rng)
        .unwrap();
    pysaml2_accepts(&after.metadata_xml(), &form.value).expect("still accepted");
}

#[test]
fn a_missed_rotation_still_publishes_the_next_key_a_whole_overlap_before_it_signs() {
    let r = rollover();
    let mut rng = rng();
    let t0 = OffsetDateTime::now_utc();
    let mut keys = IdpKeys::generate(&mut rng, CN, t0).unwrap();
    let old = keys.current.certificate().clone();
    // The server was down through the whole window: the key is made late, to sign later.
    let late = t0 + Duration::days(30);
    assert!(keys.maintain(late, &r, &mut rng, CN).unwrap());
    assert_eq!(keys.current.certificate(), &old);
    assert_eq!(
        keys.next.as_ref().unwrap().signs_from,
        late + Duration::days(2)
    );
    assert!(!keys
        .maintain(late + Duration::days(1), &r, &mut rng, CN)
        .unwrap());
    assert_eq!(keys.current.certificate(), &old);
    assert!(keys
        .maintain(late + Duration::days(2), &r, &mut rng, CN)
        .unwrap());
    assert_ne!(keys.current.certificate(), &old);
}

#[test]
fn an_overlap_of_half_the_period_or_more_is_refused() {
    assert!(KeyRollover::new(Duration::days(10), Duration::days(5)).is_err());
    assert!(KeyRollover::new(Duration::days(10), Duration::ZERO).is_err());
    assert!(KeyRollover::new(Duration::days(4 * 365), Duration::days(5)).is_err());
    assert!(KeyRollover::new(Duration::days(10), Duration::days(4)).is_ok());
}
