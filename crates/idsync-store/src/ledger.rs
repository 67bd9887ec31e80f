//! Flows: their cursors and health, and the ledger of what each flow wrote to its target
//! (recorded with each operation's outcome, invariant 3).

use super::*;

impl Store {
    // ---------------------------------------------------------------- flows

    pub async fn register_flow(&self, flow: &str, dir: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO flows (name, dir, cursor) VALUES ($1, $2, 0) ON CONFLICT (name) DO UPDATE SET dir = excluded.dir")
            .bind(flow)
            .bind(dir)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn flow_health(&self, flow: &str) -> Result<FlowHealth, StoreError> {
        let row = sqlx::query(
            "SELECT failures, last_failure_ms, last_failure, quarantined_ms FROM flows WHERE name = $1",
        )
        .bind(flow)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map_or_else(FlowHealth::default, |r| FlowHealth {
            failures: r.get(0),
            last_failure_ms: r.get(1),
            last_failure: r.get(2),
            quarantined_ms: r.get(3),
        }))
    }

    /// Count a bad run; the flow is quarantined once `quarantine_after` come in a row. Returns
    /// the health after it and whether the flow entered quarantine now.
    pub async fn record_flow_failure(
        &self,
        flow: &str,
        dir: &str,
        reason: &str,
        now_ms: i64,
        quarantine_after: i64,
    ) -> Result<(FlowHealth, bool), StoreError> {
        let before = self.flow_health(flow).await?;
        sqlx::query(
            "INSERT INTO flows (name, dir, cursor, failures, last_failure_ms, last_failure) VALUES ($1, $2, 0, 1, $3, $4)
             ON CONFLICT (name) DO UPDATE SET failures = failures + 1, last_failure_ms = $3, last_failure = $4,
               quarantined_ms = CASE WHEN quarantined_ms IS NULL AND failures + 1 >= $5 THEN $3 ELSE quarantined_ms END",
        )
        .bind(flow)
        .bind(dir)
        .bind(now_ms)
        .bind(reason)
        .bind(quarantine_after)
        .execute(&self.writer)
        .await?;
        let after = self.flow_health(flow).await?;
        let entered = before.quarantined_ms.is_none() && after.quarantined_ms.is_some();
        Ok((after, entered))
    }

    /// Count a good run: the count of bad ones starts again and quarantine ends. Returns the
    /// health before it.
    pub async fn record_flow_success(&self, flow: &str) -> Result<FlowHealth, StoreError> {
        let before = self.flow_health(flow).await?;
        if before.failures > 0 || before.quarantined_ms.is_some() {
            sqlx::query("UPDATE flows SET failures = 0, quarantined_ms = NULL WHERE name = $1")
                .bind(flow)
                .execute(&self.writer)
                .await?;
        }
        Ok(before)
    }

