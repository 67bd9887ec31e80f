//! The push endpoints' group commit: checked writes queue for the single writer, which
//! commits them together (uniqueness checked in the same transaction) or, when one fails, alone.

use super::*;

/// A checked write waiting for the group commit.
pub(crate) struct WriteJob {
    pub(super) dir: String,
    pub(super) source: String,
    pub(super) checks: Vec<Unique>,
    pub(super) changes: Vec<Change>,
    /// Member changes whose kinds the writer decides (then `changes` is empty).
    pub(super) members: Option<MemberPatch>,
    pub(super) now_ms: i64,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<WriteSummary, StoreError>>,
}

impl std::fmt::Debug for WriteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteJob")
            .field("dir", &self.dir)
            .field("changes", &self.changes.len())
            .finish()
    }
}

/// Most writes committed together.
pub(super) const GROUP_COMMIT_MAX: usize = 256;

pub(super) async fn writer_loop(
    pool: sqlx::SqlitePool,
    numbers: NumberCache,
    mut jobs: tokio::sync::mpsc::Receiver<WriteJob>,
) {
    while let Some(first) = jobs.recv().await {
        // Requests being handled right now are let through to the queue first: one commit
        // for more of them.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        commit_group(&pool, &numbers, batch).await;
    }
}

pub(super) async fn commit_group(
    pool: &sqlx::SqlitePool,
    numbers: &NumberCache,
    batch: Vec<WriteJob>,
) {
    match commit_together(pool, numbers, &batch).await {
        Ok(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(_) => {
            // A statement failed and nothing of the group was committed: each write is tried
            // again in its own transaction, so a bad one fails alone.
            for job in batch {
                let result = commit_alone(pool, numbers, &job).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

/// Commit a group of writes in one transaction: their uniqueness rules decided together (a
/// write that breaks one is answered `Conflict` and writes nothing), then the changes of the
/// others, directory by directory, in multi-row statements.
pub(super) async fn commit_together(
    pool: &sqlx::SqlitePool,
    numbers: &NumberCache,
    batch: &[WriteJob],
) -> Result<Vec<Result<WriteSummary, StoreError>>, StoreError> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let mut learned = numbers.learn();
    let mut verdicts = check_together(&mut tx, batch).await?;
    let resolved = resolve_members(&mut tx, batch, &mut verdicts).await?;
    let changes_of = |n: usize| resolved[n].as_deref().unwrap_or(&batch[n].changes);
    let checked_at = started.elapsed();
    let mut results: Vec<Result<WriteSummary, StoreError>> = Vec::with_capacity(batch.len());
    let mut dirs: Vec<&str> = Vec::new();
    for (job, verdict) in batch.iter().zip(verdicts) {
        if !dirs.contains(&job.dir.as_str()) {
            dirs.push(&job.dir);
        }
        results.push(verdict.map(|()| WriteSummary::default()));
    }
    for dir in dirs {
        let accepted: Vec<usize> = (0..batch.len())
            .filter(|&n| batch[n].dir == dir && results[n].is_ok())
            .collect();
        let segments: Vec<(&[Change], i64)> = accepted
            .iter()
            .map(|&n| (changes_of(n), batch[n].now_ms))
            .collect();
        let mut log = crate::ChangeWriter::start(&mut tx, &mut learned, dir).await?;
        let logged = crate::write_segments(&mut tx, &mut log, &mut learned, dir, &segments).await?;
        let summary = log.finish(&mut tx, &mut learned, "", None).await?;
        for (n, changes) in accepted.into_iter().zip(logged) {
            if changes > 0 {
                touch_groups(&mut tx, dir, changes_of(n), batch[n].now_ms).await?;
            }
            results[n] = Ok(WriteSummary {
                changes,
                last_seq: summary.last_seq,
            });
        }
    }
    let written_at = started.elapsed();
    tx.commit().await?;
    learned.keep();
    tracing::debug!(
        writes = batch.len(),
        changes = (0..batch.len()).map(|n| changes_of(n).len()).sum::<usize>(),
        check_us = checked_at.as_micros() as u64,
        write_us = (written_at - checked_at).as_micros() as u64,
        commit_us = (started.elapsed() - written_at).as_micros() as u64,
        "writes committed together"
    );
    Ok(results)
}

/// One write in its own transaction, its rules checked by queries.
pub(super) async fn commit_alone(
    pool: &sqlx::SqlitePool,
    numbers: &NumberCache,
    job: &WriteJob,
) -> Result<WriteSummary, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| StoreError::NotCommitted(e.to_string()))?;
    let mut learned = numbers.learn();
    let summary = checked(&mut tx, &mut learned, job).await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::NotCommitted(e.to_string()))?;
    learned.keep();
    Ok(summary)
}

/// A name as SQLite's `lower()` folds it (ASCII only), so that names compare here as they do
/// in the store's queries and indexes.
pub(super) fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Which users and groups hold names, by directory, kind and folded name.
pub(super) type NameKey = (String, MemberKind, String);

/// Decide the uniqueness rules of a group of writes, in order: one query per directory and
/// kind for who holds the names the rules test; then each write that passes has its renames,
/// creations and deletions applied to what the later writes of the group see.
pub(super) async fn check_together(
    tx: &mut crate::Tx<'_>,
    batch: &[WriteJob],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    // The tested names, by directory and kind.
    let mut tested: std::collections::BTreeMap<(&str, MemberKind), Vec<String>> =
        Default::default();
    for job in batch {
        for check in &job.checks {
            let (kind, name, _) = check.parts();
            tested
                .entry((job.dir.as_str(), kind))
                .or_default()
                .push(fold(name));
        }
    }
    // Holders of the tested names, and the (folded) name each of them holds.
    let mut holders: std::collections::HashMap<NameKey, std::collections::BTreeSet<String>> =
        Default::default();
    let mut held: std::collections::HashMap<NameKey, String> = Default::default();
    for ((dir, kind), names) in &tested {
        let (table, column) = name_column(*kind);
        for chunk in names.chunks(400) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "SELECT source_id, lower({column}) FROM {table} WHERE dir = "
            ));
            q.push_bind(*dir).push(format!(" AND lower({column}) IN ("));
            let mut sep = q.separated(", ");
            for name in chunk {
                sep.push_bind(name.as_str());
            }
            sep.push_unseparated(")");
            for r in q.build().fetch_all(&mut **tx).await? {
                let (id, name): (String, String) = (r.get(0), r.get(1));
                held.insert((dir.to_string(), *kind, id.clone()), name.clone());
                holders
                    .entry((dir.to_string(), *kind, name))
                    .or_default()
                    .insert(id);
            }
        }
    }
    let mut verdicts = Vec::with_capacity(batch.len());
    for job in batch {
        let broken = job.checks.iter().find(|check| {
            let (kind, name, _) = check.parts();
            holders
                .get(&(job.dir.clone(), kind, fold(name)))
                .is_some_and(|h| check.broken_by(h.iter()))
        });
        if let Some(check) = broken {
            verdicts.push(Err(check.conflict()));
            continue;
        }
        verdicts.push(Ok(()));
        // What later writes of the group see: this write's names.
        for change in &job.changes {
            let (kind, id, name) = match change {
                Change::UpsertUser { user } => (
                    MemberKind::User,
                    &user.source_id,
                    Some(fold(&user.user_name)),
                ),
                Change::UpsertGroup { group } => (
                    MemberKind::Group,
                    &group.source_id,
                    Some(fold(&group.display_name)),
                ),
                Change::DeleteUser { source_id } => (MemberKind::User, source_id, None),
                Change::DeleteGroup { source_id } => (MemberKind::Group, source_id, None),
                Change::AddMember { .. } | Change::RemoveMember { .. } => continue,
            };
            let key = (job.dir.clone(), kind, id.clone());
            if let Some(old) = held.remove(&key) {
                if let Some(h) = holders.get_mut(&(job.dir.clone(), kind, old)) {
                    h.remove(id);
                }
            }
            if let Some(name) = name {
                holders
                    .entry((job.dir.clone(), kind, name.clone()))
                    .or_default()
                    .insert(id.clone());
                held.insert(key, name);
            }
        }
    }
    Ok(verdicts)
}

