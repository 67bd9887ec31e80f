//! Issue 16, item 4: a group is created with its first members, and services with stricter
//! rules (members required in a group's create, a sub-attribute refused) are learned. Against
//! scim2-server in its quirk modes (`requires-members`, `refuses-sub-attributes`) and the test
//! target's switches of the same names, through the binary.

use super::{run, write_people_csv};
use idsync_connectors::targets::test::TestTarget;
use idsync_connectors::testkit::peers::scim2_server_quirky;
use serde_json::Value;
use std::path::Path;

const TOKEN: &str = "members-token";

fn scim_config(dir: &Path, url: &str, target_extra: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\n{target_extra}\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
}

fn test_config(dir: &Path, target_extra: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\n{target_extra}\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
}

/// The service's resources of one endpoint.
fn list(url: &str, endpoint: &str) -> Vec<Value> {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{url}/{endpoint}"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["Resources"].as_array().cloned().unwrap_or_default()
}

/// Group displayName -> the userNames of its members, in the service.
fn groups_by_name(url: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let names: std::collections::HashMap<String, String> = list(url, "Users")
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_string(),
                u["userName"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    list(url, "Groups")
        .iter()
        .map(|g| {
            let mut members: Vec<String> = g["members"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|m| names[m["value"].as_str().unwrap()].clone())
                .collect();
            members.sort();
            (g["displayName"].as_str().unwrap().to_string(), members)
        })
        .collect()
}

fn sync(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = run(dir, args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn add_user_in_new_group(dir: &Path) {
    let mut users = std::fs::read_to_string(dir.join("users.csv")).unwrap();
    users.push_str("id-000099,new99@example.com,New,Person,new99@example.com,Dept 9,g-ops\n");
    std::fs::write(dir.join("users.csv"), users).unwrap();
    let mut groups = std::fs::read_to_string(dir.join("groups.csv")).unwrap();
    groups.push_str("g-ops,operations,\n");
    std::fs::write(dir.join("groups.csv"), groups).unwrap();
}

/// A service that requires members when a group is created (scim2-server refusing a group
/// POST without members with a 400 naming them), set `members_in_create = false`: the first
/// create is refused, learned, and sent again with the members at once; the run succeeds with
/// every group and its members, the log says once what was learned, and later runs (new
/// processes) create new groups with their members from the start without learning again.
#[test]
fn a_service_that_requires_members_is_learned_and_sent_them_in_the_create() {
    let peer = scim2_server_quirky(TOKEN, &["requires-members"], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    scim_config(dir.path(), &peer.url, "members_in_create = false\n");

    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        err.matches("target request form learned: create-group is sent as post-with-members")
            .count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("members is required"), "{err}");
    // Six users and two groups created with their members: no member additions planned.
    assert!(
        out.contains("(8 planned, 8 applied, 0 failed"),
        "{out}{err}"
    );
    let groups = groups_by_name(&peer.url);
    assert_eq!(groups["everyone"].len(), 6, "{groups:?}");
    assert_eq!(
        groups["engineering"],
        ["user0@example.com", "user3@example.com"],
        "{groups:?}"
    );

    add_user_in_new_group(dir.path());
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!err.contains("form learned"), "remembered: {err}");
    assert_eq!(
        groups_by_name(&peer.url)["operations"],
        ["new99@example.com"]
    );
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(0 planned"), "{out}{err}");
}

/// By default a group's first members go in its POST: against a service that requires them
/// there, nothing is refused or learned, and one request creates each group with its members
/// (the plan says so; no member addition follows).
#[test]
fn first_members_go_in_the_group_post_by_default() {
    let peer = scim2_server_quirky(TOKEN, &["requires-members"], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 4);
    scim_config(dir.path(), &peer.url, "");
    let (code, out, err) = sync(dir.path(), &["plan", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("create group everyone with 4 member(s)"),
        "{out}"
    );
    assert!(!out.contains("add 4 member(s)"), "{out}");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!err.contains("learned"), "{err}");
    assert!(
        out.contains("(6 planned, 6 applied, 0 failed"),
        "{out}{err}"
    );
    assert_eq!(groups_by_name(&peer.url)["everyone"].len(), 4);
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(0 planned"), "{out}{err}");
}

/// A service that drops the members sent in a group's POST and answers `"members": []` (as
/// django-scim2 does): what it answered is checked and the missing members are added right
/// after, so the groups have every member and a reconcile finds nothing to repair. A service
/// that keeps them but answers without the attribute has the group read back, and is not sent
/// them twice.
#[test]
fn members_a_service_drops_from_the_create_are_added_right_after() {
    for quirk in ["drops-members-on-create", "answers-without-members"] {
        let peer = scim2_server_quirky(TOKEN, &[quirk], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_people_csv(dir.path(), 6);
        scim_config(dir.path(), &peer.url, "");
        let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
        assert_eq!(code, Some(0), "{quirk}: {out}{err}");
        assert!(
            out.contains("(8 planned, 8 applied, 0 failed"),
            "{quirk}: {out}{err}"
        );
        let groups = groups_by_name(&peer.url);
        assert_eq!(groups["everyone"].len(), 6, "{quirk}: {groups:?}");
        assert_eq!(
            groups["engineering"],
            ["user0@example.com", "user3@example.com"],
            "{quirk}: {groups:?}"
        );
        let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
        assert_eq!(code, Some(0), "{quirk}: {out}{err}");
        assert!(out.contains("(0 planned"), "{quirk}: {out}{err}");
    }
}

/// scim2-server refusing `emails[].primary` (a 400 naming it), or a configured
/// sub-attribute (`emails.type`), in every request to `/Users`: learned from the first refusal,
/// left out of every later request, remembered, and a reconcile converges.
#[test]
fn a_refused_sub_attribute_of_a_real_service_is_learned() {
    for (quirk, attribute) in [
        ("refuses-sub-attributes", "primary"),
        ("refuses=emails.type", "type"),
    ] {
        let peer = scim2_server_quirky(TOKEN, &[quirk], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_people_csv(dir.path(), 4);
        scim_config(dir.path(), &peer.url, "");
        let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
        assert_eq!(code, Some(0), "{quirk}: {out}{err}");
        let learned =
            format!("target attribute learned: emails.{attribute} is refused and no longer sent");
        assert_eq!(err.matches(&learned).count(), 1, "{quirk}: {err}");
        let users = list(&peer.url, "Users");
        assert_eq!(users.len(), 4);
        for u in &users {
            assert!(u["emails"][0].get(attribute).is_none(), "{quirk}: {u}");
            assert!(u["emails"][0]["value"].is_string(), "{quirk}: {u}");
        }
        for _ in 0..2 {
            let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
            assert_eq!(code, Some(0), "{quirk}: {out}{err}");
            assert!(!err.contains("learned"), "{quirk}: {err}");
        }
        let (_, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
        assert!(out.contains("(0 planned"), "{quirk}: {out}{err}");
    }
}

/// The test target's `requires_members_on_create`: a group create without members is refused
/// with a 400 naming members, which is learned; the run fails for those groups with that
/// message, and the next run creates them with their first members, after the users.
#[test]
fn test_target_requiring_members_is_learned_and_then_given_them() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    test_config(dir.path(), "requires_members_on_create = true\n");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("target request form learned: create-group is sent as post-with-members"),
        "{err}"
    );
    assert!(
        format!("{out}{err}").contains("members is required"),
        "{out}{err}"
    );
    let journal = dir.path().join("target.jsonl");
    assert!(TestTarget::read_journal(&journal)
        .unwrap()
        .state()
        .groups
        .is_empty());

    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!err.contains("learned"), "{err}");
    // The two groups, each created with its members: nothing else left to do.
    assert!(
        out.contains("(2 planned, 2 applied, 0 failed"),
        "{out}{err}"
    );
    let state = TestTarget::read_journal(&journal).unwrap().state();
    let mut sizes: Vec<usize> = state.groups.iter().map(|g| g.members.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [2, 6], "{state:?}");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(0 planned"), "{out}{err}");
}

/// The test target's `members_in_create = true`: groups are created with their members in one
/// operation after the users, recorded as members (a reconcile finds nothing to add), and the
/// provisioning log says which members went with the create.
#[test]
fn test_target_taking_members_in_create_records_them() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 3);
    test_config(
        dir.path(),
        "members_in_create = true\nrequires_members_on_create = true\n",
    );
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("(5 planned, 5 applied, 0 failed"),
        "{out}{err}"
    );
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(0 planned"), "{out}{err}");
    let (_, runs, _) = sync(dir.path(), &["runs", "--json"]);
    let runs: Value = serde_json::from_str(&runs).unwrap();
    let first = runs.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, log, err) = sync(dir.path(), &["log", &first]);
    assert!(
        log.contains("created with its first members: user0@example.com"),
        "{log}{err}"
    );
}

/// The test target's `refuse_attributes`: a refused attribute is learned from its first
/// refusal (said once), never sent again (remembered by later runs), and not compared.
#[test]
fn test_target_refusing_an_attribute_is_learned_and_remembered() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 4);
    test_config(dir.path(), "refuse_attributes = [\"emails.primary\"]\n");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        err.matches("target attribute learned: emails.primary is refused and no longer sent")
            .count(),
        1,
        "{err}"
    );
    let state = TestTarget::read_journal(&dir.path().join("target.jsonl"))
        .unwrap()
        .state();
    assert_eq!(state.users.len(), 4);
    assert!(state
        .users
        .iter()
        .all(|u| u.user.emails.iter().all(|e| !e.primary)));
    for _ in 0..2 {
        let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("(0 planned"), "{out}{err}");
        assert!(!err.contains("learned"), "{err}");
    }
    // A refusal of what may not be learned away fails the object with the service's words.
    test_config(dir.path(), "refuse_attributes = [\"emails\"]\n");
    let mut users = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    users.push_str("id-000077,u77@example.com,U,S,u77@example.com,Dept 1,g-all\n");
    std::fs::write(dir.path().join("users.csv"), users).unwrap();
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        format!("{out}{err}").contains("Attribute emails is not supported"),
        "{out}{err}"
    );
}