    pub async fn flow_cursor(&self, flow: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT cursor FROM flows WHERE name = $1")
            .bind(flow)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    pub async fn set_flow_cursor(&self, flow: &str, seq: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO flows (name, dir, cursor) VALUES ($1, '', $2) ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor")
            .bind(flow)
            .bind(seq)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn load_ledger(&self, flow: &str) -> Result<LedgerState, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let mut ledger = LedgerState::default();
        for r in sqlx::query(
            "SELECT key, target_id, data, disabled_ms, original FROM ledger_users WHERE flow = $1",
        )
        .bind(flow)
        .fetch_all(&mut *conn)
        .await?
        {
            let original: Option<&str> = r.get(4);
            ledger.users.insert(
                r.get(0),
                LedgerUser {
                    target_id: r.get(1),
                    user: decode("ledger user", r.get::<&str, _>(2))?,
                    disabled_ms: r.get(3),
                    original: original.map(|o| decode("ledger user", o)).transpose()?,
                },
            );
        }
        for r in sqlx::query("SELECT key, target_id, data FROM ledger_groups WHERE flow = $1")
            .bind(flow)
            .fetch_all(&mut *conn)
            .await?
        {
            ledger.groups.insert(
                r.get(0),
                LedgerGroup {
                    target_id: r.get(1),
                    group: decode("ledger group", r.get::<&str, _>(2))?,
                },
            );
        }
        // The pairs of numbers, then one lookup per number used; one allocation per key,
        // shared by all its memberships.
        let (pairs, ids) = numbers::pairs_with_ids(
            &mut conn,
            "SELECT g, json_group_array(u) FROM ledger_members WHERE flow = $1 GROUP BY g",
            flow,
        )
        .await?;
        let keys: HashMap<i64, Key> = ids
            .into_iter()
            .map(|(n, (_, id))| (n, Key::from(id)))
            .collect();
        for (g, u) in pairs {
            let (Some(group), Some(user)) = (keys.get(&g), keys.get(&u)) else {
                return Err(StoreError::Corrupt {
                    what: "ledger membership".into(),
                    message: format!("numbers {g} or {u} of flow {flow:?} are not known"),
                });
            };
            ledger
                .members
                .entry(group.to_string())
                .or_default()
                .insert(Key::clone(user));
        }
        nesting::load(&mut conn, flow, &mut ledger).await?;
        Ok(ledger)
    }

    /// The version of a flow's ledger: it grows with every write to the ledger.
    pub async fn ledger_version(&self, flow: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT ledger_version FROM flows WHERE name = $1")
            .bind(flow)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Replace the ledger; returns its new version.
    pub async fn replace_ledger(
        &self,
        flow: &str,
        ledger: &LedgerState,
    ) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        learned
            .reverse
            .scope(&mut tx, Table::LedgerMembers, flow)
            .await?
            .forget();
        for table in ["ledger_users", "ledger_groups", "ledger_members"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE flow = $1"))
                .bind(flow)
                .execute(&mut *tx)
                .await?;
        }
        for (key, u) in &ledger.users {
            upsert_ledger(
                &mut tx,
                "ledger_users",
                flow,
                key,
                &u.target_id,
                &encode("user", &u.user)?,
            )
            .await?;
            if u.disabled_ms.is_some() || u.original.is_some() {
                sqlx::query(
                    "UPDATE ledger_users SET disabled_ms = $3, original = $4 WHERE flow = $1 AND key = $2",
                )
                .bind(flow)
                .bind(key)
                .bind(u.disabled_ms)
                .bind(u.original.as_ref().map(|o| encode("user", o)).transpose()?)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (key, g) in &ledger.groups {
            upsert_ledger(
                &mut tx,
                "ledger_groups",
                flow,
                key,
                &g.target_id,
                &encode("group", &g.group)?,
            )
            .await?;
        }
        for (group, users) in &ledger.members {
            let users: Vec<&str> = users.iter().map(|u| &**u).collect();
            add_ledger_members(&mut tx, &mut learned, flow, group, &users).await?;
        }
        nesting::replace(&mut tx, flow, ledger).await?;
        crowd::ledger_replaced(&mut tx, flow).await?;
        let version = bump_ledger_version(&mut tx, flow).await?;
        tx.commit().await?;
        learned.keep();
        Ok(version)
    }

    /// Record operation outcomes: op-log rows and the ledger changes of applied operations, in
    /// one transaction. Returns the ledger's new version.
    pub async fn record_ops(
        &self,
        flow: &str,
        run_id: &str,
        records: &[OpRecord],
    ) -> Result<i64, StoreError> {
        self.record_ops_served(flow, run_id, records, None).await
    }

    /// [`Store::record_ops`] for a flow whose target idsync serves: the events of the ledger
    /// changes join the target's feed in the same transaction (decision 0031).
    pub async fn record_ops_served(
        &self,
        flow: &str,
        run_id: &str,
        records: &[OpRecord],
        served: Option<&ServedEvents<'_>>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        // Opened first, so that a kept ledger map moves on with this write's version even if
        // no membership changes.
        learned
            .reverse
            .scope(&mut tx, Table::LedgerMembers, flow)
            .await?;
        let mut n: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(n), 0) FROM run_ops WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
        let rows: Vec<OpRow> = records
            .iter()
            .map(OpRow::of)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt {
                what: "provisioning log".into(),
                message: e.to_string(),
            })?;
        for chunk in rows.chunks(OPS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO run_ops (run_id, n, seq, key, object, action, reason, before_, after_, changed, outcome, error, duration_ms, at_ms) ",
            );
            q.push_values(chunk, |mut b, row| {
                n += 1;
                let rec = row.rec;
                b.push_bind(run_id)
                    .push_bind(n)
                    .push_bind(rec.seq)
                    .push_bind(&*rec.op.key)
                    .push_bind(&row.object)
                    .push_bind(rec.op.action.name())
                    .push_bind(&row.reason)
                    .push_bind(row.before.as_deref())
                    .push_bind(row.after.as_deref())
                    .push_bind(&row.changed)
                    .push_bind(&rec.outcome)
                    .push_bind(rec.error.as_deref())
                    .push_bind(rec.duration_ms)
                    .push_bind(rec.at_ms);
            });
            q.build().execute(&mut *tx).await?;
        }
        // The ledger follows in order; consecutive user creations (a first sync's users phase)
        // in multi-row statements.
        let applied: Vec<&OpRow> = rows.iter().filter(|r| r.rec.applied).collect();
        let mut rest = &applied[..];
        while let Some(first) = rest.first() {
            let created = rest
                .iter()
                .take_while(|r| matches!(r.rec.op.action, Action::CreateUser { .. }))
                .count();
            if created > 0 {
                ledger_created_users(&mut tx, flow, &rest[..created]).await?;
                rest = &rest[created..];
            } else {
                apply_to_ledger(&mut tx, &mut learned, flow, first).await?;
                rest = &rest[1..];
            }
        }
        if let Some(served) = served {
            crowd::append_events(&mut tx, flow, served).await?;
        }
        let version = bump_ledger_version(&mut tx, flow).await?;
        if served.is_some() {
            // What changed, for the served directory to follow (issue 17).
            let ops: Vec<&idsync_core::Operation> = applied.iter().map(|r| &r.rec.op).collect();
            crowd_changes::note_changes(&mut tx, flow, version, &ops).await?;
        }
        learned
            .reverse
            .committed_as(Table::LedgerMembers, flow, version);
        tx.commit().await?;
        learned.keep();
        Ok(version)
    }
}

