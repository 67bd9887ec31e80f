//! idsync.toml loading and checking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "config/checks.rs"]
mod checks;

use idsync_config::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "config/server.rs"]
mod server;
#[path = "config/sso.rs"]
mod sso;

const GOOD: &str = r#"
[sources.hr]
type = "file"
path = "people.json"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.hr-to-app]
source = "hr"
target = "app"
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new("/etc/idsync/idsync.toml")) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e.0,
    }
}

fn one(text: &str) -> ConfigError {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.remove(0)
}

#[test]
fn defaults_and_relative_paths() {
    let c = parse(GOOD, Path::new("/etc/idsync/idsync.toml")).unwrap();
    assert_eq!(c.store.path, PathBuf::from("/etc/idsync/idsync.db"));
    assert_eq!(c.store.retention_days, 30);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert!(c.server.admin_token.is_none());
    assert_eq!(c.log.level, "info");
    let SourceKind::File(f) = &c.sources["hr"].kind else {
        panic!("hr is a file source");
    };
    assert_eq!(f.format, FileFormat::Json);
    assert_eq!(
        f.path.as_deref(),
        Some(Path::new("/etc/idsync/people.json"))
    );
    assert_eq!(c.sources["hr"].directory, "hr");
    let TargetKind::Test(t) = &c.targets["app"].kind else {
        panic!("app is a test target");
    };
    assert_eq!(t.journal, PathBuf::from("/etc/idsync/t.jsonl"));
    let f = &c.flows["hr-to-app"];
    assert_eq!(f.directory, "hr");
    assert_eq!(
        (f.member_batch, f.concurrency, f.max_retries, f.enabled),
        (100, 8, 5, true)
    );
    assert_eq!(f.plan_options(), idsync_core::PlanOptions::default());
}

#[test]
fn the_example_file_loads() {
    std::env::set_var("IDSYNC_ADMIN_TOKEN", "example-token");
    std::env::set_var("ATLASSIAN_SCIM_TOKEN", "atlassian-api-key");
    std::env::set_var("JIRA_TOKEN", "jira-pat");
    std::env::set_var("GRAPH_CLIENT_SECRET", "graph-secret");
    std::env::set_var("SMTP_PASSWORD", "smtp-password");
    std::env::set_var("WEBHOOK_SECRET", "webhook-secret");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("idsync.example.toml");
    let c = load(&path).unwrap();
    assert_eq!(c.sources.len(), 5);
    assert!(matches!(
        &c.sources["customers"].kind,
        idsync_config::SourceKind::Login(l) if l.graph.as_deref() == Some("entra-graph")
    ));
    assert_eq!(
        c.sources["entra-graph"].login_wait,
        std::time::Duration::from_secs(5)
    );
    let TargetKind::Jira(j) = &c.targets["jira"].kind else {
        panic!("jira is a jira target");
    };
    assert_eq!(j.property_key, "idsync");
    assert_eq!(j.deactivation, idsync_config::JiraDeactivation::Auto);
    assert!(matches!(&j.auth, idsync_config::JiraAuth::Token(t) if t.expose() == "jira-pat"));
    assert_eq!(
        c.flows["hr-to-app"].deletion_threshold,
        idsync_core::DeletionThreshold {
            count: Some(500),
            percent: Some(10.0)
        }
    );
    assert_eq!(
        c.flows["entra-to-atlassian"].deletion_threshold,
        idsync_core::DeletionThreshold::default()
    );
    let m = &c.flows["hr-to-app"].memberships;
    assert!(!m.keep);
    assert!(
        m.keep_in.len() == 1
            && m.keep_in[0].matches("jira-users")
            && !m.keep_in[0].matches("confluence-users")
    );
    let SourceKind::MsGraph(g) = &c.sources["entra-graph"].kind else {
        panic!("entra-graph is a msgraph source");
    };
    let GraphCredential::Secret(secret) = &g.credential else {
        panic!("the example signs in with a secret");
    };
    assert_eq!(secret.expose(), "graph-secret");
    assert_eq!(
        (g.scope.clone(), g.delta, g.b2c, g.budget),
        (MsGraphScope::All, true, false, 3000)
    );
    assert_eq!(g.group_filter.as_deref(), Some("^(jira|confluence)-"));
    let TargetKind::Scim(atl) = &c.targets["atlassian"].kind else {
        panic!("atlassian is a scim target");
    };
    assert_eq!(atl.profile, ScimProfile::AtlassianCloud);
    assert_eq!(atl.token.expose(), "atlassian-api-key");
    assert_eq!(atl.user_match, vec![UserMatch::Email, UserMatch::UserName]);
    assert_eq!(c.targets["atlassian"].max_rate, 10.0);
    assert_eq!(c.flows["entra-to-atlassian"].directory, "entra");
    assert_eq!(c.sources["contractors"].directory, "contractors");
    assert_eq!(c.sources["hr"].interval, Some(Duration::from_secs(900)));
    assert_eq!(
        c.flows["hr-to-app"].full_reconcile_interval,
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        c.server.admin_token.as_ref().unwrap().expose(),
        "example-token"
    );
}

