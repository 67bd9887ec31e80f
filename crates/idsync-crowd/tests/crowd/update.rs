//! The served directory follows the ledger in place (issue 17): for random ledgers and random
//! change sequences, the updated directory answers every query as one built from scratch.

use idsync_core::{Group, User};
use idsync_crowd::directory::{Change, NeedsRebuild};
use idsync_crowd::restriction::parse_query;
use idsync_crowd::Directory;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The ledger, as the store keeps it: no membership of a user or group it does not hold.
#[derive(Debug, Default, Clone)]
struct Ledger {
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, Group>,
    members: BTreeSet<(String, String)>,
}

impl Ledger {
    fn build(&self) -> Directory {
        Directory::build(
            self.users
                .iter()
                .map(|(k, u)| (k.clone(), u.clone()))
                .collect(),
            self.groups
                .iter()
                .map(|(k, g)| (k.clone(), g.clone()))
                .collect(),
            self.members.iter().cloned().collect(),
            Vec::new(),
        )
    }

    fn user_name_taken(&self, key: &str, name: &str) -> bool {
        self.users
            .iter()
            .any(|(k, u)| k != key && u.user_name.to_lowercase() == name.to_lowercase())
    }

    fn group_name_taken(&self, key: &str, name: &str) -> bool {
        self.groups
            .iter()
            .any(|(k, g)| k != key && g.display_name.to_lowercase() == name.to_lowercase())
    }
}

#[derive(Debug, Clone)]
enum Op {
    PutUser {
        k: u8,
        name: u8,
        upper: bool,
        active: bool,
        manager: Option<u8>,
        title: Option<u8>,
    },
    DeleteUser(u8),
    PutGroup {
        k: u8,
        name: u8,
        upper: bool,
        description: u8,
        recreate: bool,
    },
    DeleteGroup(u8),
    Member {
        g: u8,
        u: u8,
        add: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..14u8, 0..20u8, any::<bool>(), any::<bool>(), proptest::option::of(0..14u8), proptest::option::of(0..3u8))
            .prop_map(|(k, name, upper, active, manager, title)| Op::PutUser { k, name, upper, active, manager, title }),
        1 => (0..14u8).prop_map(Op::DeleteUser),
        2 => (0..6u8, 0..10u8, any::<bool>(), 0..3u8, any::<bool>())
            .prop_map(|(k, name, upper, description, recreate)| Op::PutGroup { k, name, upper, description, recreate }),
        1 => (0..6u8).prop_map(Op::DeleteGroup),
        5 => (0..6u8, 0..14u8, any::<bool>()).prop_map(|(g, u, add)| Op::Member { g, u, add }),
    ]
}

fn ukey(k: u8) -> String {
    format!("u{k}")
}

fn gkey(k: u8) -> String {
    format!("g{k}")
}

/// What one batch of operations touched, to be read back from the ledger as it is after the
/// batch (as the front-end reads the ledger's changed rows).
#[derive(Default)]
struct Touched {
    users: BTreeMap<String, bool>,
    groups: BTreeMap<String, bool>,
    members: BTreeSet<(String, String)>,
}

