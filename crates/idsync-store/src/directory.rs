//! Directories: their users, groups and memberships, snapshots and refreshes, and the change
//! log every write appends to (invariant 1: a write and its change-log entry commit together).

use super::*;

impl Store {
    // ---------------------------------------------------------------- directories

    pub async fn list_directories(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM directories ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    pub async fn load_directory(&self, dir: &str) -> Result<Snapshot, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let users = sqlx::query("SELECT data FROM users WHERE dir = $1 ORDER BY source_id")
            .bind(dir)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| decode::<User>("user", r.get::<&str, _>(0)))
            .collect::<Result<Vec<_>, _>>()?;
        let groups = sqlx::query("SELECT data FROM groups_ WHERE dir = $1 ORDER BY source_id")
            .bind(dir)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| decode::<Group>("group", r.get::<&str, _>(0)))
            .collect::<Result<Vec<_>, _>>()?;
        let memberships = memberships_of(&mut conn, dir).await?;
        Ok(Snapshot {
            users,
            groups,
            memberships,
        })
    }

    /// The current state of the named users and groups (`None`: not in the directory) and the
    /// direct memberships of the groups in `membership_groups`: what a [`Refresh`] of a
    /// directory image needs.
    pub async fn refresh(
        &self,
        dir: &str,
        users: &BTreeSet<String>,
        groups: &BTreeSet<String>,
        membership_groups: &BTreeSet<String>,
    ) -> Result<Refresh, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let list = |ids: &BTreeSet<String>| {
            serde_json::Value::from(ids.iter().map(String::as_str).collect::<Vec<_>>()).to_string()
        };
        let mut out = Refresh {
            users: users.iter().map(|u| (u.clone(), None)).collect(),
            ..Refresh::default()
        };
        for r in sqlx::query("SELECT data FROM users WHERE dir = $1 AND source_id IN (SELECT value FROM json_each($2))")
            .bind(dir)
            .bind(list(users))
            .fetch_all(&mut *conn)
            .await?
        {
            let u: User = decode("user", r.get::<&str, _>(0))?;
            out.users.insert(u.source_id.clone(), Some(u));
        }
        out.groups = groups.iter().map(|g| (g.clone(), None)).collect();
        for r in sqlx::query("SELECT data FROM groups_ WHERE dir = $1 AND source_id IN (SELECT value FROM json_each($2))")
            .bind(dir)
            .bind(list(groups))
            .fetch_all(&mut *conn)
            .await?
        {
            let g: Group = decode("group", r.get::<&str, _>(0))?;
            out.groups.insert(g.source_id.clone(), Some(g));
        }
        out.memberships = membership_groups
            .iter()
            .map(|g| (g.clone(), Vec::new()))
            .collect();
        for r in sqlx::query(
            "SELECT g.id, m.kind, m.id FROM numbers g
             CROSS JOIN memberships x ON x.dir = $1 AND x.g = g.n CROSS JOIN numbers m ON m.n = x.m
             WHERE g.kind = 'group' AND g.id IN (SELECT value FROM json_each($2))",
        )
        .bind(dir)
        .bind(list(membership_groups))
        .fetch_all(&mut *conn)
        .await?
        {
            let m = membership_row(r.get(0), r.get(1), r.get(2))?;
            out.memberships.entry(m.group).or_default().push(m.member);
        }
        Ok(out)
    }

    pub async fn last_seq(&self, dir: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM directories WHERE name = $1")
            .bind(dir)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    pub async fn directory_counts(&self, dir: &str) -> Result<DirectoryCounts, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(dir);
        let users = count("SELECT COUNT(*) FROM users WHERE dir = $1")
            .fetch_one(&mut *conn)
            .await?;
        let groups = count("SELECT COUNT(*) FROM groups_ WHERE dir = $1")
            .fetch_one(&mut *conn)
            .await?;
        let memberships = count("SELECT COUNT(*) FROM memberships WHERE dir = $1")
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        Ok(DirectoryCounts {
            users,
            groups,
            memberships,
            last_seq: self.last_seq(dir).await?,
        })
    }

    pub async fn source_cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM source_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Replace a directory's contents with a completely read snapshot: only what differs is
    /// written, each difference is logged, and the source cursor is stored, in one transaction.
    pub async fn replace_directory(
        &self,
        dir: &str,
        source: &str,
        snapshot: &Snapshot,
        source_cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        let mut log = ChangeWriter::start(&mut tx, &mut learned, dir).await?;

        let gone_users = upsert_all(&mut tx, &mut log, dir, &snapshot.users, now_ms).await?;
        let gone_groups = upsert_all(&mut tx, &mut log, dir, &snapshot.groups, now_ms).await?;

        // Memberships. A first read finds none stored: nothing to compare, all are added.
        let have: HashSet<Membership> = memberships_of(&mut tx, dir).await?.into_iter().collect();
        let mut removed: Vec<&Membership> = Vec::new();
        if !have.is_empty() {
            let want: HashSet<&Membership> = snapshot.memberships.iter().collect();
            removed = have.iter().filter(|m| !want.contains(m)).collect();
            removed.sort_unstable();
        }
        for m in removed {
            delete_membership(&mut tx, &mut learned, dir, m).await?;
            log.push(
                &mut tx,
                &Change::RemoveMember {
                    group: m.group.clone(),
                    member: m.member.clone(),
                },
                now_ms,
            )
            .await?;
        }
        let mut added: Vec<&Membership> = if have.is_empty() {
            snapshot.memberships.iter().collect()
        } else {
            snapshot
                .memberships
                .iter()
                .filter(|m| !have.contains(*m))
                .collect()
        };
        added.sort_unstable();
        added.dedup();
        let rows: Vec<(&str, &MemberRef)> = added
            .iter()
            .map(|m| (m.group.as_str(), &m.member))
            .collect();
        insert_memberships(&mut tx, &mut learned, dir, &rows).await?;
        for m in added {
            log.push(
                &mut tx,
                &Change::AddMember {
                    group: m.group.clone(),
                    member: m.member.clone(),
                },
                now_ms,
            )
            .await?;
        }

        for source_id in gone_users {
            delete_object(
                &mut tx,
                &mut learned,
                dir,
                MemberKind::User,
                &source_id,
                now_ms,
            )
            .await?;
            log.push(&mut tx, &Change::DeleteUser { source_id }, now_ms)
                .await?;
        }
        for source_id in gone_groups {
            delete_object(
                &mut tx,
                &mut learned,
                dir,
                MemberKind::Group,
                &source_id,
                now_ms,
            )
            .await?;
            log.push(&mut tx, &Change::DeleteGroup { source_id }, now_ms)
                .await?;
        }
        let summary = log
            .finish(&mut tx, &mut learned, source, source_cursor)
            .await?;
        tx.commit().await?;
        learned.keep();
        self.note_changes(summary.changes).await?;
        Ok(summary)
    }

    /// Apply changes (a delta read or a push) with their log entries and the source cursor in
    /// one transaction. Changes that change nothing are not logged.
    pub async fn apply_changes(
        &self,
        dir: &str,
        source: &str,
        changes: &[Change],
        source_cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        let summary = write_changes(
            &mut tx,
            &mut learned,
            dir,
            source,
            changes,
            source_cursor,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        learned.keep();
        self.note_changes(summary.changes).await?;
        Ok(summary)
    }

    /// The first `limit` changes after position `after`, in order, each with its position.
    pub async fn changes_since(
        &self,
        dir: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        use futures_util::TryStreamExt;
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut out = Vec::new();
        // A row holds one change or a group's batch of membership changes, its seq the last.
        let mut rows = sqlx::query(
            "SELECT seq, at_ms, kind, data FROM change_log WHERE dir = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(dir)
        .bind(after)
        .fetch(&self.reader);
        while out.len() < limit {
            let Some(r) = rows.try_next().await? else {
                break;
            };
            let (seq, at_ms): (i64, i64) = (r.get(0), r.get(1));
            let kind: &str = r.get(2);
            let data: &str = r.get(3);
            if kind != ADD_MEMBERS && kind != REMOVE_MEMBERS {
                out.push(LoggedChange {
                    seq,
                    at_ms,
                    change: decode("change-log entry", data)?,
                });
                continue;
            }
            let batch: MemberBatch = decode("change-log entry", data)?;
            let first = seq + 1 - batch.members.len() as i64;
            for (n, member) in (first..).zip(batch.members) {
                if n <= after || out.len() >= limit {
                    continue;
                }
                let group = batch.group.clone();
                out.push(LoggedChange {
                    seq: n,
                    at_ms,
                    change: if kind == ADD_MEMBERS {
                        Change::AddMember { group, member }
                    } else {
                        Change::RemoveMember { group, member }
                    },
                });
            }
        }
        Ok(out)
    }
}

/// Apply changes and log those that change something, inside a transaction.
pub(crate) async fn write_changes(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    source: &str,
    changes: &[Change],
    source_cursor: Option<&str>,
    now_ms: i64,
) -> Result<WriteSummary, StoreError> {
    let mut log = ChangeWriter::start(tx, learned, dir).await?;
    write_segments(tx, &mut log, learned, dir, &[(changes, now_ms)]).await?;
    log.finish(tx, learned, source, source_cursor).await
}

/// Apply segments of changes in order, each at its own time, and log those that change
/// something; how many each segment logged. Consecutive upserts and member additions, also
/// across segments, are read and written together in multi-row statements.
pub(crate) async fn write_segments(
    tx: &mut Tx<'_>,
    log: &mut ChangeWriter,
    learned: &mut numbers::Learned,
    dir: &str,
    segments: &[(&[Change], i64)],
) -> Result<Vec<usize>, StoreError> {
    let mut logged = vec![0usize; segments.len()];
    // Every change with its segment and time.
    let all: Vec<(usize, &Change, i64)> = segments
        .iter()
        .enumerate()
        .flat_map(|(s, (changes, at))| changes.iter().map(move |c| (s, c, *at)))
        .collect();
    let mut i = 0;
    while i < all.len() {
        let (seg, change, at) = all[i];
        // The run of changes of the same batchable kind that starts here.
        let same = |c: &Change| {
            matches!(
                (change, c),
                (Change::UpsertUser { .. }, Change::UpsertUser { .. })
                    | (Change::UpsertGroup { .. }, Change::UpsertGroup { .. })
                    | (Change::AddMember { .. }, Change::AddMember { .. })
            )
        };
        let end = all[i..]
            .iter()
            .position(|(_, c, _)| !same(c))
            .map_or(all.len(), |p| i + p)
            .max(i + 1);
        let run = &all[i..end];
        i = end;
        let written: Vec<(usize, Change, i64)> = match change {
            Change::UpsertUser { .. } => {
                let items: Vec<(usize, &User, i64)> = run
                    .iter()
                    .filter_map(|(s, c, at)| match c {
                        Change::UpsertUser { user } => Some((*s, user, *at)),
                        _ => None,
                    })
                    .collect();
                for s in upsert_run(tx, log, dir, &items).await? {
                    logged[s] += 1;
                }
                continue;
            }
            Change::UpsertGroup { .. } => {
                let items: Vec<(usize, &Group, i64)> = run
                    .iter()
                    .filter_map(|(s, c, at)| match c {
                        Change::UpsertGroup { group } => Some((*s, group, *at)),
                        _ => None,
                    })
                    .collect();
                for s in upsert_run(tx, log, dir, &items).await? {
                    logged[s] += 1;
                }
                continue;
            }
            Change::AddMember { .. } => {
                // Inserted in multi-row statements; only the rows that were new are logged.
                let rows: Vec<(&str, &MemberRef)> = run
                    .iter()
                    .filter_map(|(_, c, _)| match c {
                        Change::AddMember { group, member } => Some((group.as_str(), member)),
                        _ => None,
                    })
                    .collect();
                let new = insert_memberships(tx, learned, dir, &rows).await?;
                run.iter()
                    .zip(new)
                    .filter(|(_, new)| *new)
                    .map(|((s, c, at), _)| (*s, (*c).clone(), *at))
                    .collect()
            }
            Change::DeleteUser { source_id } => {
                let gone = delete_object(tx, learned, dir, MemberKind::User, source_id, at).await?;
                gone.then(|| (seg, change.clone(), at))
                    .into_iter()
                    .collect()
            }
            Change::DeleteGroup { source_id } => {
                let gone =
                    delete_object(tx, learned, dir, MemberKind::Group, source_id, at).await?;
                gone.then(|| (seg, change.clone(), at))
                    .into_iter()
                    .collect()
            }
            Change::RemoveMember { group, member } => {
                let m = Membership {
                    group: group.clone(),
                    member: member.clone(),
                };
                let gone = delete_membership(tx, learned, dir, &m).await?;
                gone.then(|| (seg, change.clone(), at))
                    .into_iter()
                    .collect()
            }
        };
        for (s, c, at) in written {
            logged[s] += 1;
            log.push(tx, &c, at).await?;
        }
    }
    Ok(logged)
}

/// A directory's memberships, sorted: its pairs of numbers, then the ids of the numbers they
/// use (one lookup each, not one per membership).
pub(crate) async fn memberships_of(
    conn: &mut sqlx::SqliteConnection,
    dir: &str,
) -> Result<Vec<Membership>, StoreError> {
    let (pairs, ids) = numbers::pairs_with_ids(
        conn,
        "SELECT g, json_group_array(m) FROM memberships WHERE dir = $1 GROUP BY g",
        dir,
    )
    .await?;
    let mut memberships = Vec::with_capacity(pairs.len());
    for (g, m) in pairs {
        let (Some((_, group)), Some((kind, member))) = (ids.get(&g), ids.get(&m)) else {
            return Err(StoreError::Corrupt {
                what: "membership".into(),
                message: format!("numbers {g} or {m} of directory {dir:?} are not known"),
            });
        };
        memberships.push(membership_row(group.clone(), kind, member.clone())?);
    }
    memberships.sort_unstable();
    Ok(memberships)
}

pub(crate) fn membership_row(
    group: String,
    kind: &str,
    id: String,
) -> Result<Membership, StoreError> {
    let kind = match kind {
        "user" => MemberKind::User,
        "group" => MemberKind::Group,
        other => {
            return Err(StoreError::Corrupt {
                what: "membership".into(),
                message: format!("unknown member kind {other:?}"),
            })
        }
    };
    Ok(Membership {
        group,
        member: MemberRef { kind, id },
    })
}
