//! A SAML upstream through `idsync serve`: pysaml2 (signing with xmlsec1) as an Entra-like
//! identity provider (`crates/idsync-saml/tests/saml/peer.py idp-respond`: it reads idsync's
//! AuthnRequest and SP metadata and answers with a signed Response), npm openid-client as the
//! product. The browser carries the AuthnRequest to the identity provider and posts its answer
//! to idsync's Assertion Consumer Service, as a browser does.

use super::peers::{product, Browser, Stop, PRODUCT_CB};
use super::{page, Setup};
use crate::free_port;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const IDP_ENTITY: &str = "https://sts.entra-like.example/72f988bf/";
const IDP_SSO: &str = "https://login.entra-like.example/72f988bf/saml2";
const DANA_OID: &str = "5f0c1d2e-0000-4000-8000-00000000da7a";

pub(super) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/saml-venv/bin/python` with pysaml2, installed by `scripts/peers` when missing.
pub(super) fn python() -> PathBuf {
    let python = root().join("target/saml-venv/bin/python");
    if !python.exists() || Command::new("xmlsec1").arg("--version").output().is_err() {
        let status = Command::new(root().join("scripts/peers"))
            .stdout(Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "scripts/peers failed");
    }
    python
}

/// A key and its self-signed certificate (PEM), made by openssl in `dir`.
pub(super) fn key_pair(dir: &Path, name: &str) -> (String, String) {
    let (key, cert) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(key).unwrap(),
        std::fs::read_to_string(cert).unwrap(),
    )
}

/// The identity provider's metadata, in the shape Entra's federation metadata has.
pub(super) fn idp_metadata(cert_pem: &str) -> String {
    let cert: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{IDP_ENTITY}\">\
         <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
         <md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data>\
         <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
         <md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{IDP_SSO}\"/>\
         </md:IDPSSODescriptor></md:EntityDescriptor>"
    )
}

/// What Entra's SAML token carries for dana (group ids, not names).
fn dana() -> Value {
    json!({
        "http://schemas.microsoft.com/identity/claims/objectidentifier": [DANA_OID],
        "http://schemas.microsoft.com/identity/claims/tenantid": ["72f988bf-86f1-41af-91ab-2d7cd011db47"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": ["dana@contoso.example"],
        "http://schemas.microsoft.com/identity/claims/displayname": ["Dana Scully"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["dana@contoso.example"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": [super::GROUP_1, super::GROUP_2],
    })
}

/// pysaml2's IdP answers the AuthnRequest at `request_url`, signing with `key`.
fn idp_respond(sp_metadata: &str, request_url: &str, key: &(String, String)) -> String {
    let script = root().join("crates/idsync-saml/tests/saml/peer.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg("idp-respond")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({
        "idp_entity": IDP_ENTITY, "sso_url": IDP_SSO,
        "key_pem": key.0, "cert_pem": key.1,
        "sp_metadata": sp_metadata,
        "request_url": request_url,
        "identity": dana(),
        "name_id": "dana-pairwise-id",
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "peer.py idp-respond: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["response"].as_str().unwrap().to_owned()
}

fn start(key: &(String, String)) -> Setup {
    let block = "style = \"saml\"\nmetadata = \"entra-federation-metadata.xml\"\nsource = \"web\"\nsigned = \"both\"\n";
    let metadata = idp_metadata(&key.1);
    Setup::build(
        free_port(),
        block,
        None,
        &[("entra-federation-metadata.xml", &metadata)],
        "type = \"login\"",
        "default_groups = [\"jira-software-users\"]",
        "",
    )
}

/// The product starts a sign-in; idsync sends the browser to the identity provider with an
/// AuthnRequest: (the product's start, the browser, the URL at the identity provider).
fn to_idp(s: &Setup) -> (Value, Browser, reqwest::Url) {
    let started = product(&s.issuer, "start", &[]).expect("the product's discovery");
    let mut browser = Browser::new();
    let first = browser.send(
        "GET",
        &reqwest::Url::parse(started["url"].as_str().unwrap()).unwrap(),
        &[],
    );
    assert_eq!(first.status().as_u16(), 303);
    let at_idp = reqwest::Url::parse(first.headers()["location"].to_str().unwrap()).unwrap();
    assert!(at_idp.as_str().starts_with(IDP_SSO), "{at_idp}");
    (started, browser, at_idp)
}

/// The browser posts the identity provider's answer to idsync's ACS.
fn post_answer(s: &Setup, browser: &mut Browser, at_idp: &reqwest::Url, response: &str) -> Stop {
    let relay = at_idp
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .expect("a RelayState");
    let acs = reqwest::Url::parse(&format!("{}/sso/saml/idp/acs", s.issuer)).unwrap();
    let resp = browser.send(
        "POST",
        &acs,
        &[("SAMLResponse", response), ("RelayState", &relay)],
    );
    let status = resp.status().as_u16();
    match resp.headers().get("location") {
        Some(loc) if loc.to_str().unwrap().starts_with(PRODUCT_CB) => {
            Stop::AtProduct(loc.to_str().unwrap().to_owned())
        }
        _ => Stop::Page {
            status,
            body: resp.text().unwrap(),
        },
    }
}

fn sp_metadata(s: &Setup) -> String {
    let resp = reqwest::blocking::get(format!("{}/sso/saml/idp/metadata", s.issuer)).unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let xml = resp.text().unwrap();
    assert!(
        xml.contains(&format!("{}/sso/saml/idp/acs", s.issuer)),
        "our ACS URL is in our metadata: {xml}"
    );
    xml
}

#[test]
fn a_saml_sign_in_at_an_entra_like_idp_provisions_the_user_before_the_product_gets_group_names() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_pair(dir.path(), "idp");
    let s = start(&key);
    let (started, mut browser, at_idp) = to_idp(&s);
    let response = idp_respond(&sp_metadata(&s), at_idp.as_str(), &key);
    let stop = post_answer(&s, &mut browser, &at_idp, &response);
    let Stop::AtProduct(callback) = stop else {
        panic!("dana was not sent back to the product: {stop:?}");
    };
    // Before the product redeems its code: dana in both targets, groups by name.
    assert_eq!(
        s.crowd_groups("dana@contoso.example"),
        Some(vec![
            "jira-admins".to_owned(),
            "jira-software-users".to_owned(),
            "jira-users".to_owned()
        ])
    );
    assert_eq!(
        s.scim.groups_of("dana@contoso.example"),
        Some(vec!["jira-admins".to_owned(), "jira-users".to_owned()])
    );
    let got = s.finish(&started, &callback).expect("the product's code");
    let claims = &got["claims"];
    assert_eq!(claims["sub"], json!("dana@contoso.example"));
    assert_eq!(claims["email"], json!("dana@contoso.example"));
    assert_eq!(claims["name"], json!("Dana Scully"));
    assert_eq!(
        super::sorted(&claims["groups"]),
        ["jira-admins", "jira-software-users", "jira-users"]
    );

    // The same response posted again: its sign-in is finished, no second code.
    let (status, body) = page(
        post_answer(&s, &mut browser, &at_idp, &response),
        "a replayed SAML response",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown or has expired"), "{body}");
}

#[test]
fn a_saml_response_signed_by_another_key_is_refused_and_provisions_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_pair(dir.path(), "idp");
    let other = key_pair(dir.path(), "intruder");
    let s = start(&key);
    let (_, mut browser, at_idp) = to_idp(&s);
    let forged = idp_respond(&sp_metadata(&s), at_idp.as_str(), &other);
    let (status, body) = page(
        post_answer(&s, &mut browser, &at_idp, &forged),
        "a response signed by another key",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SAML response was refused"), "{body}");
    assert_eq!(s.crowd_groups("dana@contoso.example"), None);
    assert_eq!(s.scim.groups_of("dana@contoso.example"), None);

    // An answer without the RelayState idsync gave (an IdP-initiated post): no sign-in.
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(format!("{}/sso/saml/idp/acs", s.issuer))
        .form(&[("SAMLResponse", forged.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());

    // Hostile posts: never a server error, never a redirect.
    let acs = format!("{}/sso/saml/idp/acs", s.issuer);
    for (body, expected) in [
        ("".to_owned(), 400),
        ("SAMLResponse=%%%&&==".to_owned(), 400),
        ("RelayState=a&RelayState=b&SAMLResponse=x".to_owned(), 403),
        ("RelayState=never-given&SAMLResponse=x".to_owned(), 400),
        (format!("RelayState={}", "r".repeat(20_000)), 403),
    ] {
        let resp = http
            .post(&acs)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), expected, "{body:.60}");
        assert!(resp.headers().get("location").is_none());
    }
    let unknown = http
        .post(format!("{}/sso/saml/nobody/acs", s.issuer))
        .form(&[("SAMLResponse", "x"), ("RelayState", "y")])
        .send()
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    // A sign-in in progress answered with garbage: refused by the SAML checks, as a page.
    let (_, mut browser, at_idp) = to_idp(&s);
    for garbage in [
        "not base64 !!!",
        "PD94bWwgdmVyc2lvbj0iMS4wIj8+PCFET0NUWVBFIHg+PHgvPg==",
    ] {
        let (_, mut b2, at2) = to_idp(&s);
        let (status, body) = page(post_answer(&s, &mut b2, &at2, garbage), "garbage");
        assert_eq!(status, 403, "{body}");
    }
    let (status, _) = page(
        post_answer(&s, &mut browser, &at_idp, ""),
        "an empty response",
    );
    assert_eq!(status, 403);
}
