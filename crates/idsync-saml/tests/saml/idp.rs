//! The identity provider: metadata with the rotation's next certificate, an SP's AuthnRequest
//! checked (registered SP, registered ACS URL, fresh, signed when it must be), signed responses
//! read back by our own SP, the auto-POST form escaped.

use idsync_saml::{
    IdentityProvider, IdentityProviderConfig, IdpDescriptor, MemoryReplayCache, MemorySentRequests,
    ResponseCheck, SamlError, ServiceProvider, ServiceProviderConfig, SignatureRequirement,
};

use crate::support::{
    alice, idp_key, now, our_idp, our_key, registered_sp, rng, JIRA_ACS, JIRA_ENTITY,
    OUR_IDP_ENTITY, OUR_IDP_SSO,
};

/// A product's SP, from our crate, trusting our IdP through its metadata.
fn product(idp: &IdentityProvider, acs_url: &str, sign_requests: bool) -> ServiceProvider {
    ServiceProvider::new(
        ServiceProviderConfig {
            entity_id: JIRA_ENTITY.into(),
            acs_url: acs_url.into(),
            name_id_format: None,
            signing_key: sign_requests.then(idp_key),
            require: SignatureRequirement {
                response: true,
                assertion: true,
            },
            allow_unsolicited: true,
            clock_skew: time::Duration::seconds(60),
        },
        IdpDescriptor::from_metadata(&idp.metadata_xml()).unwrap(),
    )
    .unwrap()
}

fn query(url: &str) -> &str {
    url.split_once('?').unwrap().1
}

#[test]
fn metadata_publishes_both_bindings_and_the_next_certificate_during_a_rotation() {
    let mut config = our_idp(vec![]).config().clone();
    config.also_published = vec![idp_key().certificate().clone()];
    let idp = IdentityProvider::new(config).unwrap();
    let xml = idp.metadata_xml();
    assert!(
        xml.contains(
            "bindings:HTTP-Redirect\" Location=\"https://idsync.example.com/sso/idp/sso\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("bindings:HTTP-POST\" Location=\"https://idsync.example.com/sso/idp/sso\""),
        "{xml}"
    );
    let read = IdpDescriptor::from_metadata(&xml).unwrap();
    assert_eq!(read.entity_id, OUR_IDP_ENTITY);
    assert_eq!(
        read.signing_certificates,
        vec![
            our_key().certificate().clone(),
            idp_key().certificate().clone()
        ]
    );
}

#[test]
fn an_sp_initiated_login_is_answered_with_a_signed_response_and_assertion_at_the_registered_acs() {
    let idp = our_idp(vec![registered_sp(JIRA_ENTITY, JIRA_ACS)]);
    let jira = product(&idp, JIRA_ACS, false);
    let sent = jira
        .authn_request(now(), &mut rng(), Some("/browse/PROJ-1"))
        .unwrap();
    let request = idp.accept_redirect(query(&sent.url), now()).unwrap();
    assert_eq!(request.id, sent.id);
    assert_eq!(request.acs_url, JIRA_ACS);
    assert_eq!(request.relay_state.as_deref(), Some("/browse/PROJ-1"));
    let form = idp.respond(&request, &alice(), now(), &mut rng()).unwrap();
    assert_eq!(form.action, JIRA_ACS);

    let mut requests = MemorySentRequests::new(10);
    requests.insert(&sent.id, now() + time::Duration::minutes(5), now());
    let mut replay = MemoryReplayCache::new(10);
    let login = jira
        .validate_post(
            &form.value,
            ResponseCheck {
                now: now(),
                requests: &mut requests,
                replay: &mut replay,
            },
        )
        .unwrap();
    assert_eq!(login.name_id.value, "alice");
    assert_eq!(login.attributes["username"], vec!["alice"]);
    assert_eq!(login.attributes["email"], vec!["alice@corp.example"]);
    assert_eq!(
        login.attributes["displayName"],
        vec!["Alice <Example> & Co"]
    );
    assert_eq!(
        login.attributes["groups"],
        vec!["jira-software-users", "R&D \"core\""]
    );
    assert_eq!(login.in_response_to.as_deref(), Some(sent.id.as_str()));
}

#[test]
fn the_auto_post_form_escapes_every_value() {
    let idp = our_idp(vec![registered_sp(JIRA_ENTITY, JIRA_ACS)]);
    let form = idp
        .respond_unsolicited(
            JIRA_ENTITY,
            Some("\"><script>alert(1)</script>"),
            &alice(),
            now(),
            &mut rng(),
        )
        .unwrap();
    let html = form.html(Some("n0nce"));
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "{html}"
    );
    assert!(html.contains("action=\"https://jira.example.com/plugins/servlet/samlconsumer\""));
    assert!(html.contains("<script nonce=\"n0nce\">document.forms[0].submit();</script>"));
    assert!(form.xml().unwrap().starts_with("<samlp:Response"));
}

