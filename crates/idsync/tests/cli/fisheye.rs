//! Fisheye/Crucible (issue 18, item 4) served by idsync's Crowd-compatible directory: a file
//! source feeds a `crowd` target, `idsync crowd app create` makes Fisheye's application,
//! `idsync serve` serves it, and the test sends what Fisheye's Crowd settings ask of a Crowd
//! server (its *Authentication* / *User directories* > *Atlassian Crowd* page): the connection
//! test, the list of groups to pick the synchronised ones from, the members of a synchronised
//! group (paged) and each member's details (auto-add), a user's groups (permissions), and a
//! sign-in, which idsync refuses (no passwords: an SSO app signs people in). Then the source
//! changes (a user disabled, one gone, one out of the group) and Fisheye's next periodic
//! synchronisation sees it. Fisheye has no Data Center REST API for its internal users that a
//! push target could use in this increment; this directory is how idsync serves it.

use super::{free_port, run, serve, text, wait_for};
use serde_json::{json, Value};
use std::path::Path;

const USERS: &str = "\
sourceId,userName,displayName,email,active,groups
id-alice,alice,Alice Archer,alice@example.com,true,g-fe
id-bob,bob,Bob Baker,bob@example.com,true,g-fe
id-carol,carol,Carol Clark,carol@example.com,true,g-fe;g-rev
id-dave,dave,Dave Dunn,dave@example.com,true,g-fe
id-eve,eve,Eve Evans,eve@example.com,true,g-rev
";

/// dave disabled, eve gone, bob out of fisheye-users.
const USERS_CHANGED: &str = "\
sourceId,userName,displayName,email,active,groups
id-alice,alice,Alice Archer,alice@example.com,true,g-fe
id-bob,bob,Bob Baker,bob@example.com,true,
id-carol,carol,Carol Clark,carol@example.com,true,g-fe;g-rev
id-dave,dave,Dave Dunn,dave@example.com,false,g-fe
";

fn write_source(dir: &Path, users: &str) {
    std::fs::write(dir.join("users.csv"), users).unwrap();
    std::fs::write(
        dir.join("groups.csv"),
        "sourceId,displayName,description\ng-fe,fisheye-users,Fisheye users\ng-rev,crucible-reviewers,\n",
    )
    .unwrap();
    std::fs::write(dir.join("memberships.csv"), "group,member,kind\n").unwrap();
}

fn sync(dir: &Path) {
    wait_for("idsync sync hr-to-fecru", || {
        let o = run(dir, &["sync", "hr-to-fecru"]);
        match o.status.code() {
            Some(0) => Some(()),
            Some(6) => None,
            _ => panic!("idsync sync failed: {}", text(&o)),
        }
    });
}

struct Fisheye {
    base: String,
    app: String,
    password: String,
    http: reqwest::blocking::Client,
}

