//! Issue 16 item 3: whatever subset of attributes a target keeps (and whether it computes
//! `name.formatted` itself), a reconcile against it plans nothing when nothing changed, and
//! still repairs a real hand edit.

use super::ledger_from;
use idsync_core::keeps::{answer_shows, compare_only_what_is_kept, AnswerTally, Known, Resource};
use idsync_core::*;
use proptest::prelude::*;

/// What a target does to a user it is sent.
#[derive(Debug, Clone)]
struct Rules {
    keeps_title: bool,
    keeps_department: bool,
    keeps_email_type: bool,
    keeps_empty_external_id: bool,
    computes_formatted: bool,
}

fn held(rules: &Rules, u: &User) -> User {
    let mut u = u.clone();
    if !rules.keeps_title {
        u.title = None;
    }
    if !rules.keeps_department {
        u.department = None;
    }
    if !rules.keeps_email_type {
        for e in &mut u.emails {
            e.kind = None;
        }
    }
    if !rules.keeps_empty_external_id && u.external_id.as_deref() == Some("") {
        u.external_id = None;
    }
    if rules.computes_formatted {
        u.name.formatted = Some(format!(
            "{} {}",
            u.name.given_name.clone().unwrap_or_default(),
            u.name.family_name.clone().unwrap_or_default()
        ));
    }
    u
}

