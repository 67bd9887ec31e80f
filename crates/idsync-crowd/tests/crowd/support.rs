//! Users, groups and directories for the tests.

use idsync_core::{Email, Group, User};
use idsync_crowd::Directory;

pub fn user(key: &str, name: &str) -> (String, User) {
    let mut u = User::new(key, name);
    u.name.given_name = Some(format!("{name}-first"));
    u.name.family_name = Some(format!("{name}-last"));
    u.emails.push(Email {
        value: format!("{name}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    });
    (key.to_string(), u)
}

pub fn group(key: &str, name: &str) -> (String, Group) {
    (key.to_string(), Group::new(key, name))
}

pub fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// alice, Bob (inactive), carol; groups jira-users {alice, Bob}, Admins {alice}, empty.
pub fn small() -> Directory {
    let mut bob = user("k-bob", "Bob");
    bob.1.active = false;
    Directory::build(
        vec![user("k-alice", "alice"), bob, user("k-carol", "carol")],
        vec![
            group("g-users", "jira-users"),
            group("g-admins", "Admins"),
            group("g-empty", "empty"),
        ],
        vec![
            pair("g-users", "k-alice"),
            pair("g-users", "k-bob"),
            pair("g-admins", "k-alice"),
        ],
        Vec::new(),
    )
}
