//! The ledger changes a served crowd directory follows (issue 17, decision 0031): every ledger
//! write of a flow that feeds a crowd target notes, in its transaction, which users, groups and
//! memberships it changed, under the ledger version it makes. The front-end reads what changed
//! since the version its directory was built at, with the ledger's current rows for it, and
//! applies that in place; when the notes cannot say (a version written otherwise, too many
//! changes, notes purged) it builds the directory again.

use crate::{decode, encode, Store, StoreError, Tx};
use idsync_core::{Action, Group, Operation, User};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

/// A ledger write that changes more than this many users, groups and memberships is not
/// followed: the directory is built again (a first synchronisation, a bulk import).
pub const MAX_FOLLOWED_CHANGES: usize = 10_000;

/// Notes of versions older than this many versions behind the ledger are purged; a served
/// directory further behind is built again.
pub const KEPT_VERSIONS: i64 = 1_000;

const ROWS_PER_INSERT: usize = 200;

/// What changed in a flow's ledger between two versions, as the ledger is now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerDelta {
    /// The ledger version the changes reach.
    pub version: i64,
    /// Changed users: the ledger's user now (None: gone), and whether its memberships went.
    pub users: Vec<(String, Option<User>, bool)>,
    /// Changed groups, the same way.
    pub groups: Vec<(String, Option<Group>, bool)>,
    /// Changed memberships `(group key, user key, member now)`.
    pub members: Vec<(String, String, bool)>,
}

