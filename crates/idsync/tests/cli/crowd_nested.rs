//! Issue 17 (engineer A2): nested groups served by a crowd target. A file source with groups
//! nested three deep feeds a crowd target; `idsync serve` answers Crowd's nested resources with
//! the source's nesting (direct members, child and parent groups), `group/membership` lists the
//! child groups, and a change of nesting in the source reaches the event feed. With
//! `nested_groups = false` the target serves flat groups, as every other target has them.

use super::{free_port, run, serve, text};
use std::collections::BTreeSet;
use std::path::Path;

const USERS: &str = "sourceId,userName,givenName,familyName,email,active,groups
u1,ann,Ann,Lee,ann@example.com,true,g-backend
u2,bob,Bob,Ray,bob@example.com,true,g-eng
u3,carl,Carl,Oz,carl@example.com,true,g-jira
u4,dora,Dora,Fox,dora@example.com,true,g-ops
";
const GROUPS: &str = "sourceId,displayName,description
g-jira,jira-users,Everyone who uses Jira
g-eng,engineering,
g-backend,backend,
g-ops,operations,
";
/// jira-users > engineering > backend.
const NESTING: &str = "group,member,kind\ng-jira,g-eng,group\ng-eng,g-backend,group\n";
/// backend moves from engineering to operations.
const NESTING_MOVED: &str = "group,member,kind\ng-jira,g-eng,group\ng-ops,g-backend,group\n";

fn write_config(dir: &Path, target_extra: &str, nesting: &str) {
    std::fs::write(dir.join("users.csv"), USERS).unwrap();
    std::fs::write(dir.join("groups.csv"), GROUPS).unwrap();
    std::fs::write(dir.join("memberships.csv"), nesting).unwrap();
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"

[sources.hr]
type = "file"
format = "csv"
users = "users.csv"
groups = "groups.csv"
memberships = "memberships.csv"

[targets.dc]
type = "crowd"
{target_extra}

# The test runs the flow itself; serve's follower stays out of its way.
[flows.hr-to-dc]
source = "hr"
target = "dc"
enabled = false
"#
        ),
    )
    .unwrap();
}

struct Product {
    http: reqwest::blocking::Client,
    base: String,
    password: String,
}