#[test]
fn graph_source_errors_name_their_keys() {
    let text = "[sources.g]\ntype = \"msgraph\"\nclient_id = \"x\"\nclient_secret = \"s\"\nscope = \"groups\"\ngroup_filter = \"(\"\nuser_name = \"nickname\"\ntenant_type = \"b2c\"\ndelta = true\ncloud = \"mars\"\n";
    let e = errors(text);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    for k in [
        "sources.g.tenant",
        "sources.g.groups",
        "sources.g.group_filter",
        "sources.g.user_name",
        "sources.g.delta",
        "sources.g.cloud",
    ] {
        assert!(keys.contains(&k), "{k} missing in {keys:?}");
    }
    let delta = e.iter().find(|e| e.key == "sources.g.delta").unwrap();
    assert_eq!(delta.line, 9);
    assert!(delta.message.contains("no delta"), "{delta}");
}

#[test]
fn graph_source_takes_a_secret_or_a_certificate_never_both_nor_neither() {
    let base = "[sources.g]\ntype = \"msgraph\"\ntenant = \"t\"\nclient_id = \"x\"\n";
    let neither = one(base);
    assert_eq!(neither.key, "sources.g.client_secret");
    assert!(neither.message.contains("client_certificate"), "{neither}");
    let both = one(&format!(
        "{base}client_secret = \"s\"\nclient_certificate = \"/etc/hostname\"\n"
    ));
    assert_eq!(both.key, "sources.g.client_certificate");
    assert!(both.message.contains("not both"), "{both}");
    let unreadable = one(&format!(
        "{base}client_certificate = \"/nonexistent/app.pem\"\n"
    ));
    assert_eq!(unreadable.key, "sources.g.client_certificate");
    assert_eq!(unreadable.line, 5);
    assert!(
        unreadable.message.contains("/nonexistent/app.pem"),
        "{unreadable}"
    );
    let key_alone = errors(&format!(
        "{base}client_secret = \"s\"\nclient_certificate_key = \"/etc/hostname\"\n"
    ));
    assert!(
        key_alone
            .iter()
            .any(|e| e.key == "sources.g.client_certificate_key"),
        "{key_alone:?}"
    );
}

#[test]
fn deletion_threshold_errors_name_their_keys() {
    let text = GOOD.replace(
        "target = \"app\"\n",
        "target = \"app\"\ndeletion_threshold = -1\ndeletion_threshold_percent = 150\n",
    );
    let e = errors(&text);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert!(
        keys.contains(&"flows.hr-to-app.deletion_threshold"),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"flows.hr-to-app.deletion_threshold_percent"),
        "{keys:?}"
    );
}