#[test]
fn requests_from_unregistered_sps_or_for_other_acs_urls_are_refused() {
    let idp = our_idp(vec![registered_sp(JIRA_ENTITY, JIRA_ACS)]);
    // The request asks for another ACS URL: no response goes anywhere but the registered one.
    let evil = product(&idp, "https://evil.example.com/acs", false);
    let sent = evil.authn_request(now(), &mut rng(), None).unwrap();
    assert_eq!(
        idp.accept_redirect(query(&sent.url), now()),
        Err(SamlError::AcsUrl {
            registered: JIRA_ACS.into(),
            found: "https://evil.example.com/acs".into()
        })
    );
    let stranger = our_idp(vec![registered_sp(
        "https://confluence.example.com",
        JIRA_ACS,
    )]);
    assert_eq!(
        stranger.accept_redirect(query(&sent.url), now()),
        Err(SamlError::UnknownServiceProvider(JIRA_ENTITY.into()))
    );
    assert_eq!(
        idp.respond_unsolicited(
            "https://stranger.example.com",
            None,
            &alice(),
            now(),
            &mut rng()
        ),
        Err(SamlError::UnknownServiceProvider(
            "https://stranger.example.com".into()
        ))
    );
}

#[test]
fn stale_requests_and_requests_for_another_idp_are_refused() {
    let idp = our_idp(vec![registered_sp(JIRA_ENTITY, JIRA_ACS)]);
    let jira = product(&idp, JIRA_ACS, false);
    let sent = jira.authn_request(now(), &mut rng(), None).unwrap();
    let late = now() + time::Duration::minutes(12);
    assert!(matches!(
        idp.accept_redirect(query(&sent.url), late),
        Err(SamlError::Expired { .. })
    ));
    let mut other = our_idp(vec![registered_sp(JIRA_ENTITY, JIRA_ACS)])
        .config()
        .clone();
    other.sso_url = "https://other.example.com/sso".into();
    let other = IdentityProvider::new(other).unwrap();
    assert!(matches!(
        other.accept_redirect(query(&sent.url), now()),
        Err(SamlError::Destination { .. })
    ));
}

#[test]
fn an_sp_that_must_sign_its_requests_is_held_to_it() {
    let mut sp = registered_sp(JIRA_ENTITY, JIRA_ACS);
    sp.request_certificates = vec![idp_key().certificate().clone()];
    sp.require_signed_requests = true;
    let idp = our_idp(vec![sp]);
    let unsigned = product(&idp, JIRA_ACS, false)
        .authn_request(now(), &mut rng(), None)
        .unwrap();
    assert_eq!(
        idp.accept_redirect(query(&unsigned.url), now()),
        Err(SamlError::Unsigned("AuthnRequest"))
    );
    let signed = product(&idp, JIRA_ACS, true)
        .authn_request(now(), &mut rng(), Some("r"))
        .unwrap();
    assert!(
        idp.accept_redirect(query(&signed.url), now())
            .unwrap()
            .signed
    );
    let forged = query(&signed.url).replace("RelayState=r", "RelayState=x");
    assert!(matches!(
        idp.accept_redirect(&forged, now()),
        Err(SamlError::BadSignature { .. })
    ));
}

#[test]
fn the_configuration_is_checked() {
    let base = our_idp(vec![]).config().clone();
    let twice = IdentityProviderConfig {
        service_providers: vec![
            registered_sp(JIRA_ENTITY, JIRA_ACS),
            registered_sp(JIRA_ENTITY, "https://x/acs"),
        ],
        ..base.clone()
    };
    assert!(matches!(
        IdentityProvider::new(twice),
        Err(SamlError::Config(_))
    ));
    let mut no_cert = registered_sp(JIRA_ENTITY, JIRA_ACS);
    no_cert.require_signed_requests = true;
    assert!(matches!(
        IdentityProvider::new(IdentityProviderConfig {
            service_providers: vec![no_cert],
            ..base.clone()
        }),
        Err(SamlError::Config(_))
    ));
    assert!(matches!(
        IdentityProvider::new(IdentityProviderConfig {
            assertion_lifetime: time::Duration::days(1),
            ..base
        }),
        Err(SamlError::Config(_))
    ));
    let _ = OUR_IDP_SSO;
}

#[test]
fn generated_keys_round_trip_through_pem() {
    let key = our_key();
    let (private, cert) = crate::support::pem(&key);
    let again = idsync_saml::SigningKey::from_pem(&private, &cert).unwrap();
    assert_eq!(again.certificate(), key.certificate());
    assert!(matches!(
        idsync_saml::SigningKey::from_pem(&private, &idp_key().certificate().to_pem().unwrap()),
        Err(SamlError::Key(_))
    ));
}

#[test]
fn an_accepted_request_survives_the_store_as_json_until_the_user_signed_in() {
    let idp = our_idp(vec![registered_sp(JIRA_ENTITY, JIRA_ACS)]);
    let sent = product(&idp, JIRA_ACS, false)
        .authn_request(now(), &mut rng(), Some("/r"))
        .unwrap();
    let request = idp.accept_redirect(query(&sent.url), now()).unwrap();
    let stored = serde_json::to_string(&request).unwrap();
    let back: idsync_saml::SpRequest = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, request);
    idp.respond(&back, &alice(), now(), &mut rng()).unwrap();
}
