//! Issue 19 item 6, SAML: real peers. pysaml2 (signing and verifying through Debian's xmlsec1)
//! as the upstream IdP our SP signs in at, and as the downstream product that trusts our IdP,
//! SP-initiated and IdP-initiated.

use idsync_saml::{
    IdpDescriptor, MemoryReplayCache, MemorySentRequests, NameIdFormat, ResponseCheck,
    ServiceProvider, SignatureRequirement,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::support::{
    alice, idp_key, our_idp, our_key, peer, pem, registered_sp, rng, sp_config, try_peer,
    OUR_IDP_ENTITY, OUR_IDP_SSO, SP_ACS,
};

const PY_IDP_ENTITY: &str = "https://pysaml2-idp.example.com/idp.xml";
const PY_IDP_SSO: &str = "https://pysaml2-idp.example.com/sso/redirect";
const PY_SP_ENTITY: &str = "https://pysaml2-sp.example.com/sp.xml";
const PY_SP_ACS: &str = "https://pysaml2-sp.example.com/acs/post";

/// pysaml2 checks times against the real clock: these exchanges run at the real time.
fn wall_clock() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// pysaml2's IdP metadata, as pysaml2 itself would publish it: made here in the standard shape.
fn pysaml2_idp_metadata() -> String {
    format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{PY_IDP_ENTITY}\">\
         <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
         <md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data>\
         <ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
         <md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{PY_IDP_SSO}\"/>\
         </md:IDPSSODescriptor></md:EntityDescriptor>",
        idp_key().certificate().to_base64()
    )
}

