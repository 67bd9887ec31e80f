//! The service provider: Entra's federation metadata, our metadata and AuthnRequests, the typed
//! claims, the configuration's bounds.

use idsync_saml::{
    IdpDescriptor, NameIdFormat, RedirectMessage, SamlError, ServiceProvider, SignatureRequirement,
};
use serde_json::json;

use crate::support::{
    descriptor, forge, idp_key, now, our_key, rng, sp, sp_config, Session, ASSERTION_SIGNED,
    IDP_ENTITY, IDP_SSO, SP_ACS, SP_ENTITY,
};

fn entra_metadata() -> String {
    include_str!("entra-federation-metadata.xml")
        .replace("{ROLLOVER_CERT}", &idp_key().certificate().to_base64())
}

#[test]
fn entra_federation_metadata_gives_the_issuer_the_sso_url_and_every_signing_certificate() {
    let idp = IdpDescriptor::from_metadata(&entra_metadata()).unwrap();
    assert_eq!(idp.entity_id, IDP_ENTITY);
    assert_eq!(idp.sso_url, IDP_SSO);
    // Microsoft's sample certificate and the rollover one (the RoleDescriptor's copy counted once).
    assert_eq!(idp.signing_certificates.len(), 2);
    assert_eq!(&idp.signing_certificates[1], idp_key().certificate());

    // During the rollover a response signed with the second certificate's key is accepted.
    let sp = ServiceProvider::new(sp_config(ASSERTION_SIGNED, false), idp).unwrap();
    let login = Session::new()
        .validate(&sp, &forge("legit", json!({})))
        .unwrap();
    assert_eq!(login.issuer, IDP_ENTITY);
}

#[test]
fn metadata_without_a_signing_certificate_or_redirect_endpoint_is_refused() {
    let no_cert = entra_metadata().replace("use=\"signing\"", "use=\"encryption\"");
    assert!(matches!(
        IdpDescriptor::from_metadata(&no_cert),
        Err(SamlError::Metadata(_))
    ));
    let no_redirect = entra_metadata().replace(
        "bindings:HTTP-Redirect\" Location",
        "bindings:SOAP\" Location",
    );
    assert!(matches!(
        IdpDescriptor::from_metadata(&no_redirect),
        Err(SamlError::Metadata(_))
    ));
}

#[test]
fn entra_claims_become_a_typed_login_with_the_object_id_as_subject() {
    let login = Session::new()
        .validate(&sp(ASSERTION_SIGNED), &forge("legit", json!({})))
        .unwrap();
    assert_eq!(login.subject, "0d7f7b4e-3c1a-4d5e-9f00-aaaabbbbcccc");
    assert_eq!(login.name_id.format, NameIdFormat::Persistent);
    let c = &login.claims;
    assert_eq!(
        c.tenant_id.as_deref(),
        Some("11bb11bb-cc22-dd33-ee44-55ff55ff55ff")
    );
    assert_eq!(c.display_name.as_deref(), Some("Alice Example"));
    assert_eq!(c.email.as_deref(), Some("alice@corp.example"));
    assert_eq!(c.name.as_deref(), Some("alice@corp.example"));
    assert_eq!(c.given_name.as_deref(), Some("Alice"));
    assert_eq!(c.surname.as_deref(), Some("Example"));
    assert_eq!(c.groups.as_ref().unwrap().len(), 2);
    assert_eq!(c.groups_overage, None);
    assert_eq!(
        login.in_response_to.as_deref(),
        Some(crate::support::REQUEST_ID)
    );
    assert_eq!(login.session_index.as_deref(), Some("_session1"));
}

