//! Which groups a member is in, kept in memory instead of in a by-member index (decision 0016).
//!
//! Memberships (per directory) and ledger memberships (per flow) are B-trees keyed by group,
//! then member. Asking the other way round (a user's groups: to show them, and to drop a deleted
//! user's memberships) used a second index keyed by member, and that index cost more than
//! everything else a membership write does: its entries land in random places, so every
//! commit rewrote about one page per membership added (two million memberships for a
//! 100,000-user first sync). Instead, each scope's reverse map is built when first asked
//! (one scan of the scope's primary key) and kept up to date by this store's writer.
//!
//! A map is only ever used at the version it was built or kept for: the directory's change-log
//! position (`directories.last_seq`, which every membership change moves) or the flow's
//! `ledger_version` (which every ledger write moves). Whoever asks compares that version, read
//! in the same transaction, with the map's: a write by another process, a transaction that
//! rolled back or a map built from an older snapshot is simply not used, and the map is built
//! again from the table.

use crate::StoreError;
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A table of (group number, member number) pairs and the column that scopes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Table {
    /// `memberships`, per directory.
    Memberships,
    /// `ledger_members`, per flow.
    LedgerMembers,
}

impl Table {
    fn scan_sql(self) -> &'static str {
        match self {
            Table::Memberships => {
                "SELECT g, json_group_array(m) FROM memberships WHERE dir = $1 GROUP BY g"
            }
            Table::LedgerMembers => {
                "SELECT g, json_group_array(u) FROM ledger_members WHERE flow = $1 GROUP BY g"
            }
        }
    }

    fn version_sql(self) -> &'static str {
        match self {
            Table::Memberships => "SELECT last_seq FROM directories WHERE name = $1",
            Table::LedgerMembers => "SELECT ledger_version FROM flows WHERE name = $1",
        }
    }

    /// The scope's version as the connection's transaction sees it; None when the scope has
    /// no row that versions it (then nothing about it is kept).
    pub(crate) async fn version(
        self,
        conn: &mut SqliteConnection,
        scope: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(self.version_sql())
            .bind(scope)
            .fetch_optional(conn)
            .await?)
    }
}

/// Member number → the numbers of the groups it is directly in.
type GroupsOf = HashMap<i64, Vec<i64>>;

struct Map {
    version: i64,
    of: GroupsOf,
}

/// The maps this store keeps, by table and scope, how many were built from a table, and the
/// readers' turn to build one.
#[derive(Clone, Default)]
pub(crate) struct ReverseMaps(
    Arc<Mutex<HashMap<(Table, String), Map>>>,
    Arc<std::sync::atomic::AtomicU64>,
    /// Held by the reader that builds a map.
    Arc<tokio::sync::Mutex<()>>,
);

impl std::fmt::Debug for ReverseMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let maps = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ReverseMaps")
            .field("scopes", &maps.len())
            .finish()
    }
}

async fn load(
    conn: &mut SqliteConnection,
    built: &std::sync::atomic::AtomicU64,
    table: Table,
    scope: &str,
) -> Result<GroupsOf, StoreError> {
    built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // One row per group with its members as a JSON array, in primary-key order (no sort):
    // two million memberships come over sqlx's channel as ten thousand rows, not two million.
    let mut of = GroupsOf::new();
    for r in sqlx::query(table.scan_sql())
        .bind(scope)
        .fetch_all(conn)
        .await?
    {
        let group: i64 = r.get(0);
        let members: Vec<i64> = crate::decode("members of a group", r.get::<&str, _>(1))?;
        for m in members {
            of.entry(m).or_default().push(group);
        }
    }
    Ok(of)
}