impl LedgerDelta {
    /// How many users, groups and memberships changed.
    pub fn len(&self) -> usize {
        self.users.len() + self.groups.len() + self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One note: its kind, the key, and the users of a membership note.
type Note = (&'static str, String, Option<Vec<String>>);

/// The notes of one ledger write; `None` when it changed too much to follow, or changed
/// which groups are nested in which.
fn notes(ops: &[&Operation]) -> Option<Vec<Note>> {
    let mut out = Vec::new();
    let mut count = 0usize;
    for op in ops {
        let key = op.key.to_string();
        let (kind, users): (&str, Option<Vec<String>>) = match &op.action {
            Action::CreateUser { .. } | Action::UpdateUser { .. } | Action::DisableUser { .. } => {
                ("u", None)
            }
            Action::DeleteUser { .. } => ("U", None),
            Action::UpdateGroup { .. } => ("g", None),
            Action::DeleteGroup { .. } => ("G", None),
            Action::CreateGroup { members, .. } => {
                count += 1;
                out.push(("G", key.clone(), None));
                if members.is_empty() {
                    continue;
                }
                ("m", Some(members.iter().map(|u| u.to_string()).collect()))
            }
            Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } => {
                ("m", Some(users.iter().map(|u| u.to_string()).collect()))
            }
            // Nesting changes are not followed in place (decision 0035): the served directory
            // is built again, as for a write too large to follow.
            Action::AddChildGroups { .. } | Action::RemoveChildGroups { .. } => return None,
        };
        count += users.as_ref().map_or(1, Vec::len);
        if count > MAX_FOLLOWED_CHANGES {
            return None;
        }
        out.push((kind, key, users));
    }
    Some(out)
}

/// Note what a ledger write of `flow` changed, under the `version` it makes (inside its
/// transaction).
pub(crate) async fn note_changes(
    tx: &mut Tx<'_>,
    flow: &str,
    version: i64,
    ops: &[&Operation],
) -> Result<(), StoreError> {
    let rows = match notes(ops) {
        Some(mut rows) => {
            rows.insert(0, ("v", String::new(), None));
            rows
        }
        None => vec![("x", String::new(), None)],
    };
    let mut n: i64 = 0;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO crowd_ledger_changes (flow, version, n, kind, key, users) ",
        );
        let mut bad = None;
        q.push_values(chunk, |mut b, (kind, key, users)| {
            n += 1;
            let users = match users
                .as_ref()
                .map(|u| encode("ledger change", u))
                .transpose()
            {
                Ok(u) => u,
                Err(e) => {
                    bad = Some(e);
                    None
                }
            };
            b.push_bind(flow)
                .push_bind(version)
                .push_bind(n)
                .push_bind(*kind)
                .push_bind(key.as_str())
                .push_bind(users);
        });
        if let Some(e) = bad {
            return Err(e);
        }
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The ledger of `flow` was replaced wholesale: its notes say nothing any more.
pub(crate) async fn forget_changes(tx: &mut Tx<'_>, flow: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM crowd_ledger_changes WHERE flow = $1")
        .bind(flow)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// What changed in `flow`'s ledger since version `since`, with the ledger's current rows
    /// for it; `None` when the notes cannot say (a version written without notes, more than
    /// [`MAX_FOLLOWED_CHANGES`], notes purged). Rows are read as they are now, which may be
    /// newer than the version returned: applying a change twice is harmless, and the next
    /// delta names it again.
    pub async fn crowd_ledger_delta(
        &self,
        flow: &str,
        since: i64,
    ) -> Result<Option<LedgerDelta>, StoreError> {
        let version = self.ledger_version(flow).await?;
        if version == since {
            return Ok(Some(LedgerDelta {
                version,
                ..Default::default()
            }));
        }
        if version < since || version - since > KEPT_VERSIONS {
            return Ok(None);
        }
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(
            "SELECT version, kind, key, users FROM crowd_ledger_changes
             WHERE flow = $1 AND version > $2 AND version <= $3 ORDER BY version, n",
        )
        .bind(flow)
        .bind(since)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
        let mut noted = BTreeSet::new();
        let mut users: BTreeMap<String, bool> = BTreeMap::new();
        let mut groups: BTreeMap<String, bool> = BTreeMap::new();
        let mut pairs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut count = 0usize;
        for r in &rows {
            let v: i64 = r.get(0);
            let kind: &str = r.get(1);
            let key: String = r.get(2);
            match kind {
                "v" => {
                    noted.insert(v);
                }
                "u" | "U" => {
                    *users.entry(key).or_default() |= kind == "U";
                    count += 1;
                }
                "g" | "G" => {
                    *groups.entry(key).or_default() |= kind == "G";
                    count += 1;
                }
                "m" => {
                    let list: Vec<String> = match r.get::<Option<&str>, _>(3) {
                        Some(data) => decode("ledger change", data)?,
                        None => Vec::new(),
                    };
                    count += list.len();
                    pairs.entry(key).or_default().extend(list);
                }
                _ => return Ok(None),
            }
            if count > MAX_FOLLOWED_CHANGES {
                return Ok(None);
            }
        }
        if noted.len() as i64 != version - since {
            return Ok(None);
        }
        let mut delta = LedgerDelta {
            version,
            ..Default::default()
        };
        let keys: Vec<&str> = users.keys().map(String::as_str).collect();
        let mut found: BTreeMap<String, User> = BTreeMap::new();
        for chunk in keys.chunks(500) {
            for r in sqlx::query(
                "SELECT key, data FROM ledger_users WHERE flow = $1 AND key IN (SELECT value FROM json_each($2))",
            )
            .bind(flow)
            .bind(encode("keys", &chunk)?)
            .fetch_all(&mut *conn)
            .await?
            {
                found.insert(r.get(0), decode("ledger user", r.get::<&str, _>(1))?);
            }
        }
        for (key, restarted) in users {
            let user = found.remove(&key);
            delta.users.push((key, user, restarted));
        }
        let keys: Vec<&str> = groups.keys().map(String::as_str).collect();
        let mut found: BTreeMap<String, Group> = BTreeMap::new();
        for chunk in keys.chunks(500) {
            for r in sqlx::query(
                "SELECT key, data FROM ledger_groups WHERE flow = $1 AND key IN (SELECT value FROM json_each($2))",
            )
            .bind(flow)
            .bind(encode("keys", &chunk)?)
            .fetch_all(&mut *conn)
            .await?
            {
                found.insert(r.get(0), decode("ledger group", r.get::<&str, _>(1))?);
            }
        }
        for (key, restarted) in groups {
            let group = found.remove(&key);
            delta.groups.push((key, group, restarted));
        }
        for (group, users) in pairs {
            let list: Vec<&str> = users.iter().map(String::as_str).collect();
            let mut present: BTreeSet<String> = BTreeSet::new();
            for chunk in list.chunks(500) {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT un.id FROM ledger_members m JOIN numbers un ON un.n = m.u
                     WHERE m.flow = $1
                       AND m.g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2)
                       AND m.u IN (SELECT n FROM numbers WHERE kind = 'user' AND id IN (SELECT value FROM json_each($3)))",
                )
                .bind(flow)
                .bind(&group)
                .bind(encode("keys", &chunk)?)
                .fetch_all(&mut *conn)
                .await?;
                present.extend(rows);
            }
            for user in users {
                let member = present.contains(&user);
                delta.members.push((group.clone(), user, member));
            }
        }
        Ok(Some(delta))
    }