/// Add users to a group of a flow's ledger: numbers are given and looked up inside SQLite,
/// no row comes back to this side. `OR IGNORE` (not `ON CONFLICT DO NOTHING`) lets SQLite skip
/// the statement journal: every page an insert touches would otherwise be copied first.
pub(crate) async fn add_ledger_members(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    group: &str,
    users: &[&str],
) -> Result<(), StoreError> {
    // The users as one JSON array: the statements' text never changes, so they are prepared
    // once, and one parameter is bound instead of one per user. CROSS JOIN fixes the order
    // (the group, then each listed user by the index), whatever the statistics say.
    let users = encode("ledger members", &users)?;
    sqlx::query(
        "INSERT OR IGNORE INTO numbers (kind, id)
         SELECT 'group', $1 UNION ALL SELECT 'user', value FROM json_each($2)",
    )
    .bind(group)
    .bind(&users)
    .execute(&mut **tx)
    .await?;
    const INSERT: &str = "INSERT OR IGNORE INTO ledger_members (flow, g, u)
         SELECT $1, g.n, u.n FROM numbers g CROSS JOIN json_each($3) j
         CROSS JOIN numbers u ON u.kind = 'user' AND u.id = j.value
         WHERE g.kind = 'group' AND g.id = $2";
    let scope = learned
        .reverse
        .scope(tx, Table::LedgerMembers, flow)
        .await?;
    // The new rows come back only when a reverse map follows the ledger's changes.
    if scope.follows() {
        let added: Vec<(i64, i64)> = sqlx::query_as(&format!("{INSERT} RETURNING g, u"))
            .bind(flow)
            .bind(group)
            .bind(&users)
            .fetch_all(&mut **tx)
            .await?;
        for (g, u) in added {
            scope.add(g, u);
        }
    } else {
        sqlx::query(INSERT)
            .bind(flow)
            .bind(group)
            .bind(&users)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Delete ledger memberships by `sql` (binding the flow and one key), following what went.
pub(crate) async fn delete_ledger_members(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    sql: &str,
    key: &str,
) -> Result<(), StoreError> {
    let gone: Vec<(i64, i64)> = sqlx::query_as(sql)
        .bind(flow)
        .bind(key)
        .fetch_all(&mut **tx)
        .await?;
    left_ledger(tx, learned, flow, gone).await
}

/// Ledger memberships a statement deleted (returned as pairs of numbers): the flow's reverse
/// map follows.
pub(crate) async fn left_ledger(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    gone: Vec<(i64, i64)>,
) -> Result<(), StoreError> {
    let scope = learned
        .reverse
        .scope(tx, Table::LedgerMembers, flow)
        .await?;
    for (g, u) in gone {
        scope.remove(g, u);
    }
    Ok(())
}

pub(crate) async fn delete_membership(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    m: &Membership,
) -> Result<bool, StoreError> {
    let gone: Option<(i64, i64)> = sqlx::query_as(
        "DELETE FROM memberships WHERE dir = $1
         AND g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2)
         AND m = (SELECT n FROM numbers WHERE kind = $3 AND id = $4)
         RETURNING g, m",
    )
    .bind(dir)
    .bind(&m.group)
    .bind(m.member.kind.as_str())
    .bind(&m.member.id)
    .fetch_optional(&mut **tx)
    .await?;
    let n = u64::from(gone.is_some());
    if let Some((g, m)) = gone {
        learned
            .reverse
            .scope(tx, Table::Memberships, dir)
            .await?
            .remove(g, m);
    }
    Ok(n > 0)
}

pub(crate) async fn upsert_ledger(
    tx: &mut Tx<'_>,
    table: &str,
    flow: &str,
    key: &str,
    target_id: &str,
    data: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO {table} (flow, key, target_id, data) VALUES ($1, $2, $3, $4)
         ON CONFLICT (flow, key) DO UPDATE SET target_id = excluded.target_id, data = excluded.data"
    ))
    .bind(flow)
    .bind(key)
    .bind(target_id)
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A group's ledger memberships (bound: the flow and the group's key).
pub(crate) const GROUP_LEDGER_MEMBERS: &str = "DELETE FROM ledger_members WHERE flow = $1
     AND g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2) RETURNING g, u";

