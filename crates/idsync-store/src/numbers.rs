//! Numbers for object ids (decision 0015). Memberships and ledger memberships are stored as
//! pairs of small integers: each id that takes part in one gets a number once, in `numbers`
//! (kind `user` or `group`, and the id). A number stands for its (kind, id) everywhere, in every
//! directory and ledger, and is never reused for anything else.

use crate::StoreError;
use sqlx::{Row, SqliteConnection};
use std::collections::{HashMap, HashSet};

/// A numbered id: its kind (`user` or `group`) and the id.
pub(crate) type Numbered<'a> = (&'static str, &'a str);

/// The numbers of `ids`. With `assign`, ids that have none get one (in the caller's
/// transaction); without, they are left out of the answer. The ids travel as one JSON array of
/// `[kind, id]` pairs, so the statements' text never changes (prepared once), one parameter is
/// bound, and a lookup is one statement whatever the kinds.
pub(crate) async fn numbers<'a>(
    conn: &mut SqliteConnection,
    ids: impl IntoIterator<Item = Numbered<'a>>,
    assign: bool,
) -> Result<HashMap<Numbered<'a>, i64>, StoreError> {
    let wanted: HashSet<Numbered<'a>> = ids.into_iter().collect();
    let mut found: HashMap<Numbered<'a>, i64> = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(found);
    }
    let rows = sqlx::query(
        "SELECT n, kind, id FROM numbers WHERE (kind, id) IN
         (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1))",
    )
    .bind(pairs(wanted.iter())?)
    .fetch_all(&mut *conn)
    .await?;
    keep(&mut found, &wanted, rows);
    if !assign || found.len() == wanted.len() {
        return Ok(found);
    }
    let missing: Vec<&Numbered<'a>> = wanted.iter().filter(|k| !found.contains_key(*k)).collect();
    // The store has one writer and the ids were just looked up: every one is inserted.
    let rows = sqlx::query(
        "INSERT INTO numbers (kind, id)
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1)
         RETURNING n, kind, id",
    )
    .bind(pairs(missing.iter().copied())?)
    .fetch_all(&mut *conn)
    .await?;
    let numbered = rows.len();
    keep(&mut found, &wanted, rows);
    if numbered != missing.len() {
        return Err(StoreError::NotCommitted(format!(
            "numbering {} ids returned {numbered} numbers",
            missing.len()
        )));
    }
    Ok(found)
}

/// `[[kind, id], ...]` as JSON text.
fn pairs<'b, 'a: 'b>(ids: impl Iterator<Item = &'b Numbered<'a>>) -> Result<String, StoreError> {
    crate::encode("ids", &ids.collect::<Vec<_>>())
}

/// Note rows of (number, kind, id) under the caller's id strings.
fn keep<'a>(
    found: &mut HashMap<Numbered<'a>, i64>,
    asked: &HashSet<Numbered<'a>>,
    rows: Vec<sqlx::sqlite::SqliteRow>,
) {
    let mut by_kind: [HashMap<String, i64>; 2] = Default::default();
    for r in rows {
        let k = usize::from(r.get::<&str, _>(1) == "group");
        by_kind[k].insert(r.get(2), r.get(0));
    }
    for key @ (kind, id) in asked {
        if let Some(n) = by_kind[usize::from(*kind == "group")].get(*id) {
            found.insert(*key, *n);
        }
    }
}

/// Pairs of numbers read by `query` (which selects two numbers for one bound scope: a
/// directory or a flow), with the (kind, id) of each number they use: one lookup per number,
/// not one per pair.
pub(crate) async fn pairs_with_ids(
    conn: &mut SqliteConnection,
    query: &'static str,
    scope: &str,
) -> Result<(Vec<(i64, i64)>, HashMap<i64, (String, String)>), StoreError> {
    let pairs: Vec<(i64, i64)> = sqlx::query(query)
        .bind(scope)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let used: std::collections::BTreeSet<i64> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let mut ids = HashMap::with_capacity(used.len());
    for r in
        sqlx::query("SELECT n, kind, id FROM numbers WHERE n IN (SELECT value FROM json_each($1))")
            .bind(crate::encode("numbers", &used)?)
            .fetch_all(&mut *conn)
            .await?
    {
        ids.insert(r.get(0), (r.get(1), r.get(2)));
    }
    Ok((pairs, ids))
}