pub(super) async fn checked(
    tx: &mut crate::Tx<'_>,
    learned: &mut Learned,
    job: &WriteJob,
) -> Result<WriteSummary, StoreError> {
    for check in &job.checks {
        let (kind, name, _) = check.parts();
        let (table, column) = name_column(kind);
        let holders: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT source_id FROM {table} WHERE dir = $1 AND lower({column}) = lower($2)"
        ))
        .bind(&job.dir)
        .bind(name)
        .fetch_all(&mut **tx)
        .await?;
        if check.broken_by(holders.iter()) {
            return Err(check.conflict());
        }
    }
    let mut verdict = [Ok(())];
    let resolved = resolve_members(tx, std::slice::from_ref(job), &mut verdict).await?;
    let [verdict] = verdict;
    verdict?;
    let changes = resolved[0].as_deref().unwrap_or(&job.changes);
    let summary = write_changes(
        tx,
        learned,
        &job.dir,
        &job.source,
        changes,
        None,
        job.now_ms,
    )
    .await?;
    if summary.changes > 0 {
        touch_groups(tx, &job.dir, changes, job.now_ms).await?;
    }
    Ok(summary)
}

/// A pushed write that changed members changed their groups: each group's `modified_ms` (what
/// the SCIM endpoint serves as `meta.lastModified`) moves to the write's time, as an upsert
/// of the group itself would move it.
pub(super) async fn touch_groups(
    tx: &mut crate::Tx<'_>,
    dir: &str,
    changes: &[Change],
    now_ms: i64,
) -> Result<(), StoreError> {
    let groups: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::AddMember { group, .. } | Change::RemoveMember { group, .. } => {
                Some(group.as_str())
            }
            _ => None,
        })
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE groups_ SET modified_ms = max(modified_ms, $3)
         WHERE dir = $1 AND source_id IN (SELECT value FROM json_each($2))",
    )
    .bind(dir)
    .bind(crate::encode("groups", &groups)?)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether an id names a user, and whether it names a group, of a directory.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Named {
    pub(super) user: bool,
    pub(super) group: bool,
}