fn entra_identity() -> Value {
    json!({
        "http://schemas.microsoft.com/identity/claims/objectidentifier": ["5f0c1d2e-0000-4000-8000-00000000b0b0"],
        "http://schemas.microsoft.com/identity/claims/tenantid": ["11bb11bb-cc22-dd33-ee44-55ff55ff55ff"],
        "http://schemas.microsoft.com/identity/claims/displayname": ["Bob Builder"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["bob@corp.example"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["6e8c1a7e-0000-4000-8000-000000000001"],
    })
}

fn upstream_sp(sign_requests: bool, require: SignatureRequirement) -> ServiceProvider {
    let mut config = sp_config(require, false);
    config.signing_key = sign_requests.then(our_key);
    ServiceProvider::new(
        config,
        IdpDescriptor::from_metadata(&pysaml2_idp_metadata()).unwrap(),
    )
    .unwrap()
}

fn sign_in_at_pysaml2(sp: &ServiceProvider) -> idsync_saml::SamlLogin {
    sign_in_at_pysaml2_with(sp, false).unwrap()
}

fn sign_in_at_pysaml2_with(
    sp: &ServiceProvider,
    sha1: bool,
) -> Result<idsync_saml::SamlLogin, idsync_saml::SamlError> {
    let now = wall_clock();
    let request = sp
        .authn_request(now, &mut rand::rngs::OsRng, Some("/after"))
        .unwrap();
    let (key_pem, cert_pem) = pem(&idp_key());
    let answer = peer(
        "idp-respond",
        &json!({
            "idp_entity": PY_IDP_ENTITY, "sso_url": PY_IDP_SSO,
            "key_pem": key_pem, "cert_pem": cert_pem,
            "sp_metadata": sp.metadata_xml(),
            "request_url": request.url,
            "identity": entra_identity(),
            "name_id": "bob-pairwise-id",
            "sha1": sha1,
        }),
    );
    // pysaml2 read our AuthnRequest: its ID, our entity id, our ACS URL.
    assert_eq!(answer["request_id"], request.id);
    assert_eq!(answer["request_issuer"], crate::support::SP_ENTITY);
    assert_eq!(answer["acs"], SP_ACS);
    let mut requests = MemorySentRequests::new(10);
    requests.insert(&request.id, now + time::Duration::minutes(10), now);
    let mut replay = MemoryReplayCache::new(10);
    let login = sp.validate_post(
        answer["response"].as_str().unwrap(),
        ResponseCheck {
            now,
            requests: &mut requests,
            replay: &mut replay,
        },
    )?;
    assert_eq!(login.in_response_to.as_deref(), Some(request.id.as_str()));
    Ok(login)
}

#[test]
fn our_sp_signs_in_at_a_pysaml2_idp_and_reads_its_signed_response() {
    let both = SignatureRequirement {
        response: true,
        assertion: true,
    };
    let login = sign_in_at_pysaml2(&upstream_sp(false, both));
    assert_eq!(login.issuer, PY_IDP_ENTITY);
    assert_eq!(login.name_id.value, "bob-pairwise-id");
    assert_eq!(login.name_id.format, NameIdFormat::Persistent);
    assert_eq!(login.subject, "5f0c1d2e-0000-4000-8000-00000000b0b0");
    assert_eq!(login.claims.display_name.as_deref(), Some("Bob Builder"));
    assert_eq!(login.claims.email.as_deref(), Some("bob@corp.example"));
    assert_eq!(
        login.claims.groups,
        Some(vec!["6e8c1a7e-0000-4000-8000-000000000001".to_owned()])
    );
}

#[test]
fn a_response_signed_with_sha1_is_refused() {
    // pysaml2's default (and Entra's legacy option): RSA-SHA1 with SHA-1 digests.
    let both = SignatureRequirement {
        response: true,
        assertion: true,
    };
    let refused = sign_in_at_pysaml2_with(&upstream_sp(false, both), true).unwrap_err();
    assert!(
        matches!(refused, idsync_saml::SamlError::Algorithm(ref a) if a.contains("rsa-sha1")),
        "{refused}"
    );
}

#[test]
fn our_signed_authn_request_is_read_by_the_pysaml2_idp() {
    let login = sign_in_at_pysaml2(&upstream_sp(
        true,
        SignatureRequirement {
            response: false,
            assertion: true,
        },
    ));
    assert_eq!(login.name_id.value, "bob-pairwise-id");
}

fn pysaml2_sp(extra: Value) -> Value {
    let idp = our_idp(vec![]);
    let (key_pem, cert_pem) = pem(&idp_key());
    let mut input = json!({
        "sp_entity": PY_SP_ENTITY, "acs": PY_SP_ACS,
        "key_pem": key_pem, "cert_pem": cert_pem,
        "idp_entity": OUR_IDP_ENTITY,
        "idp_metadata": idp.metadata_xml(),
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    input
}

fn check_alice(accepted: &Value) {
    assert_eq!(accepted["name_id"], "alice");
    assert_eq!(accepted["issuer"], OUR_IDP_ENTITY);
    let identity = &accepted["identity"];
    assert_eq!(identity["username"], json!(["alice"]));
    assert_eq!(identity["email"], json!(["alice@corp.example"]));
    assert_eq!(identity["displayName"], json!(["Alice <Example> & Co"]));
    assert_eq!(
        identity["groups"],
        json!(["jira-software-users", "R&D \"core\""])
    );
}

#[test]
fn a_pysaml2_sp_accepts_our_idps_response_to_its_authn_request() {
    for signed in [false, true] {
        let mut sp = registered_sp(PY_SP_ENTITY, PY_SP_ACS);
        if signed {
            sp.request_certificates = vec![idp_key().certificate().clone()];
            sp.require_signed_requests = true;
        }
        let idp = our_idp(vec![sp]);
        let request = peer(
            "sp-request",
            &pysaml2_sp(json!({"sign_requests": signed, "relay_state": "/dashboard"})),
        );
        let url = request["url"].as_str().unwrap();
        let (endpoint, query) = url.split_once('?').unwrap();
        assert_eq!(endpoint, OUR_IDP_SSO);
        let now = wall_clock();
        let accepted = idp.accept_redirect(query, now).unwrap();
        assert_eq!(accepted.id, request["request_id"].as_str().unwrap());
        assert_eq!(accepted.acs_url, PY_SP_ACS);
        assert_eq!(accepted.signed, signed);
        assert_eq!(accepted.relay_state.as_deref(), Some("/dashboard"));
        let form = idp.respond(&accepted, &alice(), now, &mut rng()).unwrap();
        assert_eq!(form.action, PY_SP_ACS);
        let result = peer(
            "sp-accept",
            &pysaml2_sp(json!({"response": form.value, "request_id": accepted.id})),
        );
        check_alice(&result);
        assert_eq!(result["in_response_to"], accepted.id.as_str());
    }
}

#[test]
fn a_pysaml2_sp_authn_request_by_http_post_is_read_and_its_signature_checked() {
    let mut sp = registered_sp(PY_SP_ENTITY, PY_SP_ACS);
    sp.request_certificates = vec![idp_key().certificate().clone()];
    sp.require_signed_requests = true;
    let idp = our_idp(vec![sp]);
    let request = peer(
        "sp-request",
        &pysaml2_sp(json!({"sign_requests": true, "binding": "post"})),
    );
    let value = request["saml_request"].as_str().unwrap();
    let accepted = idp.accept_post(value, Some("/x"), wall_clock()).unwrap();
    assert_eq!(accepted.id, request["request_id"].as_str().unwrap());
    assert!(accepted.signed);
    assert_eq!(accepted.acs_url, PY_SP_ACS);
    // The same request with its signed content changed is refused.
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let xml = String::from_utf8(engine.decode(value).unwrap()).unwrap();
    let tampered = engine.encode(
        xml.replacen("ForceAuthn=\"false\"", "ForceAuthn=\"true\"", 1)
            .replacen(
                "<ns0:AuthnRequest ",
                "<ns0:AuthnRequest ForceAuthn=\"true\" ",
                usize::from(!xml.contains("ForceAuthn")),
            ),
    );
    assert_eq!(
        idp.accept_post(&tampered, None, wall_clock()),
        Err(idsync_saml::SamlError::DigestMismatch)
    );
}

#[test]
fn a_pysaml2_sp_accepts_our_idp_initiated_response() {
    let idp = our_idp(vec![registered_sp(PY_SP_ENTITY, PY_SP_ACS)]);
    let form = idp
        .respond_unsolicited(
            PY_SP_ENTITY,
            Some("/start"),
            &alice(),
            wall_clock(),
            &mut rng(),
        )
        .unwrap();
    let result = peer(
        "sp-accept",
        &pysaml2_sp(json!({"response": form.value, "allow_unsolicited": true})),
    );
    check_alice(&result);
    assert_eq!(result["in_response_to"], Value::Null);

    // pysaml2 (xmlsec1) verifies our signatures: the same response, one attribute value changed,
    // is refused.
    use base64::Engine as _;
    let xml = form
        .xml()
        .unwrap()
        .replace(">jira-software-users<", ">jira-administrators<");
    let tampered = base64::engine::general_purpose::STANDARD.encode(xml);
    let refused = try_peer(
        "sp-accept",
        &pysaml2_sp(json!({"response": tampered, "allow_unsolicited": true})),
    );
    assert!(
        refused.is_err(),
        "pysaml2 accepted a tampered response: {refused:?}"
    );
}
