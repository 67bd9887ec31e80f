//! Nested groups in a flow's ledger (issue 17, decision 0033, migration 0020): edges recorded
//! with the operations, loaded back, taken out with a group, and replaced with the ledger; the
//! same as `LedgerState::record` makes of the same operations.

use super::{ledger_op, open};
use idsync_core::*;
use std::collections::BTreeSet;

fn nest(parent: &str, children: &[&str], add: bool) -> idsync_store::OpRecord {
    let groups = children.iter().map(|c| c.to_string()).collect();
    let mut rec = ledger_op(
        parent,
        if add {
            Action::AddChildGroups {
                group: parent.into(),
                groups,
            }
        } else {
            Action::RemoveChildGroups {
                group: parent.into(),
                groups,
            }
        },
    );
    rec.op.reason = if add {
        Reason::ChildGroupsAdded
    } else {
        Reason::ChildGroupsRemoved
    };
    rec
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn child_groups_are_kept_in_the_ledger_as_recorded() {
    let (_d, s) = open().await;
    s.register_flow("f", "d").await.unwrap();
    let mut ops: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|g| {
            ledger_op(
                g,
                Action::CreateGroup {
                    group: Group::new(*g, *g),
                    members: Vec::new(),
                },
            )
        })
        .collect();
    ops.push(nest("a", &["b", "c"], true));
    ops.push(nest("b", &["c"], true));
    ops.push(nest("c", &["b"], true)); // a cycle is kept
    ops.push(nest("a", &["c"], false));
    s.record_ops("f", "r1", &ops).await.unwrap();
    let mut memory = LedgerState::default();
    for o in &ops {
        memory.record(&o.op, o.target_id.as_deref(), o.at_ms);
    }
    let ledger = s.load_ledger("f").await.unwrap();
    assert_eq!(ledger.child_groups["a"], set(&["b"]));
    assert_eq!(ledger.child_groups["b"], set(&["c"]));
    assert_eq!(ledger.child_groups["c"], set(&["b"]));
    assert_eq!(ledger.child_groups, memory.child_groups);
    // The provisioning log names the nested groups.
    let log = s.run_ops("r1").await.unwrap();
    assert!(
        log.iter().any(|o| o.action == "add_child_groups"
            && o.key == "a"
            && o.reason == "groups nested in the source"
            && o.after == Some(serde_json::json!({"groups": ["b", "c"]}))),
        "{log:?}"
    );

    // A deleted group leaves every group it was in, and has no children.
    let del = ledger_op(
        "c",
        Action::DeleteGroup {
            before: Group::new("c", "c"),
        },
    );
    s.record_ops("f", "r2", std::slice::from_ref(&del))
        .await
        .unwrap();
    memory.record(&del.op, None, 1);
    let ledger = s.load_ledger("f").await.unwrap();
    assert_eq!(ledger.child_groups.get("b"), None);
    assert_eq!(ledger.child_groups.get("c"), None);
    assert_eq!(ledger.child_groups, memory.child_groups);

    // The ledger replaced wholesale: its edges are the new ledger's.
    let mut replaced = ledger.clone();
    replaced.child_groups = [("d".to_string(), set(&["a"]))].into();
    s.replace_ledger("f", &replaced).await.unwrap();
    assert_eq!(
        s.load_ledger("f").await.unwrap().child_groups,
        replaced.child_groups
    );
    // Another flow's ledger has none of them.
    assert!(s.load_ledger("g").await.unwrap().child_groups.is_empty());
}
