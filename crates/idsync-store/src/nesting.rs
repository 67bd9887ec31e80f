//! Nested groups in a flow's ledger (`ledger_child_groups`, migration 0020, decision 0033):
//! the group-in-group edges a target that serves nested groups holds, written in the
//! transaction that records the operations.

use crate::{encode, StoreError, Tx};
use idsync_core::LedgerState;
use sqlx::{Row, SqliteConnection};

/// Read a flow's edges into its ledger.
pub(crate) async fn load(
    conn: &mut SqliteConnection,
    flow: &str,
    ledger: &mut LedgerState,
) -> Result<(), StoreError> {
    for r in sqlx::query("SELECT parent, child FROM ledger_child_groups WHERE flow = $1")
        .bind(flow)
        .fetch_all(&mut *conn)
        .await?
    {
        ledger
            .child_groups
            .entry(r.get(0))
            .or_default()
            .insert(r.get(1));
    }
    Ok(())
}

/// `children` become direct member groups of `parent`.
pub(crate) async fn add(
    tx: &mut Tx<'_>,
    flow: &str,
    parent: &str,
    children: &[String],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR IGNORE INTO ledger_child_groups (flow, parent, child)
         SELECT $1, $2, value FROM json_each($3)",
    )
    .bind(flow)
    .bind(parent)
    .bind(encode("child groups", &children)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `children` are no longer member groups of `parent`.
pub(crate) async fn remove(
    tx: &mut Tx<'_>,
    flow: &str,
    parent: &str,
    children: &[String],
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM ledger_child_groups WHERE flow = $1 AND parent = $2
         AND child IN (SELECT value FROM json_each($3))",
    )
    .bind(flow)
    .bind(parent)
    .bind(encode("child groups", &children)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A group made (again) starts without member groups.
pub(crate) async fn created(tx: &mut Tx<'_>, flow: &str, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM ledger_child_groups WHERE flow = $1 AND parent = $2")
        .bind(flow)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A deleted group has no member groups and is a member of no group.
pub(crate) async fn deleted(tx: &mut Tx<'_>, flow: &str, key: &str) -> Result<(), StoreError> {
    created(tx, flow, key).await?;
    sqlx::query("DELETE FROM ledger_child_groups WHERE flow = $1 AND child = $2")
        .bind(flow)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replace a flow's edges by those of `ledger` (the ledger replaced wholesale).
pub(crate) async fn replace(
    tx: &mut Tx<'_>,
    flow: &str,
    ledger: &LedgerState,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM ledger_child_groups WHERE flow = $1")
        .bind(flow)
        .execute(&mut **tx)
        .await?;
    for (parent, children) in &ledger.child_groups {
        let children: Vec<String> = children.iter().cloned().collect();
        add(tx, flow, parent, &children).await?;
    }
    Ok(())
}