/// Apply `op` to the ledger as the store does; note what it touched. Operations that would
/// give two users (or groups) one name but for case are left out (a separate test covers
/// those).
fn run(ledger: &mut Ledger, op: &Op, touched: &mut Touched) {
    match op {
        Op::PutUser {
            k,
            name,
            upper,
            active,
            manager,
            title,
        } => {
            let key = ukey(*k);
            let name = if *upper {
                format!("USER-{name}")
            } else {
                format!("user-{name}")
            };
            if ledger.user_name_taken(&key, &name) {
                return;
            }
            let mut u = User::new(&key, &name);
            u.active = *active;
            u.manager = manager.map(ukey);
            u.title = title.map(|t| format!("title {t}"));
            ledger.users.insert(key.clone(), u);
            touched.users.entry(key).or_insert(false);
        }
        Op::DeleteUser(k) => {
            let key = ukey(*k);
            if ledger.users.remove(&key).is_some() {
                ledger.members.retain(|(_, u)| *u != key);
                touched.users.insert(key, true);
            }
        }
        Op::PutGroup {
            k,
            name,
            upper,
            description,
            recreate,
        } => {
            let key = gkey(*k);
            let name = if *upper {
                format!("GROUP-{name}")
            } else {
                format!("group-{name}")
            };
            if ledger.group_name_taken(&key, &name) {
                return;
            }
            let mut g = Group::new(&key, &name);
            g.description = Some(format!("about {description}"));
            let new = !ledger.groups.contains_key(&key);
            ledger.groups.insert(key.clone(), g);
            if *recreate || new {
                // A create starts the group without members.
                ledger.members.retain(|(g, _)| *g != key);
                touched.groups.insert(key, true);
            } else {
                touched.groups.entry(key).or_insert(false);
            }
        }
        Op::DeleteGroup(k) => {
            let key = gkey(*k);
            if ledger.groups.remove(&key).is_some() {
                ledger.members.retain(|(g, _)| *g != key);
                touched.groups.insert(key, true);
            }
        }
        Op::Member { g, u, add } => {
            let pair = (gkey(*g), ukey(*u));
            if *add {
                if ledger.groups.contains_key(&pair.0) && ledger.users.contains_key(&pair.1) {
                    ledger.members.insert(pair.clone());
                }
            } else {
                ledger.members.remove(&pair);
            }
            touched.members.insert(pair);
        }
    }
}

fn changes(ledger: &Ledger, touched: Touched) -> Vec<Change> {
    let mut out = Vec::new();
    for (key, restarted) in touched.users {
        out.push(Change::User {
            user: ledger.users.get(&key).cloned(),
            key,
            restarted,
        });
    }
    for (key, restarted) in touched.groups {
        // A (re)created group's members come with it.
        if restarted {
            for (g, u) in ledger.members.iter().filter(|(g, _)| *g == key) {
                out.push(Change::Member {
                    group: g.clone(),
                    user: u.clone(),
                    member: true,
                });
            }
        }
        out.push(Change::Group {
            group: ledger.groups.get(&key).cloned(),
            key,
            restarted,
        });
    }
    for (g, u) in touched.members {
        let member = ledger.members.contains(&(g.clone(), u.clone()));
        out.push(Change::Member {
            group: g,
            user: u,
            member,
        });
    }
    out
}

fn user_names(l: Option<Vec<&idsync_crowd::CrowdUser>>) -> Option<Vec<String>> {
    l.map(|l| l.into_iter().map(|u| u.name.clone()).collect())
}

fn group_names(l: Option<Vec<&idsync_crowd::CrowdGroup>>) -> Option<Vec<String>> {
    l.map(|l| l.into_iter().map(|g| g.name.clone()).collect())
}