impl ReverseMaps {
    /// How many maps were built from their table so far.
    #[cfg(test)]
    pub(crate) fn built(&self) -> u64 {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The groups `member` is in, for a reader whose transaction sees `scope` at `version`:
    /// from the kept map at that version or a later one (the writer may have moved it on since
    /// the reader's snapshot began; a later state is as good an answer to a reader).
    ///
    /// Without one, the map is built on the writer's connection (`writer`): no write of this
    /// process commits meanwhile, so the map is exact at the version it reads there, and the
    /// writer's next transaction, starting at that version, moves it on. (A map built from a
    /// reader's snapshot would often be a commit behind, and the writer would never take it
    /// up.) One reader builds at a time; the others wait for its map.
    pub(crate) async fn groups_of(
        &self,
        writer: &sqlx::SqlitePool,
        table: Table,
        scope: &str,
        version: i64,
        member: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let key = (table, scope.to_string());
        let kept = |maps: &HashMap<(Table, String), Map>| {
            maps.get(&key)
                .filter(|m| m.version >= version)
                .map(|m| m.of.get(&member).cloned().unwrap_or_default())
        };
        if let Some(groups) = kept(&self.lock()) {
            return Ok(groups);
        }
        let _building = self.2.lock().await;
        if let Some(groups) = kept(&self.lock()) {
            return Ok(groups);
        }
        let mut tx = writer.begin().await?;
        let Some(at) = table.version(&mut tx, scope).await? else {
            return Ok(Vec::new());
        };
        let of = load(&mut tx, &self.1, table, scope).await?;
        tx.commit().await?;
        let groups = of.get(&member).cloned().unwrap_or_default();
        let mut maps = self.lock();
        if maps.get(&key).is_none_or(|m| m.version < at) {
            maps.insert(key, Map { version: at, of });
        }
        Ok(groups)
    }

    /// A write transaction's view of the maps.
    pub(crate) fn begin(&self) -> TxReverse {
        TxReverse {
            maps: self.clone(),
            open: HashMap::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Table, String), Map>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A change to a reverse map.
#[derive(Clone, Copy, Debug)]
enum Edit {
    Add {
        group: i64,
        member: i64,
    },
    Remove {
        group: i64,
        member: i64,
    },
    /// The member left every group (it was deleted).
    Left {
        member: i64,
    },
}

fn apply(of: &mut GroupsOf, edit: Edit) {
    match edit {
        Edit::Add { group, member } => {
            let groups = of.entry(member).or_default();
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Edit::Remove { group, member } => {
            if let Some(groups) = of.get_mut(&member) {
                groups.retain(|g| *g != group);
                if groups.is_empty() {
                    of.remove(&member);
                }
            }
        }
        Edit::Left { member } => {
            of.remove(&member);
        }
    }
}

enum State {
    /// No map was kept at the transaction's start version: changes are not followed (a map
    /// is built from the table if the transaction asks).
    Untracked,
    /// The kept map is at the start version: these changes go onto it once committed.
    Delta(Vec<Edit>),
    /// Built inside the transaction (its own changes included); kept once committed.
    Own(GroupsOf),
    /// The scope was emptied and refilled: what is kept is dropped once committed.
    Forget,
}

/// One scope as a write transaction sees it.
pub(crate) struct Tracked {
    table: Table,
    scope: String,
    /// The version when the transaction first touched the scope; None: unversioned.
    start: Option<i64>,
    /// The version the transaction commits.
    committed: Option<i64>,
    state: State,
    maps: ReverseMaps,
}

impl Tracked {
    /// Whether changes are being followed (callers may skip reading back what they changed).
    pub(crate) fn follows(&self) -> bool {
        matches!(self.state, State::Delta(_) | State::Own(_))
    }

    pub(crate) fn add(&mut self, group: i64, member: i64) {
        self.edit(Edit::Add { group, member });
    }

    pub(crate) fn remove(&mut self, group: i64, member: i64) {
        self.edit(Edit::Remove { group, member });
    }

    pub(crate) fn left(&mut self, member: i64) {
        self.edit(Edit::Left { member });
    }

    /// The scope is emptied and written again in this transaction.
    pub(crate) fn forget(&mut self) {
        self.state = State::Forget;
    }

    fn edit(&mut self, edit: Edit) {
        match &mut self.state {
            State::Delta(edits) => edits.push(edit),
            State::Own(of) => apply(of, edit),
            State::Untracked | State::Forget => {}
        }
    }

    /// The groups `member` is in now, in this transaction (its own changes included).
    pub(crate) async fn groups_of(
        &mut self,
        conn: &mut SqliteConnection,
        member: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if let State::Own(of) = &self.state {
            return Ok(of.get(&member).cloned().unwrap_or_default());
        }
        if let (State::Delta(edits), Some(start)) = (&self.state, self.start) {
            let maps = self.maps.lock();
            if let Some(m) = maps
                .get(&(self.table, self.scope.clone()))
                .filter(|m| m.version == start)
            {
                let mut of = GroupsOf::new();
                if let Some(groups) = m.of.get(&member) {
                    of.insert(member, groups.clone());
                }
                for e in edits.iter().filter(|e| match **e {
                    Edit::Add { member: x, .. }
                    | Edit::Remove { member: x, .. }
                    | Edit::Left { member: x } => x == member,
                }) {
                    apply(&mut of, *e);
                }
                return Ok(of.remove(&member).unwrap_or_default());
            }
        }
        // Built from the table as this transaction sees it; followed from here on.
        let of = load(conn, &self.maps.1, self.table, &self.scope).await?;
        let groups = of.get(&member).cloned().unwrap_or_default();
        if self.start.is_some() && !matches!(self.state, State::Forget) {
            self.state = State::Own(of);
        }
        Ok(groups)
    }
}

/// A write transaction's view of the reverse maps; [`TxReverse::keep`] once it has committed.
pub(crate) struct TxReverse {
    maps: ReverseMaps,
    open: HashMap<(Table, String), Tracked>,
}

impl TxReverse {
    /// The scope, as this transaction sees it. Call before the transaction changes the
    /// scope's version.
    pub(crate) async fn scope(
        &mut self,
        conn: &mut SqliteConnection,
        table: Table,
        scope: &str,
    ) -> Result<&mut Tracked, StoreError> {
        let key = (table, scope.to_string());
        if !self.open.contains_key(&key) {
            let start = table.version(conn, scope).await?;
            self.open_at(key.clone(), start);
        }
        self.open
            .get_mut(&key)
            .ok_or_else(|| StoreError::NotCommitted("reverse map scope vanished".into()))
    }

    /// The transaction is about to write to a scope whose version it has just read: a kept map
    /// moves on with it, also when the write changes no membership (every write moves the
    /// version, and a map left behind would have to be built again).
    pub(crate) fn starts_at(&mut self, table: Table, scope: &str, version: i64) {
        let key = (table, scope.to_string());
        if !self.open.contains_key(&key) {
            self.open_at(key, Some(version));
        }
    }

    fn open_at(&mut self, key: (Table, String), start: Option<i64>) {
        let kept =
            start.is_some_and(|v| self.maps.lock().get(&key).is_some_and(|m| m.version == v));
        let tracked = Tracked {
            table: key.0,
            scope: key.1.clone(),
            start,
            committed: None,
            state: if kept {
                State::Delta(Vec::new())
            } else {
                State::Untracked
            },
            maps: self.maps.clone(),
        };
        self.open.insert(key, tracked);
    }

    /// The transaction commits `version` for a scope it touched.
    pub(crate) fn committed_as(&mut self, table: Table, scope: &str, version: i64) {
        if let Some(t) = self.open.get_mut(&(table, scope.to_string())) {
            t.committed = Some(version);
        }
    }

    /// The transaction committed: what it followed goes into the kept maps, at the versions it
    /// committed.
    pub(crate) fn keep(self) {
        let mut maps = self.maps.lock();
        for (key, t) in self.open {
            match (t.state, t.start, t.committed) {
                (State::Forget, ..) => {
                    maps.remove(&key);
                }
                (State::Own(of), Some(_), Some(version)) => {
                    maps.insert(key, Map { version, of });
                }
                (State::Delta(edits), Some(start), Some(version)) => {
                    if let Some(m) = maps.get_mut(&key).filter(|m| m.version == start) {
                        for e in edits {
                            apply(&mut m.of, e);
                        }
                        m.version = version;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use crate::OpRecord;
    use crate::Store;
    use idsync_core::{Action, Change, Key, MemberRef, Operation, Reason, User};

    fn op(key: &str, action: Action) -> OpRecord {
        OpRecord {
            seq: 0,
            op: Operation {
                key: key.into(),
                action,
                reason: Reason::MembershipsAdded,
            },
            applied: true,
            target_id: Some(format!("t-{key}")),
            outcome: "applied".into(),
            error: None,
            duration_ms: 1,
            at_ms: 1,
        }
    }

    /// A map is built once and then moves on with every write of this store, also writes that
    /// change no membership: rebuilding it at each version would scan every membership of the
    /// directory per request (a SCIM PATCH of a user reads the user's groups).
    #[tokio::test]
    async fn a_map_is_built_once_and_follows_every_write() {
        let store = Store::open_in_memory().await.unwrap();
        let built = || store.numbers.reverse.built();
        let user = |id: &str, title: &str| {
            let mut u = User::new(id, id);
            u.title = Some(title.into());
            Change::UpsertUser { user: u }
        };
        store
            .apply_changes(
                "d",
                "scim",
                &[
                    user("u1", "a"),
                    user("u2", "a"),
                    Change::UpsertGroup {
                        group: idsync_core::Group::new("g1", "one"),
                    },
                    Change::AddMember {
                        group: "g1".into(),
                        member: MemberRef::user("u1"),
                    },
                ],
                None,
                1,
            )
            .await
            .unwrap();
        let groups = |u: &'static str| {
            let store = store.clone();
            async move {
                store
                    .member_of("d", u)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(g, _)| g)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(groups("u1").await, vec!["g1"]);
        assert_eq!(built(), 1);
        // Writes without memberships, directly and through the group commit.
        store
            .apply_changes("d", "scim", &[user("u2", "b")], None, 2)
            .await
            .unwrap();
        store
            .write_checked("d", "scim", &[], &[user("u2", "c")], 3)
            .await
            .unwrap();
        assert_eq!(groups("u1").await, vec!["g1"]);
        // A deletion takes the user's groups from the kept map.
        store
            .apply_changes(
                "d",
                "scim",
                &[Change::DeleteUser {
                    source_id: "u1".into(),
                }],
                None,
                4,
            )
            .await
            .unwrap();
        assert!(groups("u1").await.is_empty());
        assert_eq!(built(), 1, "the directory's map was built again");

        // The ledger's map: built at the first deletion, then it follows.
        store.register_flow("f", "d").await.unwrap();
        let members = Action::AddMembers {
            group: "G".into(),
            users: vec![Key::from("u1"), Key::from("u2")],
        };
        let update = Action::UpdateUser {
            before: User::new("u2", "u2"),
            after: User::new("u2", "u2"),
            changed: Vec::new(),
        };
        let delete = |u: &str| Action::DeleteUser {
            before: User::new(u, u),
        };
        store
            .record_ops("f", "r", &[op("g", members)])
            .await
            .unwrap();
        store
            .record_ops("f", "r", &[op("u1", delete("u1"))])
            .await
            .unwrap();
        assert_eq!(built(), 2);
        store
            .record_ops("f", "r", &[op("u2", update)])
            .await
            .unwrap();
        store
            .record_ops("f", "r", &[op("u2", delete("u2"))])
            .await
            .unwrap();
        assert_eq!(built(), 2, "the ledger's map was built again");
        assert!(store.load_ledger("f").await.unwrap().members.is_empty());
    }
}
