//! The Graph source through the binary: `source check`, sync, missing permissions, certificate
//! sign-in (against `idsync sim graph`).

use super::*;

#[test]
fn graph_source_check_and_sync_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root, tenant) = graph_sim(dir.path(), &[]);
    write_graph_config(dir.path(), &root, &tenant);
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("contoso (simulated)") && t.contains(&tenant),
        "{t}"
    );
    assert!(
        t.contains("contoso.com (default)") && t.contains("contoso.onmicrosoft.com (initial)"),
        "{t}"
    );
    assert!(t.contains("in scope:    150 users, 12 groups"), "{t}");

    let o = run_env(dir.path(), &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.state().users.len(), 150);
    assert_eq!(target.state().groups.len(), 12);
    // The source read is in the run history with what it cost.
    let o = run_env(dir.path(), &["runs", "--source", "entra"]);
    let t = text(&o);
    let read = t
        .lines()
        .find(|l| l.contains("source:entra"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        read.contains("requests 2") && read.contains("resource units 8"),
        "{read}"
    );

    // A wrong secret is exit code 4 with the reason.
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["source", "check", "entra"])
        .env("IDSYNC_TEST_GRAPH_SECRET", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o).contains("Invalid client secret"), "{}", text(&o));
}

#[test]
fn graph_source_check_names_missing_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root, tenant) = graph_sim(dir.path(), &["--grant", "User.Read.All"]);
    write_graph_config(dir.path(), &root, &tenant);
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains("missing:     grant admin consent for GroupMember.Read.All"),
        "{t}"
    );
    assert!(t.contains("granted:     User.Read.All"), "{t}");
}

pub(crate) const APP_CERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../idsync-sim/fixtures/app-cert.pem"
);

#[test]
fn graph_source_signs_in_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root, tenant) = graph_sim(dir.path(), &["--client-cert", APP_CERT]);
    write_graph_config_signing_in(
        dir.path(),
        &root,
        &tenant,
        &format!("client_certificate = \"{APP_CERT}\""),
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&tenant), "{t}");
    assert!(t.contains("in scope:    150 users"), "{t}");

    // A certificate file that is not there is a config error naming the key and the file.
    write_graph_config_signing_in(
        dir.path(),
        &root,
        &tenant,
        "client_certificate = \"missing.pem\"",
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("sources.entra.client_certificate"), "{t}");
    assert!(t.contains("missing.pem"), "{t}");

    // A PEM file without the private key is refused before any request, naming the file.
    let cert_only: String = std::fs::read_to_string(APP_CERT)
        .unwrap()
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .collect();
    std::fs::write(dir.path().join("cert-only.pem"), cert_only).unwrap();
    write_graph_config_signing_in(
        dir.path(),
        &root,
        &tenant,
        "client_certificate = \"cert-only.pem\"",
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("cert-only.pem") && t.contains("no private key"),
        "{t}"
    );
}
