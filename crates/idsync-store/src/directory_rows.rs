//! Users, groups and memberships as the directory tables hold them: multi-row upserts that
//! keep internal ids and log each change, deletes that take their memberships with them.

use super::*;

/// Users and groups, as the directory tables hold them.
pub(crate) trait DirObject: Clone + serde::Serialize {
    const TABLE: &'static str;
    /// The column holding the object's name (userName, displayName), for lookups.
    const NAME_COLUMN: &'static str;
    const WHAT: &'static str;
    fn source_id(&self) -> &str;
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn set_id(&mut self, id: String);
    /// The JSON of the object's upsert change (`Change::UpsertUser`, `Change::UpsertGroup`)
    /// around the object's own JSON `data`, and its kind: what `ChangeWriter::push` would log,
    /// without encoding the object a second time.
    fn change_json(data: &str) -> (&'static str, String);
    /// Users: the externalId and the (lowercased) emails kept in lookup indexes.
    fn lookups(&self) -> Option<(Option<&str>, Vec<String>)> {
        None
    }
}

impl DirObject for User {
    const TABLE: &'static str = "users";
    const NAME_COLUMN: &'static str = "user_name";
    const WHAT: &'static str = "user";
    fn change_json(data: &str) -> (&'static str, String) {
        let kind = "upsert_user";
        (kind, format!(r#"{{"change":"{kind}","user":{data}}}"#))
    }
    fn source_id(&self) -> &str {
        &self.source_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.user_name
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn lookups(&self) -> Option<(Option<&str>, Vec<String>)> {
        let mut emails: Vec<String> = self.emails.iter().map(|e| e.value.to_lowercase()).collect();
        emails.sort();
        emails.dedup();
        Some((self.external_id.as_deref(), emails))
    }
}

impl DirObject for Group {
    const TABLE: &'static str = "groups_";
    const NAME_COLUMN: &'static str = "display_name";
    const WHAT: &'static str = "group";
    fn change_json(data: &str) -> (&'static str, String) {
        let kind = "upsert_group";
        (kind, format!(r#"{{"change":"{kind}","group":{data}}}"#))
    }
    fn source_id(&self) -> &str {
        &self.source_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.display_name
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
}

/// Insert or update a run of users or groups (keeping their internal ids): one read of what is
/// stored, multi-row writes of what differs, and each upsert logged (around the JSON written).
/// Returns the segment of each logged upsert, in order; objects already stored the same are
/// left out.
pub(crate) async fn upsert_run<T: DirObject>(
    tx: &mut Tx<'_>,
    log: &mut ChangeWriter,
    dir: &str,
    items: &[(usize, &T, i64)],
) -> Result<Vec<usize>, StoreError> {
    // What is stored, as (internal id, data), by source id.
    let mut stored: HashMap<String, (String, String)> = HashMap::default();
    let ids: Vec<&str> = items.iter().map(|(_, t, _)| t.source_id()).collect();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(format!(
            "SELECT source_id, id, data FROM {} WHERE dir = ",
            T::TABLE
        ));
        q.push_bind(dir).push(" AND source_id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        sep.push_unseparated(")");
        for r in q.build().fetch_all(&mut **tx).await? {
            stored.insert(r.get(0), (r.get(1), r.get(2)));
        }
    }
    let in_table: HashSet<String> = stored.keys().cloned().collect();
    // The rows to write, one per source id (a later write of the same object replaces an
    // earlier one of the run), and the upserts to log: (segment, object, its JSON, time).
    let mut rows: Vec<ObjectRow<T>> = Vec::new();
    let mut row_of: HashMap<String, usize> = HashMap::default();
    let mut changes = Vec::new();
    for (seg, item, at) in items {
        let mut item = (*item).clone();
        let known = stored.get(item.source_id());
        item.set_id(known.map_or_else(new_id, |(id, _)| id.clone()));
        let data = encode(T::WHAT, &item)?;
        if known.is_some_and(|(_, d)| *d == data) {
            continue;
        }
        let sid = item.source_id().to_string();
        stored.insert(sid.clone(), (item.id().to_string(), data.clone()));
        let row = ObjectRow {
            is_new: !in_table.contains(&sid),
            item: item.clone(),
            data: data.clone(),
            at_ms: *at,
        };
        match row_of.get(&sid) {
            Some(&n) => rows[n] = row,
            None => {
                row_of.insert(sid, rows.len());
                rows.push(row);
            }
        }
        changes.push((*seg, item, data, *at));
    }
    write_rows(tx, dir, &rows).await?;
    let mut logged = Vec::with_capacity(changes.len());
    for (seg, item, data, at) in changes {
        log.push_upsert(tx, &item, &data, at).await?;
        logged.push(seg);
    }
    Ok(logged)
}

/// A user or group to write, as its row.
pub(crate) struct ObjectRow<T> {
    pub(crate) item: T,
    pub(crate) data: String,
    pub(crate) at_ms: i64,
    /// Not in the table yet (a new row keeps `at_ms` as its creation time).
    pub(crate) is_new: bool,
}

/// Write the objects of a snapshot that differ from what is stored (keeping internal ids), log
/// each, and return the source ids stored but absent from the snapshot.
pub(crate) async fn upsert_all<T: DirObject>(
    tx: &mut Tx<'_>,
    log: &mut ChangeWriter,
    dir: &str,
    items: &[T],
    now_ms: i64,
) -> Result<BTreeSet<String>, StoreError> {
    let mut current: HashMap<String, (String, String)> = HashMap::default();
    for r in sqlx::query(&format!(
        "SELECT source_id, id, data FROM {} WHERE dir = $1",
        T::TABLE
    ))
    .bind(dir)
    .fetch_all(&mut **tx)
    .await?
    {
        current.insert(r.get(0), (r.get(1), r.get(2)));
    }
    let mut rows = Vec::new();
    for item in items {
        let mut item = item.clone();
        let known = current.remove(item.source_id());
        item.set_id(known.as_ref().map_or_else(new_id, |(id, _)| id.clone()));
        let data = encode(T::WHAT, &item)?;
        let is_new = known.is_none();
        if known.is_some_and(|(_, d)| d == data) {
            continue;
        }
        rows.push(ObjectRow {
            item,
            data,
            at_ms: now_ms,
            is_new,
        });
        if rows.len() == ROWS_PER_INSERT {
            write_rows(tx, dir, &rows).await?;
            for r in rows.drain(..) {
                log.push_upsert(tx, &r.item, &r.data, now_ms).await?;
            }
        }
    }
    write_rows(tx, dir, &rows).await?;
    for r in rows {
        log.push_upsert(tx, &r.item, &r.data, now_ms).await?;
    }
    Ok(current.into_keys().collect())
}

/// Insert or update rows of users or groups in multi-row statements, with the users' lookups
/// (externalId in the row, emails in user_emails).
pub(crate) async fn write_rows<T: DirObject>(
    tx: &mut Tx<'_>,
    dir: &str,
    rows: &[ObjectRow<T>],
) -> Result<(), StoreError> {
    let (table, name) = (T::TABLE, T::NAME_COLUMN);
    for chunk in rows.chunks(ROWS_PER_INSERT / 2) {
        let users = chunk.first().is_some_and(|r| r.item.lookups().is_some());
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(if users {
            "INSERT INTO users (dir, source_id, id, user_name, data, created_ms, modified_ms, external_id) ".to_string()
        } else {
            format!(
                "INSERT INTO {table} (dir, source_id, id, {name}, data, created_ms, modified_ms) "
            )
        });
        q.push_values(chunk, |mut b, r| {
            b.push_bind(dir)
                .push_bind(r.item.source_id())
                .push_bind(r.item.id())
                .push_bind(r.item.name())
                .push_bind(&r.data)
                .push_bind(r.at_ms)
                .push_bind(r.at_ms);
            if users {
                b.push_bind(r.item.lookups().and_then(|(x, _)| x));
            }
        });
        q.push(format!(" ON CONFLICT (dir, source_id) DO UPDATE SET {name} = excluded.{name}, data = excluded.data, modified_ms = excluded.modified_ms"));
        if users {
            q.push(", external_id = excluded.external_id");
        }
        q.build().execute(&mut **tx).await?;
        if !users {
            continue;
        }
        // The emails of users that were stored before are replaced.
        let known: Vec<&str> = chunk
            .iter()
            .filter(|r| !r.is_new)
            .map(|r| r.item.source_id())
            .collect();
        if !known.is_empty() {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new("DELETE FROM user_emails WHERE dir = ");
            q.push_bind(dir).push(" AND user_id IN (");
            let mut sep = q.separated(", ");
            for id in known {
                sep.push_bind(id);
            }
            sep.push_unseparated(")");
            q.build().execute(&mut **tx).await?;
        }
        let emails: Vec<(&str, String)> = chunk
            .iter()
            .flat_map(|r| {
                let emails = r.item.lookups().map(|(_, e)| e).unwrap_or_default();
                emails.into_iter().map(|e| (r.item.source_id(), e))
            })
            .collect();
        for part in emails.chunks(ROWS_PER_INSERT) {
            let mut q =
                sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO user_emails (dir, user_id, email) ");
            q.push_values(part, |mut b, (id, e)| {
                b.push_bind(dir).push_bind(*id).push_bind(e);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Delete a user or group and every membership that names it. True when it existed.
pub(crate) async fn delete_object(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    kind: MemberKind,
    source_id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let table = match kind {
        MemberKind::User => "users",
        MemberKind::Group => "groups_",
    };
    let n = sqlx::query(&format!(
        "DELETE FROM {table} WHERE dir = $1 AND source_id = $2"
    ))
    .bind(dir)
    .bind(source_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if kind == MemberKind::User {
        sqlx::query("DELETE FROM user_emails WHERE dir = $1 AND user_id = $2")
            .bind(dir)
            .bind(source_id)
            .execute(&mut **tx)
            .await?;
    }
    // Without a number it was never in a membership.
    let Some(number) = numbers::numbers(tx, learned, [(kind.as_str(), source_id)], false)
        .await?
        .get(&(kind.as_str(), source_id))
        .copied()
    else {
        return Ok(n > 0);
    };
    // The groups it is in come from the reverse map (there is no index by member), and go
    // by primary key.
    let scope = learned.reverse.scope(tx, Table::Memberships, dir).await?;
    let groups = scope.groups_of(tx, number).await?;
    if !groups.is_empty() {
        sqlx::query(
            "DELETE FROM memberships WHERE dir = $1 AND m = $2 AND g IN (SELECT value FROM json_each($3))",
        )
        .bind(dir)
        .bind(number)
        .bind(encode("groups", &groups)?)
        .execute(&mut **tx)
        .await?;
        // Their members changed: the groups' modified time (`meta.lastModified`) moves.
        sqlx::query(
            "UPDATE groups_ SET modified_ms = max(modified_ms, $3) WHERE dir = $1 AND source_id IN
             (SELECT id FROM numbers WHERE n IN (SELECT value FROM json_each($2)))",
        )
        .bind(dir)
        .bind(encode("groups", &groups)?)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    scope.left(number);
    if kind == MemberKind::Group {
        let members: Vec<i64> =
            sqlx::query_scalar("DELETE FROM memberships WHERE dir = $1 AND g = $2 RETURNING m")
                .bind(dir)
                .bind(number)
                .fetch_all(&mut **tx)
                .await?;
        for m in members {
            scope.remove(number, m);
        }
    }
    Ok(n > 0)
}

/// Insert memberships in multi-row statements; says for each row whether it was new (a row
/// given twice is new once, the first time).
pub(crate) async fn insert_memberships(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    rows: &[(&str, &MemberRef)],
) -> Result<Vec<bool>, StoreError> {
    let ids = rows
        .iter()
        .flat_map(|(g, m)| [("group", *g), (m.kind.as_str(), m.id.as_str())]);
    let n = numbers::numbers(tx, learned, ids, true).await?;
    // Every id was just numbered: one without a number is a broken store, not a row to skip
    // (the answer must say something for every row).
    let pairs: Vec<(i64, i64)> = rows
        .iter()
        .map(|(g, m)| {
            match (
                n.get(&("group", *g)),
                n.get(&(m.kind.as_str(), m.id.as_str())),
            ) {
                (Some(g), Some(m)) => Ok((*g, *m)),
                _ => Err(StoreError::NotCommitted(format!(
                    "no number for group {g:?} or member {:?}",
                    m.id
                ))),
            }
        })
        .collect::<Result<_, _>>()?;
    // Two statements whatever the number of rows (their texts never change): which pairs are
    // there already (by primary key; usually none, so hardly a row comes back, where the
    // inserted rows would all come back one by one through `RETURNING`), then the insert.
    let list = numbers::packed(&pairs)?;
    let mut present: HashSet<(i64, i64)> = sqlx::query(
        "SELECT x.g, x.m FROM json_each($2) j CROSS JOIN memberships x
         ON x.dir = $1 AND x.g = j.value >> 32 AND x.m = j.value & 4294967295",
    )
    .bind(dir)
    .bind(&list)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    sqlx::query(
        "INSERT OR IGNORE INTO memberships (dir, g, m)
         SELECT $1, value >> 32, value & 4294967295 FROM json_each($2)",
    )
    .bind(dir)
    .bind(&list)
    .execute(&mut **tx)
    .await?;
    // A row is new if it was not there and not named earlier in the list.
    let new: Vec<bool> = pairs.iter().map(|p| present.insert(*p)).collect();
    let scope = learned.reverse.scope(tx, Table::Memberships, dir).await?;
    for ((g, m), _) in pairs.iter().zip(&new).filter(|(_, new)| **new) {
        scope.add(*g, *m);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use idsync_core::{Email, Name};

    /// An upsert logged around the object's stored JSON is the change `push` would log.
    #[test]
    fn an_upsert_logged_around_the_objects_json_is_the_change_itself() {
        let mut user = User::new("u1", "ada@contoso.com");
        user.id = "i1".into();
        user.name = Name {
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace \"A\"".into()),
            ..Name::default()
        };
        user.emails = vec![Email {
            value: "ada@contoso.com".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
        let (kind, text) = User::change_json(&encode("user", &user).unwrap());
        let change = Change::UpsertUser { user };
        assert_eq!(
            (kind, text),
            (change.kind(), encode("change", &change).unwrap())
        );
        let mut group = Group::new("g1", "eng");
        group.description = Some("the engineers".into());
        let (kind, text) = Group::change_json(&encode("group", &group).unwrap());
        let change = Change::UpsertGroup { group };
        assert_eq!(
            (kind, text),
            (change.kind(), encode("change", &change).unwrap())
        );
    }
}