/// What each of `ids` names in the directory, in one query (`NOT_JUST_USERS_SQL`).
pub(super) async fn what_ids_name<'a>(
    conn: &mut sqlx::SqliteConnection,
    dir: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<std::collections::HashMap<&'a str, Named>, StoreError> {
    let mut named: std::collections::HashMap<&'a str, Named> = ids
        .map(|id| {
            let user_only = Named {
                user: true,
                group: false,
            };
            (id, user_only)
        })
        .collect();
    let list: Vec<&str> = named.keys().copied().collect();
    let rows = sqlx::query(NOT_JUST_USERS_SQL)
        .bind(dir)
        .bind(crate::encode("ids", &list)?)
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let id: String = r.get(0);
        if let Some(n) = named.get_mut(id.as_str()) {
            n.user = r.get(1);
            n.group = r.get(2);
        }
    }
    Ok(named)
}

/// Turn the member patches of a group of writes into changes. One query per directory says
/// what the ids they name are; then, in order, each patch sees the users and groups that the
/// accepted writes before it created and deleted. A patch that fails (see
/// [`Store::patch_members`]) has its verdict set and no changes.
pub(super) async fn resolve_members(
    tx: &mut crate::Tx<'_>,
    batch: &[WriteJob],
    verdicts: &mut [Result<(), StoreError>],
) -> Result<Vec<Option<Vec<Change>>>, StoreError> {
    let mut resolved = vec![None; batch.len()];
    // The ids the patches name, by directory.
    let mut named: std::collections::HashMap<&str, std::collections::HashMap<&str, Named>> =
        Default::default();
    for (job, verdict) in batch.iter().zip(verdicts.iter()) {
        if let (Some(patch), Ok(())) = (&job.members, verdict) {
            let ids = named.entry(job.dir.as_str()).or_default();
            ids.entry(patch.group.as_str()).or_default();
            for (_, id) in patch.ops.iter().filter(|(add, _)| *add) {
                ids.entry(id.as_str()).or_default();
            }
        }
    }
    for (dir, ids) in &mut named {
        *ids = what_ids_name(tx, dir, ids.keys().copied()).await?;
    }
    for (n, job) in batch.iter().enumerate() {
        if verdicts[n].is_err() {
            continue;
        }
        let Some(ids) = named.get_mut(job.dir.as_str()) else {
            continue;
        };
        if let Some(patch) = &job.members {
            match member_changes(ids, patch) {
                Ok(changes) => resolved[n] = Some(changes),
                Err(e) => verdicts[n] = Err(e),
            }
            continue;
        }
        // What later patches see of this write.
        for change in &job.changes {
            let (id, user, exists) = match change {
                Change::UpsertUser { user } => (&user.source_id, true, true),
                Change::UpsertGroup { group } => (&group.source_id, false, true),
                Change::DeleteUser { source_id } => (source_id, true, false),
                Change::DeleteGroup { source_id } => (source_id, false, false),
                Change::AddMember { .. } | Change::RemoveMember { .. } => continue,
            };
            if let Some(n) = ids.get_mut(id.as_str()) {
                if user {
                    n.user = exists;
                } else {
                    n.group = exists;
                }
            }
        }
    }
    Ok(resolved)
}

