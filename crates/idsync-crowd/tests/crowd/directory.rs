use crate::support::{group, pair, small, user};
use idsync_crowd::Directory;

fn names<T>(list: Option<Vec<&T>>, name: impl Fn(&T) -> &str) -> Vec<String> {
    list.unwrap()
        .into_iter()
        .map(|x| name(x).to_string())
        .collect()
}

#[test]
fn directory_finds_users_and_groups_without_regard_to_case() {
    let dir = small();
    assert_eq!(dir.user("ALICE").unwrap().name, "alice");
    assert_eq!(dir.user("bob").unwrap().name, "Bob");
    assert!(!dir.user("bob").unwrap().active);
    assert_eq!(dir.group("admins").unwrap().name, "Admins");
    assert!(dir.user("nobody").is_none());
    let order: Vec<&str> = dir.users().iter().map(|u| u.name.as_str()).collect();
    assert_eq!(order, ["alice", "Bob", "carol"]);
    assert_eq!(dir.membership_count(), 3);
}

#[test]
fn directory_answers_direct_and_nested_memberships_of_a_flat_directory() {
    let dir = small();
    let g = |x: &idsync_crowd::CrowdGroup| x.name.clone();
    let gs = |l: Option<Vec<&idsync_crowd::CrowdGroup>>| -> Vec<String> {
        l.unwrap().into_iter().map(g).collect()
    };
    assert_eq!(
        gs(dir.user_groups_direct("alice")),
        ["Admins", "jira-users"]
    );
    assert_eq!(
        gs(dir.user_groups_nested("ALICE")),
        ["Admins", "jira-users"]
    );
    assert!(gs(dir.user_groups_direct("carol")).is_empty());
    assert!(dir.user_groups_direct("nobody").is_none());
    assert_eq!(
        names(dir.group_users_nested("JIRA-users"), |u| &u.name),
        ["alice", "Bob"]
    );
    assert!(gs(dir.child_groups_nested("jira-users")).is_empty());
    assert!(gs(dir.parent_groups_direct("jira-users")).is_empty());
}

#[test]
fn directory_follows_child_groups_and_stops_at_cycles() {
    let dir = Directory::build(
        vec![user("u1", "one"), user("u2", "two"), user("u3", "three")],
        vec![group("a", "a"), group("b", "b"), group("c", "c")],
        vec![pair("a", "u1"), pair("b", "u2"), pair("c", "u3")],
        // a > b > c > a: a cycle.
        vec![pair("a", "b"), pair("b", "c"), pair("c", "a")],
    );
    assert_eq!(
        names(dir.group_users_nested("a"), |u| &u.name),
        ["one", "three", "two"]
    );
    assert_eq!(names(dir.child_groups_direct("a"), |g| &g.name), ["b"]);
    assert_eq!(
        names(dir.child_groups_nested("a"), |g| &g.name),
        ["a", "b", "c"]
    );
    assert_eq!(
        names(dir.user_groups_nested("one"), |g| &g.name),
        ["a", "b", "c"]
    );
    assert_eq!(names(dir.parent_groups_direct("a"), |g| &g.name), ["c"]);
}

#[test]
fn directory_serves_one_of_two_names_equal_but_for_case_and_says_so() {
    let dir = Directory::build(
        vec![user("k2", "Ann"), user("k1", "ann")],
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    assert_eq!(dir.users().len(), 1);
    assert_eq!(dir.user("ANN").unwrap().key, "k1");
    assert_eq!(dir.conflicts().len(), 1);
}
