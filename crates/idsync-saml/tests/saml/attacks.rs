//! Issue 19 item 5, SAML: each attack is a response forged with signxml (a real XML signature
//! implementation) and tampered with the way the known attacks do; each must be refused, or
//! (comment injection) read as what was signed.

use idsync_saml::{SamlError, ServiceProvider};
use serde_json::json;

use crate::support::{
    descriptor, forge, now, sp, sp_config, Session, ASSERTION_SIGNED, RESPONSE_SIGNED,
};

const BOTH: idsync_saml::SignatureRequirement = idsync_saml::SignatureRequirement {
    response: true,
    assertion: true,
};

fn refused(sp: &ServiceProvider, response: &str) -> SamlError {
    match Session::new().validate(sp, response) {
        Ok(login) => panic!("accepted: {login:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_legitimate_forged_response_is_accepted_so_the_refusals_below_mean_something() {
    let response = forge("legit", json!({}));
    let login = Session::new()
        .validate(&sp(ASSERTION_SIGNED), &response)
        .unwrap();
    assert_eq!(login.name_id.value, "alice@corp.example");
    let both = forge("legit", json!({"sign_response": true}));
    Session::new().validate(&sp(BOTH), &both).unwrap();
    let response_only = forge(
        "legit",
        json!({"sign_response": true, "sign_assertion": false}),
    );
    Session::new()
        .validate(&sp(RESPONSE_SIGNED), &response_only)
        .unwrap();
}

#[test]
fn wrapping_the_signed_assertion_into_extensions_behind_an_evil_one_is_refused() {
    let e = refused(&sp(ASSERTION_SIGNED), &forge("wrap_extensions", json!({})));
    assert_eq!(e, SamlError::Unsigned("Assertion"), "{e}");
}

#[test]
fn wrapping_with_the_evil_copy_keeping_the_id_and_signature_is_refused() {
    let e = refused(
        &sp(ASSERTION_SIGNED),
        &forge("wrap_extensions_same_id", json!({})),
    );
    assert!(
        matches!(e, SamlError::SignatureStructure(ref m) if m.contains("elements hold the ID")),
        "{e}"
    );
}

#[test]
fn wrapping_the_signed_assertion_into_the_signatures_object_is_refused() {
    // Refused for the ds:Object (a Signature holds SignedInfo, SignatureValue, KeyInfo only); its
    // Reference to the hidden assertion, not to the element holding it, is refused next.
    let e = refused(&sp(ASSERTION_SIGNED), &forge("wrap_in_object", json!({})));
    assert!(matches!(e, SamlError::SignatureStructure(_)), "{e}");
}

#[test]
fn wrapping_the_signed_assertion_inside_the_evil_one_is_refused() {
    let e = refused(&sp(ASSERTION_SIGNED), &forge("wrap_in_evil", json!({})));
    assert_eq!(e, SamlError::Unsigned("Assertion"), "{e}");
}

#[test]
fn an_evil_assertion_before_or_after_the_signed_one_is_refused() {
    for scenario in ["evil_before", "evil_after"] {
        let e = refused(&sp(ASSERTION_SIGNED), &forge(scenario, json!({})));
        assert!(
            matches!(e, SamlError::Malformed { ref detail, .. } if detail.contains("more than one Assertion")),
            "{scenario}: {e}"
        );
    }
}

#[test]
fn an_unsigned_assertion_holding_the_signed_ones_id_elsewhere_is_refused() {
    let e = refused(
        &sp(ASSERTION_SIGNED),
        &forge("duplicate_id_in_extensions", json!({})),
    );
    assert!(
        matches!(e, SamlError::SignatureStructure(ref m) if m.contains("2 elements hold the ID")),
        "{e}"
    );
}

#[test]
fn a_signed_response_with_its_assertion_swapped_for_an_evil_one_is_refused() {
    let response = forge(
        "replace_in_signed_response",
        json!({"sign_response": true, "sign_assertion": false}),
    );
    assert_eq!(
        refused(&sp(RESPONSE_SIGNED), &response),
        SamlError::DigestMismatch
    );
}

#[test]
fn a_signed_response_wrapping_an_extra_unsigned_evil_assertion_is_refused() {
    let response = forge(
        "response_wraps_evil_assertion",
        json!({"sign_response": true, "sign_assertion": false}),
    );
    let e = refused(&sp(RESPONSE_SIGNED), &response);
    assert_eq!(e, SamlError::DigestMismatch, "{e}");
}

#[test]
fn an_evil_response_wrapping_the_signed_response_is_refused() {
    let response = forge(
        "wrap_response",
        json!({"sign_response": true, "sign_assertion": false}),
    );
    let e = refused(&sp(RESPONSE_SIGNED), &response);
    assert!(
        matches!(e, SamlError::SignatureStructure(ref m) if m.contains("Reference points to")),
        "{e}"
    );
}

#[test]
fn a_comment_in_the_name_id_does_not_cut_it() {
    // The IdP signed the attacker's own account, admin@corp.evil.com; a comment splits the text
    // after "admin@corp". The signature still verifies (c14n drops comments); the NameID read is
    // the whole text, the attacker's own account, never admin@corp.
    let response = forge(
        "comment_injection",
        json!({"name_id": "admin@corp.evil.com", "attributes": {}}),
    );
    let login = Session::new()
        .validate(&sp(ASSERTION_SIGNED), &response)
        .unwrap();
    assert_eq!(login.name_id.value, "admin@corp.evil.com");
    assert_eq!(login.subject, "admin@corp.evil.com");
}

#[test]
fn an_unsigned_assertion_is_refused() {
    let response = forge("legit", json!({"sign_assertion": false}));
    assert_eq!(
        refused(&sp(ASSERTION_SIGNED), &response),
        SamlError::Unsigned("Assertion")
    );
    // Signed response required, none there.
    assert_eq!(
        refused(&sp(RESPONSE_SIGNED), &response),
        SamlError::Unsigned("Response")
    );
}

#[test]
fn an_assertion_signed_by_another_key_is_refused() {
    let response = forge("legit", json!({"signer": "other"}));
    assert_eq!(
        refused(&sp(ASSERTION_SIGNED), &response),
        SamlError::BadSignature { keys: 1 }
    );
}

#[test]
fn a_replayed_assertion_is_refused_even_where_unsolicited_responses_are_allowed() {
    // IdP-initiated: no request to consume, only the replay cache stands in the way.
    let sp = ServiceProvider::new(sp_config(ASSERTION_SIGNED, true), descriptor()).unwrap();
    let response = forge("legit", json!({"in_response_to": null}));
    let mut session = Session::new();
    session.validate(&sp, &response).unwrap();
    let later = now() + time::Duration::seconds(30);
    assert!(matches!(
        session.validate_at(&sp, &response, later),
        Err(SamlError::Replay(_))
    ));
}

#[test]
fn a_replayed_answer_to_our_request_is_refused() {
    let sp = sp(ASSERTION_SIGNED);
    let response = forge("legit", json!({}));
    let mut session = Session::new();
    session.validate(&sp, &response).unwrap();
    assert!(matches!(
        session.validate(&sp, &response),
        Err(SamlError::Replay(_))
    ));
}

#[test]
fn a_wrong_audience_recipient_or_destination_is_refused() {
    let sp = sp(ASSERTION_SIGNED);
    let e = refused(
        &sp,
        &forge(
            "legit",
            json!({"audience": "https://other-app.example.com"}),
        ),
    );
    assert!(matches!(e, SamlError::Audience { .. }), "{e}");
    let e = refused(
        &sp,
        &forge(
            "legit",
            json!({"recipient": "https://other-app.example.com/acs"}),
        ),
    );
    assert!(matches!(e, SamlError::Recipient { .. }), "{e}");
    let e = refused(
        &sp,
        &forge(
            "legit",
            json!({"destination": "https://other-app.example.com/acs"}),
        ),
    );
    assert!(matches!(e, SamlError::Destination { .. }), "{e}");
}

#[test]
fn an_expired_or_not_yet_valid_assertion_is_refused() {
    let sp = sp(ASSERTION_SIGNED);
    let response = forge("legit", json!({}));
    // Valid for 300 s; 60 s of skew allowed.
    let e = Session::new()
        .validate_at(&sp, &response, now() + time::Duration::seconds(361))
        .unwrap_err();
    assert!(matches!(e, SamlError::Expired { .. }), "{e}");
    Session::new()
        .validate_at(&sp, &response, now() + time::Duration::seconds(350))
        .unwrap();
    let e = refused(&sp, &forge("legit", json!({"not_before_offset": 200})));
    assert!(matches!(e, SamlError::NotYetValid { .. }), "{e}");
}

#[test]
fn a_response_to_a_request_we_never_sent_is_refused() {
    let sp = sp(ASSERTION_SIGNED);
    let e = refused(
        &sp,
        &forge("legit", json!({"in_response_to": "_never_sent"})),
    );
    assert_eq!(e, SamlError::UnknownRequest("_never_sent".into()));
    let e = refused(&sp, &forge("legit", json!({"in_response_to": null})));
    assert_eq!(e, SamlError::Unsolicited);
}

#[test]
fn an_issuer_other_than_the_idp_is_refused() {
    let e = refused(
        &sp(ASSERTION_SIGNED),
        &forge(
            "legit",
            json!({"issuer": "https://sts.windows.net/another-tenant/"}),
        ),
    );
    assert!(matches!(e, SamlError::Issuer { .. }), "{e}");
}

#[test]
fn an_unsigned_response_cannot_make_an_unsolicited_assertion_answer_our_request() {
    // A signed IdP-initiated assertion (no InResponseTo) wrapped in an unsigned Response that
    // claims to answer our pending request: still unsolicited.
    let response = forge("legit", json!({"assertion_in_response_to": null}));
    assert_eq!(
        refused(&sp(ASSERTION_SIGNED), &response),
        SamlError::Unsolicited
    );
    // Signed by the IdP, the Response's InResponseTo is its word.
    let signed = forge(
        "legit",
        json!({"assertion_in_response_to": null, "sign_response": true}),
    );
    let login = Session::new().validate(&sp(BOTH), &signed).unwrap();
    assert_eq!(
        login.in_response_to.as_deref(),
        Some(crate::support::REQUEST_ID)
    );
}

#[test]
fn a_status_other_than_success_is_refused_with_the_status() {
    let response = forge(
        "legit",
        json!({"status": "urn:oasis:names:tc:SAML:2.0:status:Responder"}),
    );
    let e = refused(&sp(ASSERTION_SIGNED), &response);
    assert!(
        matches!(e, SamlError::Status { ref status, .. } if status.ends_with(":Responder")),
        "{e}"
    );
    // An IdP's refusal as Entra sends it: no assertion, the reason in StatusMessage.
    let refusal = forge(
        "legit",
        json!({
            "status": "urn:oasis:names:tc:SAML:2.0:status:Requester",
            "status_message": "AADSTS50105: the signed in user is not assigned to a role for the application",
            "no_assertion": true,
        }),
    );
    let e = refused(&sp(ASSERTION_SIGNED), &refusal);
    assert!(
        matches!(e, SamlError::Status { ref message, .. } if message.as_deref().is_some_and(|m| m.starts_with("AADSTS50105"))),
        "{e}"
    );
}