/// The changes of a member patch, given what its ids name. An id that names both a user and
/// a group is taken as the user.
pub(super) fn member_changes(
    ids: &std::collections::HashMap<&str, Named>,
    patch: &MemberPatch,
) -> Result<Vec<Change>, StoreError> {
    let named = |id: &str| ids.get(id).copied().unwrap_or_default();
    if !named(&patch.group).group {
        return Err(StoreError::NotFound(format!(
            "no group with id {}",
            patch.group
        )));
    }
    let mut changes = Vec::with_capacity(patch.ops.len());
    for (add, id) in &patch.ops {
        let kinds: &[MemberKind] = if !*add {
            // A member named for removal may be a user or a group; removing what is not
            // there changes nothing.
            &[MemberKind::User, MemberKind::Group]
        } else if *id == patch.group {
            return Err(StoreError::Invalid(format!(
                "members: group {id} cannot be a member of itself"
            )));
        } else {
            match named(id) {
                Named { user: true, .. } => &[MemberKind::User],
                Named { group: true, .. } => &[MemberKind::Group],
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "members: no user or group with id {id}"
                    )))
                }
            }
        };
        for kind in kinds {
            let member = MemberRef {
                kind: *kind,
                id: id.clone(),
            };
            let group = patch.group.clone();
            changes.push(if *add {
                Change::AddMember { group, member }
            } else {
                Change::RemoveMember { group, member }
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use idsync_core::User;

    /// A store in memory whose directory `d` holds what these changes write.
    async fn store_holding(changes: &[Change]) -> Store {
        let store = Store::open_in_memory().await.unwrap();
        store
            .apply_changes("d", "scim", changes, None, 1)
            .await
            .unwrap();
        store
    }

    fn job(checks: Vec<Unique>, changes: Vec<Change>) -> WriteJob {
        WriteJob {
            dir: "d".into(),
            source: "scim".into(),
            checks,
            changes,
            members: None,
            now_ms: 1,
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    fn create(id: &str, name: &str) -> WriteJob {
        job(
            vec![Unique::UserName {
                name: name.into(),
                except: None,
            }],
            vec![Change::UpsertUser {
                user: User::new(id, name),
            }],
        )
    }

    fn rename(id: &str, name: &str) -> WriteJob {
        job(
            vec![Unique::UserName {
                name: name.into(),
                except: Some(id.into()),
            }],
            vec![Change::UpsertUser {
                user: User::new(id, name),
            }],
        )
    }

    /// Writes committed together see what the earlier ones of their group did: a name freed
    /// by a rename or a deletion is free, a name taken by a creation or a rename is taken.
    #[tokio::test]
    async fn writes_of_a_group_see_the_names_the_earlier_ones_took_and_freed() {
        let store = store_holding(&[
            Change::UpsertUser {
                user: User::new("u1", "Ada"),
            },
            Change::UpsertUser {
                user: User::new("u2", "grace"),
            },
        ])
        .await;
        let batch = vec![
            create("n1", "ADA"),          // taken by u1
            rename("u1", "ada.lovelace"), // frees "ada"
            create("n2", "ada"),          // now free
            create("n3", "Ada.Lovelace"), // taken by the rename
            job(
                vec![],
                vec![Change::DeleteUser {
                    source_id: "u2".into(),
                }],
            ), // frees "grace"
            create("n4", "Grace"),        // free
            rename("n2", "grace"),        // taken by n4
            rename("u1", "ada.lovelace"), // its own name: fine
        ];
        let mut tx = store.writer.begin().await.unwrap();
        let verdicts: Vec<bool> = check_together(&mut tx, &batch)
            .await
            .unwrap()
            .iter()
            .map(Result::is_ok)
            .collect();
        assert_eq!(
            verdicts,
            [false, true, true, false, true, true, false, true]
        );
    }

    fn members(group: &str, ops: &[(bool, &str)]) -> WriteJob {
        let mut j = job(vec![], vec![]);
        j.members = Some(MemberPatch {
            group: group.into(),
            ops: ops.iter().map(|(add, id)| (*add, id.to_string())).collect(),
        });
        j
    }

    /// Member patches committed together are decided by the writer against what the store
    /// holds and what the writes before them in the group did: a user created earlier in the
    /// group can be added, one deleted earlier cannot, a group member is a group, a group
    /// cannot hold itself, a patch of a missing group is NotFound.
    #[tokio::test]
    async fn member_patches_see_what_the_writes_before_them_did() {
        let store = store_holding(&[
            Change::UpsertUser {
                user: User::new("u1", "ada"),
            },
            Change::UpsertUser {
                user: User::new("u2", "grace"),
            },
            Change::UpsertGroup {
                group: idsync_core::Group::new("g1", "Engineering"),
            },
            Change::UpsertGroup {
                group: idsync_core::Group::new("g2", "Ops"),
            },
        ])
        .await;
        let delete_u2 = job(
            vec![],
            vec![Change::DeleteUser {
                source_id: "u2".into(),
            }],
        );
        let batch = vec![
            members("g1", &[(true, "u3")]), // u3 is not created yet
            create("u3", "linus"),
            members("g1", &[(true, "u3"), (true, "g2"), (false, "u9")]),
            delete_u2,
            members("g1", &[(true, "u1"), (true, "u2")]), // u2 was just deleted
            members("g2", &[(true, "g2")]),               // itself
            members("g9", &[(false, "u1")]),              // no such group
        ];
        let mut tx = store.writer.begin().await.unwrap();
        let mut verdicts = check_together(&mut tx, &batch).await.unwrap();
        let resolved = resolve_members(&mut tx, &batch, &mut verdicts)
            .await
            .unwrap();
        let outcome: Vec<&str> = verdicts
            .iter()
            .map(|v| match v {
                Ok(()) => "ok",
                Err(StoreError::Invalid(_)) => "invalid",
                Err(StoreError::NotFound(_)) => "not found",
                Err(_) => "other",
            })
            .collect();
        assert_eq!(
            outcome,
            [
                "invalid",
                "ok",
                "ok",
                "ok",
                "invalid",
                "invalid",
                "not found"
            ]
        );
        let add = |kind, id: &str| Change::AddMember {
            group: "g1".into(),
            member: MemberRef {
                kind,
                id: id.into(),
            },
        };
        let remove = |kind, id: &str| Change::RemoveMember {
            group: "g1".into(),
            member: MemberRef {
                kind,
                id: id.into(),
            },
        };
        assert_eq!(
            resolved[2].as_deref(),
            Some(
                &[
                    add(MemberKind::User, "u3"),
                    add(MemberKind::Group, "g2"),
                    remove(MemberKind::User, "u9"),
                    remove(MemberKind::Group, "u9"),
                ][..]
            )
        );
        assert!(resolved
            .iter()
            .enumerate()
            .all(|(n, r)| r.is_some() == (n == 2)));
    }
}