    /// Purge the notes of `flow` more than [`KEPT_VERSIONS`] behind its ledger.
    pub async fn purge_crowd_ledger_changes(&self, flow: &str) -> Result<u64, StoreError> {
        let version = self.ledger_version(flow).await?;
        Ok(
            sqlx::query("DELETE FROM crowd_ledger_changes WHERE flow = $1 AND version <= $2")
                .bind(flow)
                .bind(version - KEPT_VERSIONS)
                .execute(&self.writer)
                .await?
                .rows_affected(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{OpRecord, ServedEvents};
    use idsync_core::{Key, Reason};

    fn rec(key: &str, action: Action) -> OpRecord {
        OpRecord {
            seq: 0,
            op: Operation {
                key: key.into(),
                action,
                reason: Reason::NewInSource,
            },
            applied: true,
            target_id: Some(key.into()),
            outcome: "applied".into(),
            error: None,
            duration_ms: 0,
            at_ms: 1,
        }
    }

    async fn served(store: &Store, records: &[OpRecord]) -> i64 {
        let events = ServedEvents {
            target: "dc",
            at_ms: 1,
            events: Vec::new(),
        };
        store
            .record_ops_served("f", "r", records, Some(&events))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_delta_names_what_changed_as_the_ledger_now_is_or_cannot_say() {
        let store = Store::open_in_memory().await.unwrap();
        store.register_flow("f", "d").await.unwrap();
        let v1 = served(
            &store,
            &[
                rec(
                    "u1",
                    Action::CreateUser {
                        user: User::new("u1", "ann"),
                    },
                ),
                rec(
                    "u2",
                    Action::CreateUser {
                        user: User::new("u2", "bob"),
                    },
                ),
                rec(
                    "g1",
                    Action::CreateGroup {
                        group: Group::new("g1", "devs"),
                        members: vec![Key::from("u1")],
                    },
                ),
            ],
        )
        .await;
        let d = store.crowd_ledger_delta("f", 0).await.unwrap().unwrap();
        assert_eq!(d.version, v1);
        assert_eq!(d.users.len(), 2);
        assert!(
            matches!(&d.groups[..], [(k, Some(g), true)] if k == "g1" && g.display_name == "devs")
        );
        assert_eq!(d.members, [("g1".into(), "u1".into(), true)]);

        // bob joins, ann is deleted (her membership goes with her).
        let v2 = served(
            &store,
            &[
                rec(
                    "g1",
                    Action::AddMembers {
                        group: "devs".into(),
                        users: vec![Key::from("u2")],
                    },
                ),
                rec(
                    "u1",
                    Action::DeleteUser {
                        before: User::new("u1", "ann"),
                    },
                ),
            ],
        )
        .await;
        let d = store.crowd_ledger_delta("f", v1).await.unwrap().unwrap();
        assert_eq!(d.version, v2);
        assert_eq!(d.users, [("u1".into(), None, true)]);
        assert_eq!(d.members, [("g1".into(), "u2".into(), true)]);
        assert!(store
            .crowd_ledger_delta("f", v2)
            .await
            .unwrap()
            .unwrap()
            .is_empty());

        // A write without notes, or the ledger replaced: the notes cannot say.
        let v3 = store.record_ops("f", "r", &[]).await.unwrap();
        assert!(store.crowd_ledger_delta("f", v2).await.unwrap().is_none());
        assert!(store.crowd_ledger_delta("f", v3).await.unwrap().is_some());
        let ledger = store.load_ledger("f").await.unwrap();
        let v4 = store.replace_ledger("f", &ledger).await.unwrap();
        assert!(store.crowd_ledger_delta("f", v3).await.unwrap().is_none());
        assert!(store.crowd_ledger_delta("f", v4).await.unwrap().is_some());
    }

    #[test]
    fn a_write_too_large_is_not_followed() {
        let users: Vec<Key> = (0..=MAX_FOLLOWED_CHANGES)
            .map(|i| Key::from(format!("u{i}").as_str()))
            .collect();
        let op = Operation {
            key: "g1".into(),
            action: Action::AddMembers {
                group: "devs".into(),
                users,
            },
            reason: Reason::NewInSource,
        };
        assert!(notes(&[&op]).is_none());
    }
}
