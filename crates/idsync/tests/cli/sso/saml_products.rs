//! A product that signs in to idsync by SAML 2.0 (`[sso.saml_clients]`): pysaml2's service
//! provider (with xmlsec1) makes the AuthnRequest and checks idsync's signed Response; the user
//! signs in at the Entra-like npm oidc-provider in between, and is provisioned before the
//! Response is posted to the product.

use super::peers::{Browser, Stop, Upstream};
use super::saml::{key_pair, python, root};
use super::Setup;
use crate::free_port;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

const SP_ENTITY: &str = "https://confluence.example.com/plugins/servlet/samlsso";
const SP_ACS: &str = "http://127.0.0.1:9/confluence/plugins/servlet/samlconsumer";

/// `peer.py COMMAND` with `input`: its answer, or its error output.
fn peer(command: &str, input: &Value) -> Result<Value, String> {
    let mut child = Command::new(python())
        .arg(root().join("crates/idsync-saml/tests/saml/peer.py"))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// idsync with an Entra-like OpenID upstream and Confluence registered as a SAML product.
fn start() -> Setup {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let up = Upstream::start("entra", &format!("{issuer}/sso/upstream/idp/callback"));
    let block = format!(
        "style = \"entra\"\ntenant_id = \"{}\"\nauthority = \"{a}\"\nissuer = \"{a}\"\nclient_id = \"idsync\"\nclient_secret = \"${{env:UPSTREAM_SECRET}}\"\nsource = \"web\"\n",
        super::TENANT,
        a = up.issuer
    );
    let extra = format!(
        "\n[sso.saml_clients.confluence]\nentity_id = \"{SP_ENTITY}\"\nacs_url = \"{SP_ACS}\"\nupstream = \"idp\"\nflow = \"to-crowd\"\n"
    );
    Setup::build(
        port,
        &block,
        Some(up),
        &[],
        "type = \"login\"",
        "default_groups = [\"confluence-users\"]",
        &extra,
    )
}

/// The SP's settings for peer.py: its key, idsync's IdP metadata, and `extra`.
fn sp_input(s: &Setup, key: &(String, String), extra: Value) -> Value {
    let metadata = reqwest::blocking::get(format!("{}/sso/saml-idp/metadata", s.issuer))
        .unwrap()
        .text()
        .unwrap();
    assert!(metadata.contains("IDPSSODescriptor"), "{metadata}");
    let mut input = json!({
        "sp_entity": SP_ENTITY, "acs": SP_ACS,
        "key_pem": key.0, "cert_pem": key.1,
        "idp_entity": format!("{}/sso/saml-idp", s.issuer),
        "idp_metadata": metadata,
    });
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    input
}

/// A value of the auto-posting form's field `name`.
fn form_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

#[test]
fn a_saml_product_signs_in_through_idsync_and_gets_a_signed_response_with_group_names() {
    let dir = tempfile::tempdir().unwrap();
    let sp_key = key_pair(dir.path(), "confluence");
    let s = start();
    let request = peer(
        "sp-request",
        &sp_input(&s, &sp_key, json!({"relay_state": "/wiki/spaces/ENG"})),
    )
    .expect("pysaml2's AuthnRequest");
    let url = request["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/sso/saml-idp/sso?", s.issuer)),
        "{url}"
    );

    let stop = Browser::new().sign_in(url, "alice", &s.issuer);
    let Stop::Page { status, body } = stop else {
        panic!("expected idsync's posting page: {stop:?}");
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("action=\"{SP_ACS}\"")), "{body}");
    assert_eq!(
        form_field(&body, "RelayState").as_deref(),
        Some("/wiki/spaces/ENG")
    );
    let response = form_field(&body, "SAMLResponse").expect("a SAMLResponse");
    // Provisioned before the product has the response.
    assert_eq!(
        s.crowd_groups("alice@contoso.example"),
        Some(vec![
            "confluence-users".to_owned(),
            "jira-admins".to_owned(),
            "jira-users".to_owned()
        ])
    );
    let accepted = peer(
        "sp-accept",
        &sp_input(
            &s,
            &sp_key,
            json!({"response": response, "request_id": request["request_id"]}),
        ),
    )
    .expect("pysaml2 accepts idsync's signed response");
    assert_eq!(accepted["name_id"], json!("alice@contoso.example"));
    assert_eq!(accepted["in_response_to"], request["request_id"]);
    let identity = &accepted["identity"];
    assert_eq!(identity["username"], json!(["alice@contoso.example"]));
    assert_eq!(identity["email"], json!(["alice@contoso.example"]));
    assert_eq!(identity["displayName"], json!(["Alice Liddell"]));
    let mut groups: Vec<String> = serde_json::from_value(identity["groups"].clone()).unwrap();
    groups.sort();
    assert_eq!(groups, ["confluence-users", "jira-admins", "jira-users"]);

    // The same response for another request: pysaml2 refuses it (it answers the first one).
    let other = peer("sp-request", &sp_input(&s, &sp_key, json!({}))).unwrap();
    let refused = peer(
        "sp-accept",
        &sp_input(
            &s,
            &sp_key,
            json!({"response": form_field(&body, "SAMLResponse"), "request_id": other["request_id"]}),
        ),
    );
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn an_unregistered_saml_product_or_a_scoped_out_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sp_key = key_pair(dir.path(), "intruder");
    let s = start();
    // A service provider idsync does not know: a page, no sign-in, no redirect.
    let mut input = sp_input(&s, &sp_key, json!({}));
    input["sp_entity"] = json!("https://intruder.example/sp");
    let request = peer("sp-request", &input).unwrap();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http.get(request["url"].as_str().unwrap()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().unwrap().contains("refused"));

    // bob is outside the product's flow: a page that says why, and no SAML response.
    let request = peer("sp-request", &sp_input(&s, &sp_key, json!({}))).unwrap();
    let stop = Browser::new().sign_in(request["url"].as_str().unwrap(), "bob", &s.issuer);
    let Stop::Page { status, body } = stop else {
        panic!("bob was sent to the product: {stop:?}");
    };
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("to-crowd"), "{body}");
    assert!(form_field(&body, "SAMLResponse").is_none());

    // A garbage SAMLRequest, by redirect and by post: refused as requests, never a 5xx.
    for url in [
        format!("{}/sso/saml-idp/sso", s.issuer),
        format!("{}/sso/saml-idp/sso?SAMLRequest=%%%", s.issuer),
        format!(
            "{}/sso/saml-idp/sso?SAMLRequest=AAAA&SAMLRequest=BBBB",
            s.issuer
        ),
    ] {
        assert_eq!(
            http.get(&url).send().unwrap().status().as_u16(),
            400,
            "{url}"
        );
    }
    for body in ["", "SAMLRequest=!!!", "SAMLRequest=a&SAMLRequest=b"] {
        let status = http
            .post(format!("{}/sso/saml-idp/sso", s.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert!((400..500).contains(&status), "{body}: {status}");
    }
}

/// `{issuer}/sso/saml-idp/init` with `params`.
fn init_url(s: &Setup, params: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params(&format!("{}/sso/saml-idp/init", s.issuer), params)
        .unwrap()
        .to_string()
}

#[test]
fn an_idp_initiated_sign_in_posts_an_unsolicited_signed_response_to_the_registered_acs() {
    let dir = tempfile::tempdir().unwrap();
    let sp_key = key_pair(dir.path(), "confluence");
    let s = start();
    let url = init_url(&s, &[("sp", SP_ENTITY), ("RelayState", "/wiki/spaces/ENG")]);
    let stop = Browser::new().sign_in(&url, "alice", &s.issuer);
    let Stop::Page { status, body } = stop else {
        panic!("expected idsync's posting page: {stop:?}");
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("action=\"{SP_ACS}\"")), "{body}");
    assert_eq!(
        form_field(&body, "RelayState").as_deref(),
        Some("/wiki/spaces/ENG")
    );
    let response = form_field(&body, "SAMLResponse").expect("a SAMLResponse");
    // Provisioned before the product has the response.
    assert_eq!(
        s.crowd_groups("alice@contoso.example"),
        Some(vec![
            "confluence-users".to_owned(),
            "jira-admins".to_owned(),
            "jira-users".to_owned()
        ])
    );
    // A service provider that takes unsolicited responses accepts it; it answers no request.
    let accepted = peer(
        "sp-accept",
        &sp_input(
            &s,
            &sp_key,
            json!({"response": response, "allow_unsolicited": true}),
        ),
    )
    .expect("pysaml2 accepts idsync's unsolicited response");
    assert_eq!(accepted["name_id"], json!("alice@contoso.example"));
    assert_eq!(accepted["in_response_to"], Value::Null);
    let mut groups: Vec<String> =
        serde_json::from_value(accepted["identity"]["groups"].clone()).unwrap();
    groups.sort();
    assert_eq!(groups, ["confluence-users", "jira-admins", "jira-users"]);
    // One that does not take them refuses it: the response is unsolicited indeed.
    let refused = peer(
        "sp-accept",
        &sp_input(&s, &sp_key, json!({"response": response})),
    );
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn an_idp_initiated_sign_in_refuses_unknown_products_foreign_relay_states_and_scoped_out_users() {
    let s = start();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let long = format!("/{}", "a".repeat(80));
    for params in [
        vec![("sp", "https://intruder.example/sp")],
        vec![],
        vec![("sp", SP_ENTITY), ("sp", SP_ENTITY)],
        vec![("sp", SP_ENTITY), ("RelayState", "https://evil.example/")],
        vec![("sp", SP_ENTITY), ("RelayState", "//evil.example/x")],
        vec![("sp", SP_ENTITY), ("RelayState", "/\\evil.example/x")],
        vec![("sp", SP_ENTITY), ("RelayState", "javascript:alert(1)")],
        vec![("sp", SP_ENTITY), ("RelayState", long.as_str())],
    ] {
        let resp = http.get(init_url(&s, &params)).send().unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{params:?}");
        assert!(resp.headers().get("location").is_none(), "{params:?}");
        let body = resp.text().unwrap();
        assert!(body.contains("refused"), "{params:?}: {body}");
        assert!(form_field(&body, "SAMLResponse").is_none());
    }
    // The longest RelayState the bindings allow (80 bytes) goes on to the identity provider.
    let longest = format!("/{}", "a".repeat(79));
    let resp = http
        .get(init_url(&s, &[("sp", SP_ENTITY), ("RelayState", &longest)]))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);

    // bob is outside the product's flow: a page that says why, and no SAML response.
    let stop = Browser::new().sign_in(&init_url(&s, &[("sp", SP_ENTITY)]), "bob", &s.issuer);
    let Stop::Page { status, body } = stop else {
        panic!("bob was sent to the product: {stop:?}");
    };
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("to-crowd"), "{body}");
    assert!(form_field(&body, "SAMLResponse").is_none());
}