impl Fisheye {
    fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/{path}", self.base))
            .basic_auth(&self.app, Some(&self.password))
            .header("Accept", "application/json")
            .send()
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().unwrap_or(Value::Null))
    }
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/{path}", self.base))
            .basic_auth(&self.app, Some(&self.password))
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().unwrap_or(Value::Null))
    }
    /// The periodic synchronisation of one group: its members, paged (2 a page here, to
    /// page at all), then each member's details (name, display name, email, active).
    fn synchronise(&self, group: &str) -> Vec<(String, String, String, bool)> {
        let mut names = Vec::new();
        let mut start = 0;
        loop {
            let (s, v) = self.get(&format!(
                "group/user/nested?groupname={group}&start-index={start}&max-results=2"
            ));
            assert_eq!(s, 200, "{v}");
            let page: Vec<String> = v["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["name"].as_str().unwrap().to_string())
                .collect();
            let n = page.len();
            names.extend(page);
            if n < 2 {
                break;
            }
            start += n;
        }
        let mut out: Vec<(String, String, String, bool)> = names
            .iter()
            .map(|n| {
                let (s, u) = self.get(&format!("user?username={n}&expand=attributes"));
                assert_eq!(s, 200, "{u}");
                (
                    u["name"].as_str().unwrap().to_string(),
                    u["display-name"].as_str().unwrap().to_string(),
                    u["email"].as_str().unwrap().to_string(),
                    u["active"].as_bool().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

#[test]
fn fisheye_reads_its_users_and_groups_from_a_crowd_target() {
    let dir = tempfile::tempdir().unwrap();
    write_source(dir.path(), USERS);
    std::fs::write(
        dir.path().join("idsync.toml"),
        "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.fecru]\ntype = \"crowd\"\ndescription = \"Fisheye/Crucible\"\n\n[flows.hr-to-fecru]\nsource = \"hr\"\ntarget = \"fecru\"\ndeprovision = \"delete\"\n",
    )
    .unwrap();
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    sync(dir.path());
    let o = run(
        dir.path(),
        &[
            "crowd", "app", "create", "--target", "fecru", "--name", "fisheye",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = out.lines();
    lines.find(|l| l.starts_with("application ")).unwrap();
    let password = lines.next().unwrap().trim().to_string();
    let port = free_port();
    let _server = serve(dir.path(), port, &[]);
    let fe = Fisheye {
        base: format!("http://127.0.0.1:{port}/crowd/fecru/rest/usermanagement/1"),
        app: "fisheye".into(),
        password,
        http: reqwest::blocking::Client::new(),
    };
    wait_for("the directory", || {
        (fe.get("config/cookie").0 == 200).then_some(())
    });

    // "Test settings": the application's name and password; a wrong password is refused.
    let wrong = Fisheye {
        base: fe.base.clone(),
        app: fe.app.clone(),
        password: "wrong".into(),
        http: reqwest::blocking::Client::new(),
    };
    assert_eq!(wrong.get("config/cookie").0, 401);

    // "Select the groups to synchronise": every group.
    let (s, v) = fe.get("search?entity-type=group&start-index=0&max-results=1000");
    assert_eq!(s, 200, "{v}");
    let mut groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, vec!["crucible-reviewers", "fisheye-users"]);

    // The periodic synchronisation of fisheye-users (auto-add takes these users).
    let who = |v: Vec<(String, String, String, bool)>| -> Vec<String> {
        v.into_iter()
            .map(|(n, d, e, a)| format!("{n}|{d}|{e}|{a}"))
            .collect()
    };
    assert_eq!(
        who(fe.synchronise("fisheye-users")),
        vec![
            "alice|Alice Archer|alice@example.com|true",
            "bob|Bob Baker|bob@example.com|true",
            "carol|Carol Clark|carol@example.com|true",
            "dave|Dave Dunn|dave@example.com|true",
        ]
    );
    // A user's groups, for Fisheye's and Crucible's permissions.
    let (s, v) = fe.get("user/group/nested?username=carol");
    assert_eq!(s, 200, "{v}");
    let mut of_carol: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    of_carol.sort();
    assert_eq!(of_carol, vec!["crucible-reviewers", "fisheye-users"]);
    // A sign-in with a password: idsync holds none; an SSO app for Fisheye signs people in.
    let (s, v) = fe.post("authentication?username=alice", json!({"value": "secret"}));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["reason"], "INVALID_USER_AUTHENTICATION", "{v}");

    // The source changes; Fisheye's next synchronisation sees it.
    write_source(dir.path(), USERS_CHANGED);
    sync(dir.path());
    wait_for("the change served", || {
        (fe.get("user?username=eve").0 == 404).then_some(())
    });
    assert_eq!(
        who(fe.synchronise("fisheye-users")),
        vec![
            "alice|Alice Archer|alice@example.com|true",
            "carol|Carol Clark|carol@example.com|true",
            "dave|Dave Dunn|dave@example.com|false",
        ],
        "bob left the group, dave is inactive"
    );
    let (s, v) = fe.get("user?username=eve");
    assert_eq!(
        (s, v["reason"].as_str()),
        (404, Some("USER_NOT_FOUND")),
        "{v}"
    );
}
