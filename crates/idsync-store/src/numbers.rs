//! Numbers for object ids (decision 0015). Memberships and ledger memberships are stored as
//! pairs of small integers: each id that takes part in one gets a number once, in `numbers`
//! (kind `user` or `group`, and the id). A number stands for its (kind, id) everywhere, in every
//! directory and ledger, and is never reused for anything else.

use crate::StoreError;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use std::collections::{HashMap, HashSet};

/// A numbered id: its kind (`user` or `group`) and the id.
pub(crate) type Numbered<'a> = (&'static str, &'a str);

/// Ids per statement (SQLite allows 32,766 parameters).
const IDS_PER_QUERY: usize = 500;

/// The numbers of `ids`. With `assign`, ids that have none get one (in the caller's
/// transaction); without, they are left out of the answer.
pub(crate) async fn numbers<'a>(
    conn: &mut SqliteConnection,
    ids: impl IntoIterator<Item = Numbered<'a>>,
    assign: bool,
) -> Result<HashMap<Numbered<'a>, i64>, StoreError> {
    let mut seen = HashSet::new();
    let wanted: Vec<Numbered<'a>> = ids.into_iter().filter(|k| seen.insert(*k)).collect();
    let mut found: HashMap<Numbered<'a>, i64> = HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(IDS_PER_QUERY) {
        // One query for both kinds: SQLite searches the index once per kind's IN list.
        let mut q = QueryBuilder::<Sqlite>::new("SELECT n, kind, id FROM numbers WHERE ");
        let mut first = true;
        for kind in ["user", "group"] {
            let of_kind: Vec<&str> = chunk
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| *id)
                .collect();
            if of_kind.is_empty() {
                continue;
            }
            if !first {
                q.push(" OR ");
            }
            first = false;
            q.push("(kind = ").push_bind(kind).push(" AND id IN (");
            let mut ids = q.separated(", ");
            for id in of_kind {
                ids.push_bind(id);
            }
            q.push("))");
        }
        let by_id: HashMap<Numbered<'_>, Numbered<'a>> = chunk.iter().map(|k| (*k, *k)).collect();
        for r in q.build().fetch_all(&mut *conn).await? {
            if let Some(k) = by_id.get(&(kind_of(r.get(1)), r.get::<&str, _>(2))) {
                found.insert(*k, r.get(0));
            }
        }
        if !assign {
            continue;
        }
        let missing: Vec<Numbered<'a>> = chunk
            .iter()
            .filter(|k| !found.contains_key(*k))
            .copied()
            .collect();
        if missing.is_empty() {
            continue;
        }
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO numbers (kind, id) ");
        q.push_values(&missing, |mut b, (kind, id)| {
            b.push_bind(*kind).push_bind(*id);
        });
        q.push(" RETURNING n, kind, id");
        // The store has one writer and the ids were just looked up: every one is inserted.
        let rows = q.build().fetch_all(&mut *conn).await?;
        let mut numbered = 0;
        for r in rows {
            if let Some(k) = by_id.get(&(kind_of(r.get(1)), r.get::<&str, _>(2))) {
                found.insert(*k, r.get(0));
                numbered += 1;
            }
        }
        if numbered != missing.len() {
            return Err(StoreError::NotCommitted(format!(
                "numbering {} ids returned {numbered} numbers",
                missing.len()
            )));
        }
    }
    Ok(found)
}

/// The kind as the `'static` string a [`Numbered`] holds.
pub(crate) fn kind_of(stored: &str) -> &'static str {
    if stored == "group" {
        "group"
    } else {
        "user"
    }
}
