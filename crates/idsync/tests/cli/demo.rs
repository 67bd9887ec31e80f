//! `idsync demo`: the simulated tenant provisioned, and changes shown arriving.

use super::*;

#[test]
fn demo_provisions_the_simulated_tenant_and_shows_changes_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let o = idsync()
        .args([
            "demo",
            "--users",
            "120",
            "--groups",
            "8",
            "--memberships",
            "300",
            "--port",
            "0",
            "--exit",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("Atlassian Cloud now has 120 users and 8 groups"),
        "{t}"
    );
    for what in [
        "new title",
        "disabled",
        "newcomer created",
        "newcomer in the group",
    ] {
        assert!(t.contains(&format!(": {what}")), "{what}: {t}");
    }
}

#[test]
fn demo_provisions_the_simulated_jira_and_shows_changes_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let o = idsync()
        .args([
            "demo",
            "--target",
            "jira",
            "--users",
            "60",
            "--groups",
            "5",
            "--memberships",
            "150",
            "--exit",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("simulated Jira Data Center 9.12.2 at https://127.0.0.1:"),
        "{t}"
    );
    assert!(t.contains("succeeded in"), "{t}");
    assert!(
        t.contains(" 0 failed; the simulated Jira now has 61 users"),
        "{t}"
    );
    for what in [
        "new title in the user property",
        "disabled",
        "newcomer created",
        "newcomer in the group",
    ] {
        assert!(
            t.contains("arrived in Jira after") && t.contains(&format!(": {what}\n")),
            "{what}: {t}"
        );
    }
}