/// Every query of the API gives the same answer from both directories.
fn same_answers(got: &Directory, want: &Directory) {
    assert_eq!(got.users(), want.users());
    assert_eq!(got.groups(), want.groups());
    assert_eq!(got.membership_count(), want.membership_count());
    assert_eq!(got.conflicts(), want.conflicts());
    for i in 0..24 {
        for name in [format!("user-{i}"), format!("USER-{i}")] {
            assert_eq!(got.user(&name), want.user(&name), "{name}");
            assert_eq!(
                group_names(got.user_groups_direct(&name)),
                group_names(want.user_groups_direct(&name))
            );
            assert_eq!(
                group_names(got.user_groups_nested(&name)),
                group_names(want.user_groups_nested(&name))
            );
        }
        let key = ukey(i);
        assert_eq!(got.user_by_key(&key), want.user_by_key(&key));
        for name in [format!("group-{i}"), format!("GROUP-{i}")] {
            assert_eq!(got.group(&name), want.group(&name));
            assert_eq!(
                user_names(got.group_users_direct(&name)),
                user_names(want.group_users_direct(&name))
            );
            assert_eq!(
                user_names(got.group_users_nested(&name)),
                user_names(want.group_users_nested(&name))
            );
            assert_eq!(
                group_names(got.child_groups_nested(&name)),
                group_names(want.child_groups_nested(&name))
            );
            assert_eq!(
                group_names(got.parent_groups_nested(&name)),
                group_names(want.parent_groups_nested(&name))
            );
        }
    }
    let memberships = |d: &Directory| -> Vec<(String, Vec<String>, Vec<String>)> {
        d.memberships()
            .map(|(g, us, gs)| {
                (
                    g.name.clone(),
                    us.into_iter().map(|u| u.name.clone()).collect(),
                    gs.into_iter().map(|g| g.name.clone()).collect(),
                )
            })
            .collect()
    };
    assert_eq!(memberships(got), memberships(want));
    for q in [
        "",
        "name = \"user-1*\"",
        "active = true",
        "title = \"title 1\" or name = \"USER-*\"",
        "manager = \"user-*\"",
    ] {
        let r = parse_query(q).unwrap();
        for (start, max) in [(0, 1000), (2, 3)] {
            assert_eq!(
                got.search_users(&r, start, max),
                want.search_users(&r, start, max),
                "{q}"
            );
        }
    }
    for q in ["", "name = \"group-*\"", "description = \"about 1\""] {
        let r = parse_query(q).unwrap();
        assert_eq!(
            got.search_groups(&r, 0, 1000),
            want.search_groups(&r, 0, 1000),
            "{q}"
        );
    }
    // And nothing else differs (indexes included).
    assert!(got == want, "the directories differ beyond their answers");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn an_updated_directory_answers_as_one_built_from_the_final_ledger(
        start in proptest::collection::vec(op(), 0..60),
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..8), 1..8),
    ) {
        let mut ledger = Ledger::default();
        let mut ignored = Touched::default();
        for o in &start {
            run(&mut ledger, o, &mut ignored);
        }
        let mut dir = ledger.build();
        for batch in &batches {
            let mut touched = Touched::default();
            for o in batch {
                run(&mut ledger, o, &mut touched);
            }
            dir.apply(changes(&ledger, touched)).unwrap();
            same_answers(&dir, &ledger.build());
        }
    }
}

#[test]
fn names_that_differ_only_by_case_need_a_rebuild() {
    let mut ledger = Ledger::default();
    for (k, n) in [("u1", "ann"), ("u2", "bob")] {
        ledger.users.insert(k.into(), User::new(k, n));
    }
    let mut dir = ledger.build();
    let clash = Change::User {
        key: "u3".into(),
        user: Some(User::new("u3", "ANN")),
        restarted: false,
    };
    assert!(matches!(dir.apply(vec![clash]), Err(NeedsRebuild(_))));
    // A directory already serving such names is rebuilt on every change.
    ledger.users.insert("u3".into(), User::new("u3", "ANN"));
    let mut dir = ledger.build();
    assert_eq!(dir.conflicts().len(), 1);
    assert!(dir.apply(Vec::new()).is_err());
}

#[test]
fn a_rename_moves_the_user_with_its_memberships_and_its_reports_follow() {
    let mut ledger = Ledger::default();
    for (k, n) in [("u1", "ann"), ("u2", "bob"), ("u3", "cid")] {
        ledger.users.insert(k.into(), User::new(k, n));
    }
    ledger.users.get_mut("u3").unwrap().manager = Some("u1".into());
    ledger.groups.insert("g1".into(), Group::new("g1", "devs"));
    for u in ["u1", "u2", "u3"] {
        ledger.members.insert(("g1".into(), u.into()));
    }
    let mut dir = ledger.build();
    assert_eq!(dir.user("cid").unwrap().attributes["manager"], ["ann"]);
    let mut renamed = ledger.users["u1"].clone();
    renamed.user_name = "zoe".into();
    ledger.users.insert("u1".into(), renamed.clone());
    dir.apply(vec![Change::User {
        key: "u1".into(),
        user: Some(renamed),
        restarted: false,
    }])
    .unwrap();
    assert_eq!(
        group_names(dir.user_groups_direct("zoe")),
        Some(vec!["devs".to_string()])
    );
    assert_eq!(dir.user("cid").unwrap().attributes["manager"], ["zoe"]);
    same_answers(&dir, &ledger.build());
}