fn user(i: usize, title: bool, dept: bool, ext: u8) -> User {
    let mut u = User::new(format!("k{i}"), format!("user{i}@example.com"));
    u.name.given_name = Some(format!("Given{i}"));
    u.name.family_name = Some("Family".into());
    u.title = title.then(|| format!("Title {i}"));
    u.department = dept.then(|| "Dept".into());
    u.external_id = match ext {
        0 => None,
        1 => Some(String::new()),
        _ => Some(format!("ext-{i}")),
    };
    u.emails = vec![Email {
        value: format!("user{i}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    }];
    u
}

fn reconcile_plan(desired: &DesiredState, real: &TargetSnapshot) -> (Plan, LedgerState) {
    reconcile_plan_knowing(desired, real, &Known::default())
}

fn reconcile_plan_knowing(
    desired: &DesiredState,
    real: &TargetSnapshot,
    known: &Known,
) -> (Plan, LedgerState) {
    let ledger = ledger_from(desired);
    let mut observed = observed_ledger(&ledger, real);
    compare_only_what_is_kept(&ledger, &mut observed, known);
    let p = plan(
        desired,
        &observed,
        &PlanOptions {
            reconcile: true,
            ..PlanOptions::default()
        },
    );
    (p, ledger)
}

fn snapshot_of(ledger: &LedgerState, rules: &Rules) -> TargetSnapshot {
    TargetSnapshot {
        users: ledger
            .users
            .values()
            .map(|l| RemoteUser {
                target_id: l.target_id.clone(),
                user: held(rules, &l.user),
            })
            .collect(),
        groups: Vec::new(),
    }
}

proptest! {
    #[test]
    fn reconcile_against_any_subset_kept_plans_nothing(
        users in prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..3), 2..10),
        keeps_title in any::<bool>(),
        keeps_department in any::<bool>(),
        keeps_email_type in any::<bool>(),
        keeps_empty_external_id in any::<bool>(),
        computes_formatted in any::<bool>(),
    ) {
        let rules = Rules { keeps_title, keeps_department, keeps_email_type, keeps_empty_external_id, computes_formatted };
        let snapshot = Snapshot {
            users: users.iter().enumerate().map(|(i, (t, d, e))| user(i, *t, *d, *e)).collect(),
            groups: Vec::new(),
            memberships: Vec::new(),
        };
        let desired = desired_state(&snapshot);
        let ledger = ledger_from(&desired);
        let real = snapshot_of(&ledger, &rules);
        let (p, _) = reconcile_plan(&desired, &real);
        prop_assert!(p.operations.is_empty(), "{:?} planned {:?}", rules, p.operations);
    }
}

/// What the target's answers to the creates showed, as the SCIM target learns it: each user
/// as sent, against the user as the target holds it.
fn known_from_create_answers(ledger: &LedgerState, rules: &Rules) -> Known {
    let mut tally = AnswerTally::default();
    for l in ledger.users.values() {
        let sent = serde_json::to_value(&l.user).unwrap();
        let back = serde_json::to_value(held(rules, &l.user)).unwrap();
        tally.add(Resource::User, &answer_shows(&sent, &back), "POST /Users");
    }
    Known::remembered(&tally.learned())
}

proptest! {
    /// Learning from the create answers too: whatever the target keeps, a reconcile plans
    /// nothing, even where one object holds, set by hand in the target, a value for an
    /// attribute the target does not take from idsync (the read alone would take it for kept
    /// and "repair" every other object); and an attribute the answers showed kept, removed by
    /// hand from every object that had it, is repaired on each of them.
    #[test]
    fn knowing_the_create_answers_reconcile_plans_nothing_and_repairs_what_is_kept(
        users in prop::collection::vec((any::<bool>(), any::<bool>(), 0u8..3), 2..10),
        keeps_title in any::<bool>(),
        keeps_department in any::<bool>(),
        keeps_email_type in any::<bool>(),
        keeps_empty_external_id in any::<bool>(),
        computes_formatted in any::<bool>(),
        by_hand in any::<bool>(),
    ) {
        let rules = Rules { keeps_title, keeps_department, keeps_email_type, keeps_empty_external_id, computes_formatted };
        let snapshot = Snapshot {
            users: users.iter().enumerate().map(|(i, (t, d, e))| user(i, *t, *d, *e)).collect(),
            groups: Vec::new(),
            memberships: Vec::new(),
        };
        let desired = desired_state(&snapshot);
        let ledger = ledger_from(&desired);
        let known = known_from_create_answers(&ledger, &rules);
        let mut real = snapshot_of(&ledger, &rules);
        // Only where the answers showed something of title (some user was sent one).
        let sent_title = ledger.users.values().any(|l| l.user.title.is_some());
        if by_hand && !keeps_title && sent_title {
            real.users[0].user.title = Some("Set by hand".into());
        }
        let (p, _) = reconcile_plan_knowing(&desired, &real, &known);
        prop_assert!(p.operations.is_empty(), "{:?} planned {:?}", rules, p.operations);

        if keeps_title {
            let mut real = snapshot_of(&ledger, &rules);
            for u in &mut real.users {
                u.user.title = None;
            }
            let (p, _) = reconcile_plan_knowing(&desired, &real, &known);
            let repaired: Vec<String> = p.operations.iter().map(|o| o.key.to_string()).collect();
            let had: Vec<String> = ledger
                .users
                .iter()
                .filter(|(_, l)| l.user.title.is_some())
                .map(|(k, _)| k.to_string())
                .collect();
            prop_assert_eq!(repaired, had);
            prop_assert!(p.operations.iter().all(|o| o.reason == Reason::ChangedInTarget(vec!["title".into()])), "{:?}", p.operations);
        }
    }
}

/// A real hand edit is still repaired where the target drops other attributes.
#[test]
fn a_hand_edit_is_still_repaired() {
    let rules = Rules {
        keeps_title: false,
        keeps_department: false,
        keeps_email_type: false,
        keeps_empty_external_id: false,
        computes_formatted: true,
    };
    let snapshot = Snapshot {
        users: (0..4).map(|i| user(i, true, true, 1)).collect(),
        groups: Vec::new(),
        memberships: Vec::new(),
    };
    let desired = desired_state(&snapshot);
    let ledger = ledger_from(&desired);
    let mut real = snapshot_of(&ledger, &rules);
    real.users[1].user.name.given_name = Some("By hand".into());
    let (p, _) = reconcile_plan(&desired, &real);
    let got: Vec<(&str, Reason)> = p
        .operations
        .iter()
        .map(|o| (o.key.as_str(), o.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![("k1", Reason::ChangedInTarget(vec!["name".into()]))]
    );
    // The target's title kept by all but one user: that one was changed by hand.
    let rules = Rules {
        keeps_title: true,
        ..rules
    };
    let mut real = snapshot_of(&ledger, &rules);
    real.users[2].user.title = None;
    let (p, _) = reconcile_plan(&desired, &real);
    assert_eq!(p.operations.len(), 1, "{:?}", p.operations);
    assert_eq!(p.operations[0].key, "k2");
}
