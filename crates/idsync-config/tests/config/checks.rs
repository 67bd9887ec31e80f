//! What `config check` must catch that `sync` would hit later (issue 15, item 23): files read
//! at start-up that do not exist, required strings that are empty, empty secret references,
//! no false "no source named" after a source's own error, and syntax errors with their key.

use super::*;

const GRAPH: &str = r#"
[sources.entra]
type = "msgraph"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s3cret"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.entra-to-app]
source = "entra"
target = "app"
"#;

fn graph_with(line: &str, value: &str) -> String {
    GRAPH.replace(
        "client_secret = \"s3cret\"",
        &format!("client_secret = \"s3cret\"\n{line} = {value}"),
    )
}

#[test]
fn a_missing_ca_file_is_a_config_error() {
    let e = one(&graph_with("ca_file", "\"no-such-ca.pem\""));
    assert_eq!(e.key, "sources.entra.ca_file", "{e}");
    assert!(e.message.contains("no-such-ca.pem"), "{e}");
    assert_eq!(e.line, 7, "{e}");
    // One that exists is fine.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let text = graph_with("ca_file", "\"ca.pem\"");
    let c = parse(&text, &dir.path().join("idsync.toml")).unwrap();
    let idsync_config::SourceKind::MsGraph(g) = &c.sources["entra"].kind else {
        panic!("not a graph source");
    };
    assert_eq!(
        g.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
}

#[test]
fn required_strings_must_not_be_empty() {
    for (key, text) in [
        (
            "sources.entra.tenant",
            GRAPH.replace("tenant = \"contoso.onmicrosoft.com\"", "tenant = \"\""),
        ),
        (
            "sources.entra.client_id",
            GRAPH.replace(
                "client_id = \"11111111-2222-3333-4444-555555555555\"",
                "client_id = \" \"",
            ),
        ),
        (
            "sources.entra.client_secret",
            GRAPH.replace("client_secret = \"s3cret\"", "client_secret = \"\""),
        ),
        (
            "targets.app.journal",
            GRAPH.replace("journal = \"t.jsonl\"", "journal = \"\""),
        ),
    ] {
        let e = one(&text);
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains("must not be empty"), "{e}");
    }
    let scim = GOOD.replace(
        "type = \"test\"\njournal = \"t.jsonl\"",
        "type = \"scim\"\nurl = \"https://example.com/scim\"\ntoken = \"\"",
    );
    let e = one(&scim);
    assert_eq!(e.key, "targets.app.token", "{e}");
    assert!(e.message.contains("must not be empty"), "{e}");
}

#[test]
fn an_empty_environment_variable_or_secret_file_is_a_config_error() {
    std::env::set_var("IDSYNC_CONFIG_TEST_EMPTY", "");
    let e = one(&GRAPH.replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"${env:IDSYNC_CONFIG_TEST_EMPTY}\"",
    ));
    assert_eq!(e.key, "sources.entra.client_secret", "{e}");
    assert!(
        e.message
            .contains("environment variable IDSYNC_CONFIG_TEST_EMPTY is empty"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), "\n").unwrap();
    let text = GRAPH.replace(
        "client_secret = \"s3cret\"",
        "client_secret = \"${file:secret.txt}\"",
    );
    let e = match parse(&text, &dir.path().join("idsync.toml")) {
        Ok(_) => panic!("an empty secret file passed"),
        Err(mut e) => {
            assert_eq!(e.0.len(), 1, "{e}");
            e.0.remove(0)
        }
    };
    assert!(e.message.contains("is empty"), "{e}");
}

#[test]
fn a_source_or_target_with_an_error_is_not_also_missing() {
    // The source's own error, and nothing about the flow that names it.
    let e = one(&GRAPH.replace("tenant = \"contoso.onmicrosoft.com\"", "tenant = \"\""));
    assert_eq!(e.key, "sources.entra.tenant", "{e}");
    std::env::remove_var("IDSYNC_CONFIG_TEST_UNSET");
    let e = one(&GOOD.replace(
        "type = \"test\"\njournal = \"t.jsonl\"",
        "type = \"scim\"\nurl = \"https://example.com/scim\"\ntoken = \"${env:IDSYNC_CONFIG_TEST_UNSET}\"",
    ));
    assert_eq!(e.key, "targets.app.token", "{e}");
    // A name declared nowhere still is an error, listing what is declared.
    let e = one(&GOOD.replace("source = \"hr\"", "source = \"payroll\""));
    assert!(
        e.message
            .contains("no source named \"payroll\" (declared: hr)"),
        "{e}"
    );
}

#[test]
fn a_syntax_error_names_its_key() {
    let e = one("[store]\npath = \"a.db\"\nretention_days = = 3\n");
    assert_eq!(e.key, "store.retention_days", "{e}");
    let e = one("[sources.hr]\ntype = \"file\"\npath = \"people.json\n");
    assert_eq!(e.key, "sources.hr.path", "{e}");
    let e = one("colour = blue\n");
    assert_eq!(e.key, "colour", "{e}");
    let e = one("[store\npath = \"a.db\"\n");
    assert!(!e.key.is_empty(), "{e}");
    assert!(!e.to_string().contains(": : "), "{e}");
}