pub(crate) async fn bump_ledger_version(tx: &mut Tx<'_>, flow: &str) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar(
        "UPDATE flows SET ledger_version = ledger_version + 1 WHERE name = $1 RETURNING ledger_version",
    )
    .bind(flow)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(v.unwrap_or(0))
}

pub(crate) async fn update_ledger_data(
    tx: &mut Tx<'_>,
    table: &str,
    flow: &str,
    key: &str,
    data: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE {table} SET data = $3 WHERE flow = $1 AND key = $2"
    ))
    .bind(flow)
    .bind(key)
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A ledger user is no longer disabled: no disable time, no anonymized real values.
pub(crate) async fn forget_disable(
    tx: &mut Tx<'_>,
    flow: &str,
    key: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ledger_users SET disabled_ms = NULL, original = NULL WHERE flow = $1 AND key = $2",
    )
    .bind(flow)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The ledger side of `LedgerState::record`, in SQL.
/// Provisioning-log rows per multi-row INSERT (14 parameters each).
pub(crate) const OPS_PER_INSERT: usize = 500;

/// Users the target created, into the ledger: their target ids and values (a created user's
/// logged `after` is its JSON), and any earlier disabling forgotten (as `forget_disable`).
pub(crate) async fn ledger_created_users(
    tx: &mut Tx<'_>,
    flow: &str,
    rows: &[&OpRow<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO ledger_users (flow, key, target_id, data) ",
        );
        q.push_values(chunk, |mut b, row| {
            b.push_bind(flow)
                .push_bind(&*row.rec.op.key)
                .push_bind(row.rec.target_id.as_deref().unwrap_or_default())
                .push_bind(row.after.as_deref().unwrap_or_default());
        });
        q.push(" ON CONFLICT (flow, key) DO UPDATE SET target_id = excluded.target_id, data = excluded.data, disabled_ms = NULL, original = NULL");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn apply_to_ledger(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    row: &OpRow<'_>,
) -> Result<(), StoreError> {
    let rec = row.rec;
    let key = rec.op.key.as_str();
    let target_id = rec.target_id.as_deref().unwrap_or_default();
    match &rec.op.action {
        Action::CreateUser { .. } => ledger_created_users(tx, flow, &[row]).await?,
        Action::UpdateUser { after, .. } => {
            update_ledger_data(tx, "ledger_users", flow, key, &encode("user", after)?).await?;
            // An update that moved the user to a new id (as `LedgerState::record`).
            if !target_id.is_empty() {
                sqlx::query("UPDATE ledger_users SET target_id = $3 WHERE flow = $1 AND key = $2")
                    .bind(flow)
                    .bind(key)
                    .bind(target_id)
                    .execute(&mut **tx)
                    .await?;
            }
            if after.active {
                forget_disable(tx, flow, key).await?;
            }
        }
        Action::DisableUser { before, after } => {
            update_ledger_data(tx, "ledger_users", flow, key, &encode("user", after)?).await?;
            if !target_id.is_empty() {
                sqlx::query("UPDATE ledger_users SET target_id = $3 WHERE flow = $1 AND key = $2")
                    .bind(flow)
                    .bind(key)
                    .bind(target_id)
                    .execute(&mut **tx)
                    .await?;
            }
            // As `LedgerState::record`: the first disable's time, and the real values of an
            // anonymized copy (once).
            let original = (before.user_name != after.user_name)
                .then(|| encode("user", before))
                .transpose()?;
            sqlx::query("UPDATE ledger_users SET disabled_ms = COALESCE(disabled_ms, $3), original = COALESCE(original, $4) WHERE flow = $1 AND key = $2")
                .bind(flow)
                .bind(key)
                .bind(rec.at_ms)
                .bind(original)
                .execute(&mut **tx)
                .await?;
        }
        Action::DeleteUser { .. } => {
            sqlx::query("DELETE FROM ledger_users WHERE flow = $1 AND key = $2")
                .bind(flow)
                .bind(key)
                .execute(&mut **tx)
                .await?;
            // The user's groups from the reverse map (no index by user), then by primary key.
            let number = numbers::numbers(tx, learned, [("user", key)], false)
                .await?
                .get(&("user", key))
                .copied();
            if let Some(u) = number {
                let scope = learned
                    .reverse
                    .scope(tx, Table::LedgerMembers, flow)
                    .await?;
                let groups = scope.groups_of(tx, u).await?;
                if !groups.is_empty() {
                    sqlx::query("DELETE FROM ledger_members WHERE flow = $1 AND u = $2 AND g IN (SELECT value FROM json_each($3))")
                        .bind(flow)
                        .bind(u)
                        .bind(encode("groups", &groups)?)
                        .execute(&mut **tx)
                        .await?;
                }
                scope.left(u);
            }
        }
        Action::CreateGroup { group, members } => {
            // A new group starts without members, also when it replaces one, or with those
            // it was created with.
            delete_ledger_members(tx, learned, flow, GROUP_LEDGER_MEMBERS, key).await?;
            nesting::created(tx, flow, key).await?;
            upsert_ledger(
                tx,
                "ledger_groups",
                flow,
                key,
                target_id,
                &encode("group", group)?,
            )
            .await?;
            if !members.is_empty() {
                let users: Vec<&str> = members.iter().map(|u| &**u).collect();
                add_ledger_members(tx, learned, flow, key, &users).await?;
            }
        }
        Action::UpdateGroup { after, .. } => {
            update_ledger_data(tx, "ledger_groups", flow, key, &encode("group", after)?).await?
        }
        Action::DeleteGroup { .. } => {
            sqlx::query("DELETE FROM ledger_groups WHERE flow = $1 AND key = $2")
                .bind(flow)
                .bind(key)
                .execute(&mut **tx)
                .await?;
            delete_ledger_members(tx, learned, flow, GROUP_LEDGER_MEMBERS, key).await?;
            nesting::deleted(tx, flow, key).await?;
        }
        Action::AddMembers { users, .. } => {
            let users: Vec<&str> = users.iter().map(|u| &**u).collect();
            add_ledger_members(tx, learned, flow, key, &users).await?;
        }
        Action::RemoveMembers { users, .. } => {
            // One statement, the users as one JSON array (as `add_ledger_members`).
            let users: Vec<&str> = users.iter().map(|u| &**u).collect();
            let gone: Vec<(i64, i64)> = sqlx::query_as(
                "DELETE FROM ledger_members WHERE flow = $1
                 AND g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2)
                 AND u IN (SELECT n FROM numbers WHERE kind = 'user' AND id IN (SELECT value FROM json_each($3)))
                 RETURNING g, u",
            )
            .bind(flow)
            .bind(key)
            .bind(encode("ledger members", &users)?)
            .fetch_all(&mut **tx)
            .await?;
            left_ledger(tx, learned, flow, gone).await?;
        }
        Action::AddChildGroups { groups, .. } => nesting::add(tx, flow, key, groups).await?,
        Action::RemoveChildGroups { groups, .. } => nesting::remove(tx, flow, key, groups).await?,
    }
    Ok(())
}