impl Product {
    fn get(&self, resource: &str, accept: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}/{resource}", self.base))
            .basic_auth("jira", Some(&self.password))
            .header("Accept", accept)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn json(&self, resource: &str) -> serde_json::Value {
        let (status, body) = self.get(resource, "application/json");
        assert_eq!(status, 200, "GET {resource}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {resource}: {e}: {body}"))
    }

    /// The names of a list answer (`users` or `groups`).
    fn names(&self, resource: &str, list: &str) -> BTreeSet<String> {
        let v = self.json(resource);
        v[list]
            .as_array()
            .unwrap_or_else(|| panic!("GET {resource}: {v}"))
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// Sync, make the application `jira`, serve: the product.
fn start(dir: &Path) -> (super::Server, Product) {
    let o = run(dir, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(
        dir,
        &["crowd", "app", "create", "--target", "dc", "--name", "jira"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let password = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let port = free_port();
    let server = serve(dir, port, &[]);
    let product = Product {
        http: reqwest::blocking::Client::new(),
        base: format!("http://127.0.0.1:{port}/crowd/dc/rest/usermanagement/1"),
        password,
    };
    (server, product)
}

#[test]
fn crowd_target_serves_groups_nested_three_deep_and_their_changes_as_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "", NESTING);
    // The plan says what it nests, and why.
    let o = run(d, &["plan", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("nest 1 group(s) in group jira-users: groups nested in the source"),
        "{}",
        text(&o)
    );
    let (_server, jira) = start(d);

    // Child and parent groups, direct and nested.
    assert_eq!(
        jira.names("group/child-group/direct?groupname=jira-users", "groups"),
        set(&["engineering"])
    );
    assert_eq!(
        jira.names("group/child-group/direct?groupname=engineering", "groups"),
        set(&["backend"])
    );
    assert_eq!(
        jira.names("group/child-group/nested?groupname=jira-users", "groups"),
        set(&["engineering", "backend"])
    );
    assert_eq!(
        jira.names("group/parent-group/nested?groupname=backend", "groups"),
        set(&["engineering", "jira-users"])
    );
    // Users: direct where the source has them, nested through the groups.
    assert_eq!(
        jira.names("user/group/direct?username=ann", "groups"),
        set(&["backend"])
    );
    assert_eq!(
        jira.names("user/group/nested?username=ann", "groups"),
        set(&["backend", "engineering", "jira-users"])
    );
    assert_eq!(
        jira.names("user/group/nested?username=dora", "groups"),
        set(&["operations"])
    );
    assert_eq!(
        jira.names("group/user/direct?groupname=jira-users", "users"),
        set(&["carl"])
    );
    assert_eq!(
        jira.names("group/user/nested?groupname=jira-users", "users"),
        set(&["ann", "bob", "carl"])
    );
    // Every membership in one call names the child groups.
    let (status, xml) = jira.get("group/membership", "application/xml");
    assert_eq!(status, 200, "{xml}");
    let jira_users = xml
        .split("<membership ")
        .find(|m| m.contains("group=\"jira-users\""))
        .unwrap_or_else(|| panic!("{xml}"));
    assert!(
        jira_users.contains("<group name=\"engineering\"") && !jira_users.contains("\"ann\""),
        "{xml}"
    );

    // backend moves from engineering to operations in the source: the feed says so.
    let token = jira.json("event")["newEventToken"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(d.join("memberships.csv"), NESTING_MOVED).unwrap();
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let since = jira.json(&format!("event/{token}"));
    let events: Vec<(String, String, String)> = since["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{since}"))
        .iter()
        .filter_map(|e| e.get("groupMembershipEvent"))
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["parentGroups"]["groups"][0]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                e["group"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events.iter().cloned().collect::<BTreeSet<_>>(),
        [
            ("DELETED".into(), "engineering".into(), "backend".into()),
            ("CREATED".into(), "operations".into(), "backend".into())
        ]
        .into(),
        "{since}"
    );
    // And in XML, as the products' connector reads it.
    let (status, xml) = jira.get(&format!("event/{token}"), "application/xml");
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<groupMembershipEvent>"), "{xml}");
    // The directory follows.
    assert_eq!(
        jira.names("user/group/nested?username=ann", "groups"),
        set(&["backend", "operations"])
    );
    assert_eq!(
        jira.names("group/user/nested?groupname=jira-users", "users"),
        set(&["bob", "carl"])
    );
}

#[test]
fn crowd_target_with_nested_groups_off_serves_flat_groups() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "nested_groups = false", NESTING);
    let (_server, jira) = start(d);
    assert!(jira
        .names("group/child-group/direct?groupname=jira-users", "groups")
        .is_empty());
    assert_eq!(
        jira.names("group/user/direct?groupname=jira-users", "users"),
        set(&["ann", "bob", "carl"])
    );
    assert_eq!(
        jira.names("user/group/direct?username=ann", "groups"),
        set(&["backend", "engineering", "jira-users"])
    );
}

#[test]
fn crowd_target_looks_through_groups_the_rules_leave_out_and_keeps_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // engineering is left out by the flow's group rules; backend also contains jira-users
    // (a cycle: jira-users > engineering > backend > jira-users).
    write_config(d, "", &format!("{NESTING}g-backend,g-jira,group\n"));
    let toml = std::fs::read_to_string(d.join("idsync.toml")).unwrap();
    std::fs::write(
        d.join("idsync.toml"),
        format!("{toml}\n[flows.hr-to-dc.groups]\nexclude = [\"engineering\"]\n"),
    )
    .unwrap();
    let (_server, jira) = start(d);
    let (status, body) = jira.get("group?groupname=engineering", "application/json");
    assert_eq!(status, 404, "{body}");
    // backend hangs under jira-users in engineering's place, and bob (a direct member of
    // engineering) is a direct member of jira-users: nobody lost a group.
    assert_eq!(
        jira.names("group/child-group/direct?groupname=jira-users", "groups"),
        set(&["backend"])
    );
    assert_eq!(
        jira.names("group/user/direct?groupname=jira-users", "users"),
        set(&["bob", "carl"])
    );
    assert_eq!(
        jira.names("user/group/nested?username=bob", "groups"),
        set(&["backend", "jira-users"])
    );
    // The cycle is served as the source has it, and the nested queries end.
    assert_eq!(
        jira.names("group/child-group/direct?groupname=backend", "groups"),
        set(&["jira-users"])
    );
    assert!(jira
        .names("group/child-group/nested?groupname=backend", "groups")
        .contains("jira-users"));
    for user in ["ann", "bob", "carl"] {
        assert_eq!(
            jira.names(&format!("user/group/nested?username={user}"), "groups"),
            set(&["backend", "jira-users"]),
            "{user}"
        );
    }
}