#[test]
fn notification_errors_name_their_keys() {
    let text = format!("{GOOD}\n[notifications]\nemail_to = [\"a@example.com\"]\nwebhook_url = \"ftp://x\"\nevents = [\"held\", \"sunny\"]\n");
    let e = errors(&text);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    for k in [
        "notifications.smtp_url",
        "notifications.email_from",
        "notifications.webhook_url",
        "notifications.events[1]",
    ] {
        assert!(keys.contains(&k), "{k} missing in {keys:?}");
    }
    let ok = format!("{GOOD}\n[notifications]\nemail_to = [\"a@example.com\"]\nemail_from = \"idsync@example.com\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nevents = [\"held\"]\n");
    let c = parse(&ok, Path::new("/etc/idsync/idsync.toml")).unwrap();
    assert_eq!(c.notifications.events, vec![NotifyEvent::Held]);
    assert_eq!(c.notifications.email_to, vec!["a@example.com".to_string()]);
}

#[test]
fn scope_errors_name_their_clauses() {
    let text = format!("{GOOD}\n[[flows.hr-to-app.scope]]\nclauses = [\n  {{ attribute = \"department\", operator = \"resembles\", value = \"x\" }},\n  {{ attribute = \"mail\", operator = \"regex_match\", value = \"(\" }},\n  {{ attribute = \"title\", operator = \"in\" }},\n]\n");
    let e = errors(&text);
    let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "flows.hr-to-app.scope[0].clauses[0]",
            "flows.hr-to-app.scope[0].clauses[1]",
            "flows.hr-to-app.scope[0].clauses[2]"
        ]
    );
    assert!(
        e[0].message.contains("\"resembles\" is not an operator"),
        "{}",
        e[0]
    );
    assert!(
        e[1].message.contains("not a regular expression"),
        "{}",
        e[1]
    );
    assert!(e[2].message.contains("in needs values"), "{}", e[2]);
    let good = format!("{GOOD}\n[[flows.hr-to-app.scope]]\nclauses = [{{ attribute = \"department\", operator = \"equals\", value = \"Sales\" }}]\n[[flows.hr-to-app.scope]]\nclauses = [{{ attribute = \"level\", operator = \"greater_than\", value = 3 }}]\n");
    let c = parse(&good, Path::new("/etc/idsync/idsync.toml")).unwrap();
    assert_eq!(c.flows["hr-to-app"].scope.groups.len(), 2);
}

#[test]
fn delete_after_needs_its_grace_period() {
    let e = one(&GOOD.replace(
        "target = \"app\"\n",
        "target = \"app\"\ndeprovision = \"delete_after\"\n",
    ));
    assert_eq!(e.key, "flows.hr-to-app.delete_after_days");
    let c = parse(
        &GOOD.replace(
            "target = \"app\"\n",
            "target = \"app\"\ndeprovision = \"delete_after\"\ndelete_after_days = 14\n",
        ),
        Path::new("/etc/idsync/idsync.toml"),
    )
    .unwrap();
    assert_eq!(
        c.flows["hr-to-app"].deprovision,
        idsync_core::DeprovisionAction::DeleteAfter { days: 14 }
    );
}

#[test]
fn syntax_error_has_its_line() {
    let e = one("[store]\npath = \"a.db\"\nretention_days = = 3\n");
    assert_eq!(e.line, 3);
    assert!(e.message.starts_with("invalid TOML"), "{e}");
    assert!(
        e.to_string().starts_with("/etc/idsync/idsync.toml:3:"),
        "{e}"
    );
}

#[test]
fn unknown_keys_everywhere_with_lines() {
    let text = format!("colour = 1\n{GOOD}\n[store]\nsize = 3\n")
        .replace("journal = \"t.jsonl\"", "journal = \"t.jsonl\"\nspeed = 9")
        .replace("target = \"app\"\n", "target = \"app\"\nschedule = \"x\"\n");
    let e = errors(&text);
    let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, "colour"),
            (10, "targets.app.speed"),
            (15, "flows.hr-to-app.schedule"),
            (18, "store.size")
        ]
    );
    assert!(
        e[0].message.contains(
            "expected one of: store, server, log, notifications, sources, targets, flows"
        ),
        "{}",
        e[0]
    );
}

