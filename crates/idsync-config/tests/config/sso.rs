//! `[sso]` (issue 19): what a good section becomes (the Entra and B2C authorities and issuers
//! derived from the tenant, the claims each style maps, the lifetimes' defaults), and what the
//! section may not name.

use super::*;

const SSO: &str = r#"
[store]
secret_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

[sources.web]
type = "login"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.to-app]
source = "web"
target = "app"

[sso]
issuer = "https://idsync.example.com/"

[sso.upstreams.entra]
style = "entra"
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
client_id = "idsync"
client_secret = "upstream-secret"
source = "web"

[sso.upstreams.customers]
style = "b2c"
tenant = "contoso"
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
policy = "B2C_1_signin"
client_id = "idsync"
client_secret = "upstream-secret"
source = "web"

[sso.upstreams.partners]
style = "external-id"
tenant = "contosoexternal"
tenant_id = "8b5e8f4a-1c2d-4e5f-9a0b-112233445566"
client_id = "idsync"
client_secret = "upstream-secret"
source = "web"

[sso.clients.jira]
client_id = "jira"
client_secret = "0123456789abcdef0123"
redirect_uris = ["https://jira.example.com/plugins/servlet/oidc/callback"]
upstream = "entra"
flow = "to-app"
"#;

#[test]
fn an_sso_section_derives_the_upstreams_authorities_and_claims() {
    let c = parse(SSO, Path::new("/etc/idsync/idsync.toml")).unwrap();
    let sso = c.sso.as_ref().expect("[sso]");
    assert_eq!(sso.issuer, "https://idsync.example.com");
    assert_eq!(sso.code_ttl, SsoConfig::DEFAULT_CODE_TTL);
    assert_eq!(sso.key_rotation, SsoConfig::DEFAULT_KEY_ROTATION);
    let entra = &sso.upstreams["entra"];
    assert_eq!(
        entra.authority,
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
    );
    assert_eq!(entra.issuer, entra.authority);
    assert_eq!(entra.claims["userName"], "preferred_username");
    let b2c = &sso.upstreams["customers"];
    assert_eq!(
        b2c.authority,
        "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_signin/v2.0/"
    );
    assert_eq!(
        b2c.issuer,
        "https://contoso.b2clogin.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/"
    );
    assert_eq!(
        b2c.claims["userName"], "emails",
        "B2C sends emails, no username"
    );
    // Entra External ID: the tenant's ciamlogin.com authority, an issuer under the tenant id,
    // and Entra's claims (its tokens carry tid and oid).
    let ext = &sso.upstreams["partners"];
    assert_eq!(
        ext.authority,
        "https://contosoexternal.ciamlogin.com/8b5e8f4a-1c2d-4e5f-9a0b-112233445566/v2.0"
    );
    assert_eq!(
        ext.issuer,
        "https://8b5e8f4a-1c2d-4e5f-9a0b-112233445566.ciamlogin.com/8b5e8f4a-1c2d-4e5f-9a0b-112233445566/v2.0"
    );
    assert!(matches!(
        &ext.style,
        UpstreamStyle::Entra { tenant_id } if tenant_id == "8b5e8f4a-1c2d-4e5f-9a0b-112233445566"
    ));
    assert_eq!(ext.claims["userName"], "preferred_username");
    let jira = c.sso_client("jira").expect("client jira");
    assert_eq!(jira.subject, ClientSubject::Username);
    assert_eq!(jira.flow, "to-app");
}

#[test]
fn sign_in_limits_have_generous_defaults_and_are_read_and_checked() {
    let c = parse(SSO, Path::new("/etc/idsync/idsync.toml")).unwrap();
    let sso = c.sso.as_ref().expect("[sso]");
    assert_eq!(
        (
            sso.sign_in_rate,
            sso.sign_in_burst,
            sso.max_pending_sign_ins
        ),
        (20.0, 200, 100_000)
    );
    let set = SSO.replace(
        "issuer = \"https://idsync.example.com/\"",
        "issuer = \"https://idsync.example.com/\"\nsign_in_rate = 0.5\nsign_in_burst = 5\nmax_pending_sign_ins = 1000",
    );
    let c = parse(&set, Path::new("/etc/idsync/idsync.toml")).unwrap();
    let sso = c.sso.as_ref().expect("[sso]");
    assert_eq!(
        (
            sso.sign_in_rate,
            sso.sign_in_burst,
            sso.max_pending_sign_ins
        ),
        (0.5, 5, 1000)
    );
    let bad = SSO.replace(
        "issuer = \"https://idsync.example.com/\"",
        "issuer = \"https://idsync.example.com/\"\nsign_in_rate = -1\nsign_in_burst = 0\nmax_pending_sign_ins = 0",
    );
    let errors = errors_in(&bad, Path::new("/etc/idsync/idsync.toml"));
    for key in ["sign_in_rate", "sign_in_burst", "max_pending_sign_ins"] {
        assert!(
            errors
                .iter()
                .any(|e| format!("{e}").contains(&format!("sso.{key}"))
                    && format!("{e}").contains("out of range")),
            "{key}: {errors:#?}"
        );
    }
}