#[test]
fn group_overage_is_reported_and_absent_claims_stay_absent() {
    let link = "https://graph.windows.net/11bb11bb-cc22-dd33-ee44-55ff55ff55ff/users/0d7f7b4e/getMemberObjects";
    let response = forge(
        "legit",
        json!({
            "name_id": "alice@corp.example",
            "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            "attributes": {"http://schemas.microsoft.com/claims/groups.link": [link]},
        }),
    );
    let login = Session::new()
        .validate(&sp(ASSERTION_SIGNED), &response)
        .unwrap();
    assert_eq!(login.claims.groups_overage.as_deref(), Some(link));
    assert_eq!(login.claims.groups, None);
    assert_eq!(login.claims.object_id, None);
    assert_eq!(login.claims.display_name, None);
    // No objectidentifier: the NameID is the subject.
    assert_eq!(login.subject, "alice@corp.example");
    assert_eq!(login.name_id.format, NameIdFormat::EmailAddress);
}

#[test]
fn name_id_formats_are_read() {
    for (uri, format) in [
        (
            "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            NameIdFormat::Persistent,
        ),
        (
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            NameIdFormat::EmailAddress,
        ),
        (
            "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            NameIdFormat::Unspecified,
        ),
        (
            "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
            NameIdFormat::Transient,
        ),
    ] {
        let login = Session::new()
            .validate(
                &sp(ASSERTION_SIGNED),
                &forge("legit", json!({"name_id_format": uri})),
            )
            .unwrap();
        assert_eq!(login.name_id.format, format);
    }
}

#[test]
fn the_authn_request_goes_by_redirect_with_its_id_instant_and_our_acs_url() {
    let sp = sp(ASSERTION_SIGNED);
    let request = sp
        .authn_request(now(), &mut rng(), Some("/after/login?x=1&y=2"))
        .unwrap();
    let (endpoint, query) = request.url.split_once('?').unwrap();
    assert_eq!(endpoint, IDP_SSO);
    let message = RedirectMessage::decode(query, "SAMLRequest").unwrap();
    assert_eq!(message.relay_state.as_deref(), Some("/after/login?x=1&y=2"));
    assert!(!message.is_signed());
    let xml = &message.xml;
    assert!(xml.contains(&format!("ID=\"{}\"", request.id)), "{xml}");
    assert!(
        xml.contains("IssueInstant=\"2026-11-30T00:53:20Z\""),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("AssertionConsumerServiceURL=\"{SP_ACS}\"")),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<saml:Issuer>{SP_ENTITY}</saml:Issuer>")),
        "{xml}"
    );
    assert!(xml.contains("nameid-format:persistent"), "{xml}");
    assert!(request.id.starts_with('_'));
    // A '+' of the base64 left unencoded by a sender still decodes.
    assert!(query.contains("%2B"), "{query}");
    let plus = query.replace("%2B", "+");
    assert_eq!(
        RedirectMessage::decode(&plus, "SAMLRequest").unwrap().xml,
        message.xml
    );
}

#[test]
fn a_signed_authn_request_carries_the_redirect_query_signature() {
    let mut config = sp_config(ASSERTION_SIGNED, false);
    config.signing_key = Some(our_key());
    let sp = ServiceProvider::new(config, descriptor()).unwrap();
    let request = sp.authn_request(now(), &mut rng(), Some("relay")).unwrap();
    let query = request.url.split_once('?').unwrap().1;
    assert!(query.contains(
        "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature="
    ));
    let message = RedirectMessage::decode(query, "SAMLRequest").unwrap();
    message.verify(&[our_key().certificate().clone()]).unwrap();
    assert_eq!(
        message.verify(&[idp_key().certificate().clone()]),
        Err(SamlError::BadSignature { keys: 1 })
    );
    let tampered = query.replace("RelayState=relay", "RelayState=other");
    let message = RedirectMessage::decode(&tampered, "SAMLRequest").unwrap();
    assert!(message.verify(&[our_key().certificate().clone()]).is_err());
    // Our metadata publishes the key.
    let metadata = sp.metadata_xml();
    assert!(metadata.contains(&our_key().certificate().to_base64()));
    assert!(metadata.contains("AuthnRequestsSigned=\"true\""));
    assert!(metadata.contains(&format!("Location=\"{SP_ACS}\"")));
}

