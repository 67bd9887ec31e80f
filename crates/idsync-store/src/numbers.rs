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
/// transaction); without, they are left out of the answer. Ids travel as one JSON array per
/// kind, so the statements' text never changes (prepared once) and one parameter is bound.
pub(crate) async fn numbers<'a>(
    conn: &mut SqliteConnection,
    ids: impl IntoIterator<Item = Numbered<'a>>,
    assign: bool,
) -> Result<HashMap<Numbered<'a>, i64>, StoreError> {
    let mut seen = HashSet::new();
    let wanted: Vec<Numbered<'a>> = ids.into_iter().filter(|k| seen.insert(*k)).collect();
    let mut found: HashMap<Numbered<'a>, i64> = HashMap::with_capacity(wanted.len());
    for kind in ["user", "group"] {
        let of_kind: HashSet<&'a str> = wanted
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let list = |ids: &mut dyn Iterator<Item = &&'a str>| {
            serde_json::to_string(&ids.collect::<Vec<_>>()).map_err(|e| StoreError::Corrupt {
                what: "ids".into(),
                message: e.to_string(),
            })
        };
        let rows = sqlx::query(
            "SELECT n, id FROM numbers WHERE kind = $1 AND id IN (SELECT value FROM json_each($2))",
        )
        .bind(kind)
        .bind(list(&mut of_kind.iter())?)
        .fetch_all(&mut *conn)
        .await?;
        keep(&mut found, kind, &of_kind, rows);
        if !assign {
            continue;
        }
        let missing: Vec<&&'a str> = of_kind
            .iter()
            .filter(|id| !found.contains_key(&(kind, **id)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        // The store has one writer and the ids were just looked up: every one is inserted.
        let rows = sqlx::query(
            "INSERT INTO numbers (kind, id) SELECT $1, value FROM json_each($2) RETURNING n, id",
        )
        .bind(kind)
        .bind(list(&mut missing.iter().copied())?)
        .fetch_all(&mut *conn)
        .await?;
        let numbered = rows.len();
        keep(&mut found, kind, &of_kind, rows);
        if numbered != missing.len() {
            return Err(StoreError::NotCommitted(format!(
                "numbering {} ids returned {numbered} numbers",
                missing.len()
            )));
        }
    }
    Ok(found)
}

/// Note rows of (number, id) of one kind under the caller's id strings.
fn keep<'a>(
    found: &mut HashMap<Numbered<'a>, i64>,
    kind: &'static str,
    asked: &HashSet<&'a str>,
    rows: Vec<sqlx::sqlite::SqliteRow>,
) {
    for r in rows {
        if let Some(id) = asked.get(r.get::<&str, _>(1)) {
            found.insert((kind, *id), r.get(0));
        }
    }
}