/// A member whose user could not be created is left out of its group's create (the group is
/// created with the others, and counted created), logged as a member not added, and added by
/// the run after its user is created.
#[test]
fn a_member_not_provisioned_is_left_out_of_the_create_and_added_later() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    test_config(
        dir.path(),
        "members_in_create = true\nreject_user_names = [\"^user1@\"]\n",
    );
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("(8 planned, 7 applied, 1 failed"),
        "{out}{err}"
    );
    assert!(
        err.contains("member is not provisioned in the target") && err.contains("user1"),
        "{err}"
    );
    let journal = dir.path().join("target.jsonl");
    let everyone = |n: usize| {
        let state = TestTarget::read_journal(&journal).unwrap().state();
        let g = state
            .groups
            .iter()
            .find(|g| g.group.display_name == "everyone")
            .unwrap();
        assert_eq!(g.members.len(), n, "{state:?}");
    };
    everyone(5);
    test_config(dir.path(), "members_in_create = true\n");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("(2 planned, 2 applied, 0 failed"),
        "{out}{err}"
    );
    everyone(6);
    let (_, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert!(out.contains("(0 planned"), "{out}{err}");
}

/// A service that refuses members in a group's create (a 400 naming them): the run fails with
/// the service's words and the setting that helps; with `members_in_create = false` the groups
/// are created and their members added right after.
#[test]
fn a_service_refusing_members_in_the_create_is_told_to_by_the_setting() {
    let peer = scim2_server_quirky(TOKEN, &["refuses-members-on-create"], &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 4);
    scim_config(dir.path(), &peer.url, "");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("members cannot be set when a group is created")
            && err.contains("set members_in_create = false on the target"),
        "{out}{err}"
    );
    scim_config(dir.path(), &peer.url, "members_in_create = false\n");
    let (code, out, err) = sync(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(groups_by_name(&peer.url)["everyone"].len(), 4);
    let (_, out, err) = sync(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert!(out.contains("(0 planned"), "{out}{err}");
}