#[test]
fn wrong_types_bad_enums_bad_durations_ranges() {
    let text = GOOD.replace("target = \"app\"\n", "target = \"app\"\nconcurrency = \"eight\"\ndeprovision = \"shred\"\nfull_reconcile_interval = \"soon\"\nmember_batch = 5000\nenabled = \"yes\"\n");
    let e = errors(&text);
    let by_key = |k: &str| {
        e.iter()
            .find(|e| e.key == k)
            .unwrap_or_else(|| panic!("no error for {k}: {e:#?}"))
    };
    assert!(by_key("flows.hr-to-app.concurrency")
        .message
        .contains("expected an integer, found string"));
    assert!(by_key("flows.hr-to-app.deprovision")
        .message
        .contains("\"shred\" is not one of: disable, delete"));
    assert!(by_key("flows.hr-to-app.full_reconcile_interval")
        .message
        .contains("not a duration"));
    assert!(by_key("flows.hr-to-app.member_batch")
        .message
        .contains("out of range (1 to 1000)"));
    assert!(by_key("flows.hr-to-app.enabled")
        .message
        .contains("expected true or false"));
    assert_eq!(e.len(), 5);
    assert_eq!(by_key("flows.hr-to-app.deprovision").line, 14);
}

#[test]
fn dangling_references_list_what_exists() {
    let e = one(&GOOD.replace("source = \"hr\"", "source = \"payroll\""));
    assert_eq!(e.key, "flows.hr-to-app.source");
    assert!(
        e.message
            .contains("no source named \"payroll\" (declared: hr)"),
        "{e}"
    );
    assert_eq!(e.line, 11);
}

#[test]
fn bad_regex_names_its_index() {
    let e = one(&GOOD.replace(
        "journal = \"t.jsonl\"",
        "journal = \"t.jsonl\"\nreject_user_names = [\"ok\", \"(unclosed\"]",
    ));
    assert_eq!(e.key, "targets.app.reject_user_names[1]");
    assert!(e.message.contains("invalid regular expression"), "{e}");
}

#[test]
fn missing_required_keys_and_bad_names() {
    let e = errors("[sources.hr]\npath = \"x.json\"\n\n[flows.Bad_Name]\nsource = \"hr\"\ntarget = \"x\"\n\n[targets.t]\ntype = \"test\"\n");
    let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (1, "sources.hr.type"),
            (4, "flows.Bad_Name"),
            (8, "targets.t.journal")
        ]
    );
}

#[test]
fn secrets_resolve_and_never_print() {
    std::env::set_var("IDSYNC_TEST_SECRET_A", "hunter2");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.txt"), "from-a-file\n").unwrap();
    let cfg = dir.path().join("idsync.toml");
    std::fs::write(
        &cfg,
        format!("{GOOD}\n[server]\nadmin_token = \"${{env:IDSYNC_TEST_SECRET_A}}\"\n"),
    )
    .unwrap();
    let c = load(&cfg).unwrap();
    let token = c.server.admin_token.clone().unwrap();
    assert_eq!(token.expose(), "hunter2");
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "Debug of the config leaks the secret"
    );
    assert_eq!(token.to_string(), "***");
    std::fs::write(
        &cfg,
        format!("{GOOD}\n[server]\nadmin_token = \"${{file:token.txt}}\"\n"),
    )
    .unwrap();
    assert_eq!(
        load(&cfg).unwrap().server.admin_token.unwrap().expose(),
        "from-a-file"
    );
}