#[test]
fn an_upstream_must_sign_users_in_to_a_source_that_takes_logins() {
    let text = SSO.replace(
        "[sources.web]\ntype = \"login\"",
        "[sources.web]\ntype = \"file\"\npath = \"people.json\"",
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.entra.source"
            && e.message.contains("takes no logins")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.customers.source"),
        "{e:#?}"
    );
}

#[test]
fn sso_needs_the_stores_secret_key() {
    let text = SSO.replace(
        "secret_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"",
        "path = \"x.db\"",
    );
    let e = one(&text);
    assert_eq!(e.key, "store.secret_key", "{e}");
}

#[test]
fn a_saml_upstream_reads_the_identity_providers_metadata_and_maps_entras_attributes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("entra.xml"),
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>",
    )
    .unwrap();
    let text = SSO.replace(
        "[sso.clients.jira]",
        "[sso.upstreams.entra-saml]\nstyle = \"saml\"\nmetadata = \"entra.xml\"\nsource = \"web\"\n\n[sso.clients.jira]",
    );
    let text = text.replace("upstream = \"entra\"", "upstream = \"entra-saml\"");
    let c = parse(&text, &dir.path().join("idsync.toml")).unwrap();
    let sso = c.sso.as_ref().unwrap();
    let saml = &sso.saml_upstreams["entra-saml"];
    assert!(saml.metadata.contains("EntityDescriptor"));
    assert!(saml.require_assertion_signature && !saml.require_response_signature);
    assert_eq!(
        saml.claims["userName"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
    );
    assert_eq!(sso.upstream_source("entra-saml"), Some("web"));
    assert!(!sso.upstreams.contains_key("entra-saml"));

    // A metadata file that is missing, and a signature choice that does not exist.
    let bad = text.replace(
        "metadata = \"entra.xml\"",
        "metadata = \"nope.xml\"\nsigned = \"never\"",
    );
    let e = errors_in(&bad, &dir.path().join("idsync.toml"));
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.entra-saml.metadata" && e.message.contains("nope.xml")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.entra-saml.signed"),
        "{e:#?}"
    );
}

fn errors_in(text: &str, file: &Path) -> Vec<ConfigError> {
    match parse(text, file) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn a_saml_product_is_registered_with_its_entity_id_acs_url_upstream_and_flow() {
    let product = "\n[sso.saml_clients.confluence]\nentity_id = \"https://confluence.example.com/sp\"\nacs_url = \"https://confluence.example.com/plugins/servlet/samlconsumer\"\nupstream = \"entra\"\nflow = \"to-app\"\n";
    let c = parse(
        &format!("{SSO}{product}"),
        Path::new("/etc/idsync/idsync.toml"),
    )
    .unwrap();
    let saml = &c.sso.as_ref().unwrap().saml_clients["confluence"];
    assert_eq!(saml.entity_id, "https://confluence.example.com/sp");
    assert_eq!(saml.flow, "to-app");

    let twice = format!(
        "{SSO}{product}{}",
        product.replace("saml_clients.confluence]", "saml_clients.wiki]")
    );
    let e = errors(&twice);
    assert!(
        e.iter().any(|e| e.key == "sso.saml_clients.wiki.entity_id"
            && e.message.contains("sso.saml_clients.confluence")),
        "{e:#?}"
    );

    let bad = product
        .replace(
            "https://confluence.example.com/plugins",
            "http://confluence.example.com/plugins",
        )
        .replace("upstream = \"entra\"", "upstream = \"okta\"")
        .replace("flow = \"to-app\"\n", "");
    let e = errors(&format!("{SSO}{bad}"));
    for key in [
        "sso.saml_clients.confluence.acs_url",
        "sso.saml_clients.confluence.flow",
    ] {
        assert!(e.iter().any(|e| e.key == key), "no error for {key}: {e:#?}");
    }
}

#[test]
fn an_upstream_trusts_the_ca_file_it_names_which_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("corp-ca.pem"),
        "-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    let text = SSO.replace(
        "client_secret = \"upstream-secret\"\nsource = \"web\"\n\n[sso.upstreams.customers]",
        "client_secret = \"upstream-secret\"\nsource = \"web\"\nca_file = \"corp-ca.pem\"\n\n[sso.upstreams.customers]",
    );
    assert_ne!(text, SSO);
    let c = parse(&text, &dir.path().join("idsync.toml")).unwrap();
    let sso = c.sso.as_ref().unwrap();
    assert_eq!(
        sso.upstreams["entra"].ca_file.as_deref(),
        Some(dir.path().join("corp-ca.pem").as_path())
    );
    assert_eq!(sso.upstreams["customers"].ca_file, None);
    let e = errors_in(
        &text.replace("corp-ca.pem", "missing-ca.pem"),
        &dir.path().join("idsync.toml"),
    );
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.entra.ca_file" && e.message.contains("missing-ca.pem")),
        "{e:#?}"
    );
}

#[test]
fn an_external_id_upstream_needs_its_tenant_and_takes_no_policy() {
    let text = SSO.replace(
        "tenant = \"contosoexternal\"\n",
        "policy = \"B2C_1_signin\"\n",
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.partners.tenant"),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|e| e.key == "sso.upstreams.partners.policy"),
        "{e:#?}"
    );
}