#[test]
fn the_configuration_bounds_the_skew_and_requires_a_signature() {
    let mut config = sp_config(ASSERTION_SIGNED, false);
    config.clock_skew = time::Duration::minutes(10);
    assert!(matches!(
        ServiceProvider::new(config, descriptor()),
        Err(SamlError::Config(_))
    ));
    let config = sp_config(
        SignatureRequirement {
            response: false,
            assertion: false,
        },
        false,
    );
    assert!(matches!(
        ServiceProvider::new(config, descriptor()),
        Err(SamlError::Config(_))
    ));
}

#[test]
fn garbage_is_refused_without_panicking() {
    let sp = sp(ASSERTION_SIGNED);
    for input in ["", "not base64!", "PGE+", "PD94bWwgdmVyc2lvbj0iMS4wIj8+"] {
        assert!(Session::new().validate(&sp, input).is_err(), "{input}");
    }
    assert!(matches!(
        Session::new().validate(&sp, &"A".repeat(3 * 1024 * 1024)),
        Err(SamlError::TooLarge { .. })
    ));
}

mod fuzz {
    use proptest::prelude::*;

    use crate::support::{forge, sp, Session, ASSERTION_SIGNED, RESPONSE_SIGNED};

    fn signed_response() -> &'static str {
        static XML: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        XML.get_or_init(|| {
            use base64::Engine as _;
            let value = forge("legit", serde_json::json!({"sign_response": true}));
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .unwrap(),
            )
            .unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// A signed response cut, spliced or with bytes changed anywhere: an error or (a change
        /// the signature does not cover, such as whitespace in base64) a login, never a panic,
        /// and never a login for another name.
        #[test]
        fn damaged_responses_never_panic(at in 0usize..100_000, len in 0usize..40, with in "[<>&a-z\"'=/:! -]{0,6}") {
            use base64::Engine as _;
            let xml = signed_response();
            let start = (at % xml.len()).min(xml.len());
            let end = (start + len).min(xml.len());
            let (Some(head), Some(tail)) = (xml.get(..start), xml.get(end..)) else { return Ok(()) };
            let damaged = format!("{head}{with}{tail}");
            let value = base64::engine::general_purpose::STANDARD.encode(&damaged);
            for require in [ASSERTION_SIGNED, RESPONSE_SIGNED] {
                if let Ok(login) = Session::new().validate(&sp(require), &value) {
                    prop_assert_eq!(login.name_id.value, "alice@corp.example");
                }
            }
        }
    }
}

#[test]
fn an_entra_shaped_response_in_default_namespaces_is_read() {
    // Entra: `<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion">` with a `<Signature
    // xmlns="http://www.w3.org/2000/09/xmldsig#">` inside, in a prefixed samlp:Response.
    let response = forge("legit", json!({"entra_shape": true}));
    use base64::Engine as _;
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&response)
            .unwrap(),
    )
    .unwrap();
    assert!(
        xml.contains("<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\""),
        "{xml}"
    );
    assert!(
        xml.contains("<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\""),
        "{xml}"
    );
    let login = Session::new()
        .validate(&sp(ASSERTION_SIGNED), &response)
        .unwrap();
    assert_eq!(login.subject, "0d7f7b4e-3c1a-4d5e-9f00-aaaabbbbcccc");
}

#[test]
fn a_structured_attribute_value_is_skipped_not_fatal() {
    let response = forge("legit", json!({"structured_attribute": true}));
    let login = Session::new()
        .validate(&sp(ASSERTION_SIGNED), &response)
        .unwrap();
    assert_eq!(
        login.attributes["urn:oid:1.3.6.1.4.1.5923.1.1.1.10"],
        Vec::<String>::new()
    );
    assert_eq!(login.claims.display_name.as_deref(), Some("Alice Example"));
}