#[test]
fn unresolvable_secrets_are_errors_at_their_key() {
    std::env::remove_var("IDSYNC_TEST_NOT_SET");
    let e = errors(&format!("{GOOD}\n[server]\nadmin_token = \"${{env:IDSYNC_TEST_NOT_SET}}\"\nlisten = \"${{file:/nonexistent/secret}}\"\n"));
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].key, "server.admin_token");
    assert!(e[0]
        .message
        .contains("environment variable IDSYNC_TEST_NOT_SET is not set"));
    assert!(e[1]
        .message
        .contains("cannot read secret file /nonexistent/secret"));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("5 minutes").is_err());
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let e = load(Path::new("/nonexistent/idsync.toml")).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/idsync.toml") && e.to_string().contains("cannot read")
    );
}

#[test]
fn the_test_targets_fail_every_names_its_kind_and_status() {
    let ok = parse(
        &GOOD.replace(
            "journal = \"t.jsonl\"",
            "journal = \"t.jsonl\"\nfail_every = { create_user = \"500 not supported\", add_members = \"405\" }",
        ),
        Path::new("/etc/idsync/idsync.toml"),
    )
    .unwrap();
    let TargetKind::Test(t) = &ok.targets["app"].kind else {
        panic!("a test target");
    };
    let mut got = t.fail_every.clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("add_members".to_string(), 405, String::new()),
            ("create_user".to_string(), 500, "not supported".to_string()),
        ]
    );
    let e = one(&GOOD.replace(
        "journal = \"t.jsonl\"",
        "journal = \"t.jsonl\"\nfail_every = { make_coffee = \"500 x\" }",
    ));
    assert_eq!(e.key, "targets.app.fail_every.make_coffee");
    assert!(e.message.contains("create_user"), "{e}");
    let e = one(&GOOD.replace(
        "journal = \"t.jsonl\"",
        "journal = \"t.jsonl\"\nfail_every = { create_user = \"200 fine\" }",
    ));
    assert_eq!(e.key, "targets.app.fail_every.create_user");
    assert!(e.message.contains("400 to 599"), "{e}");
}

#[test]
fn members_in_create_and_the_test_targets_refusals() {
    let ok = parse(
        &GOOD.replace(
            "journal = \"t.jsonl\"",
            "journal = \"t.jsonl\"\nrefuse_attributes = [\"emails.primary\"]\nmembers_in_create = true\nrequires_members_on_create = true",
        ),
        Path::new("/etc/idsync/idsync.toml"),
    )
    .unwrap();
    let TargetKind::Test(t) = &ok.targets["app"].kind else {
        panic!("a test target");
    };
    assert_eq!(t.refuse_attributes, ["emails.primary"]);
    assert!(t.members_in_create && t.requires_members_on_create);
    let e = one(&GOOD.replace(
        "journal = \"t.jsonl\"",
        "journal = \"t.jsonl\"\nrefuse_attributes = [\"userNam\"]",
    ));
    assert_eq!(e.key, "targets.app.refuse_attributes[0]");
    assert!(e.message.contains("unknown attribute \"userNam\""), "{e}");
    let e = one(&GOOD.replace(
        "journal = \"t.jsonl\"",
        "journal = \"t.jsonl\"\nmembers_in_create = \"yes\"",
    ));
    assert_eq!(e.key, "targets.app.members_in_create");
    // A SCIM target sends a group's first members in its POST unless told not to.
    let scim = |extra: &str| {
        let text = GOOD.replace(
            "type = \"test\"\njournal = \"t.jsonl\"",
            &format!("type = \"scim\"\nurl = \"https://app.example.com/scim/v2\"\ntoken = \"t\"\n{extra}"),
        );
        match parse(&text, Path::new("/etc/idsync/idsync.toml"))
            .unwrap()
            .targets["app"]
            .kind
        {
            TargetKind::Scim(ref c) => c.members_in_create,
            _ => panic!("a SCIM target"),
        }
    };
    assert!(scim(""));
    assert!(!scim("members_in_create = false"));
}
