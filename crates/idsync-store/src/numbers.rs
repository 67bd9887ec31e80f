//! Numbers for object ids (decision 0015). Memberships and ledger memberships are stored as
//! pairs of small integers: each id that takes part in one gets a number once, in `numbers`
//! (kind `user` or `group`, and the id). A number stands for its (kind, id) everywhere, in every
//! directory and ledger, and is never reused for anything else.

use crate::reverse::{ReverseMaps, TxReverse};
use crate::StoreError;
use sqlx::{Row, SqliteConnection};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// A numbered id: its kind (`user` or `group`) and the id.
pub(crate) type Numbered<'a> = (&'static str, &'a str);

/// Most ids the cache keeps (about 100 bytes each); past it, it starts again empty.
const CACHE_MAX: usize = 1 << 20;

/// What this store keeps in memory of committed data: the numbers of ids, and the reverse
/// membership maps (`crate::reverse`).
///
/// Numbers are kept by kind and id. A committed number never changes and is never given to
/// another id, so an entry can never go stale, whoever else writes to the file. Only numbers
/// of committed transactions enter it (see [`Learned::keep`]): a number given in a transaction
/// that rolled back may be given again to another id.
#[derive(Clone, Default)]
pub(crate) struct NumberCache {
    ids: Arc<Mutex<[HashMap<String, i64>; 2]>>,
    pub(crate) reverse: ReverseMaps,
}

impl std::fmt::Debug for NumberCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("NumberCache")
            .field("users", &known[0].len())
            .field("groups", &known[1].len())
            .field("reverse", &self.reverse)
            .finish()
    }
}

fn slot(kind: &str) -> usize {
    usize::from(kind == "group")
}

impl NumberCache {
    /// A transaction's view: the committed numbers, and those it learns itself.
    pub(crate) fn learn(&self) -> Learned {
        Learned {
            cache: self.clone(),
            new: Default::default(),
            reverse: self.reverse.begin(),
        }
    }
}

/// The numbers one transaction looked up or gave, and the memberships it changed; into the
/// caches once it has committed.
pub(crate) struct Learned {
    cache: NumberCache,
    new: [HashMap<String, i64>; 2],
    pub(crate) reverse: TxReverse,
}

impl Learned {
    /// The transaction committed: what it learned is true for good.
    pub(crate) fn keep(self) {
        self.reverse.keep();
        let mut known = self
            .cache
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (slot, new) in self.new.into_iter().enumerate() {
            if known[slot].len() + new.len() > CACHE_MAX {
                known[slot].clear();
            }
            known[slot].extend(new);
        }
    }
}

/// The numbers of `ids`. With `assign`, ids that have none get one (in the caller's
/// transaction); without, they are left out of the answer. The ids travel as one JSON array of
/// `[kind, id]` pairs, so the statements' text never changes (prepared once), one parameter is
/// bound, and a lookup is one statement whatever the kinds.
pub(crate) async fn numbers<'a>(
    conn: &mut SqliteConnection,
    learned: &mut Learned,
    ids: impl IntoIterator<Item = Numbered<'a>>,
    assign: bool,
) -> Result<HashMap<Numbered<'a>, i64>, StoreError> {
    let asked: HashSet<Numbered<'a>> = ids.into_iter().collect();
    let mut found: HashMap<Numbered<'a>, i64> = HashMap::with_capacity(asked.len());
    // Numbers already known (committed, or learned by this transaction) need no statement.
    let mut wanted: HashSet<Numbered<'a>> = HashSet::new();
    {
        let known = learned
            .cache
            .ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key @ (kind, id) in asked {
            let slot = slot(kind);
            match known[slot].get(id).or_else(|| learned.new[slot].get(id)) {
                Some(n) => {
                    found.insert(key, *n);
                }
                None => {
                    wanted.insert(key);
                }
            }
        }
    }
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
    let before = found.len();
    keep(&mut found, learned, &wanted, rows);
    if !assign || found.len() - before == wanted.len() {
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
    keep(&mut found, learned, &wanted, rows);
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

/// Note rows of (number, kind, id) under the caller's id strings, and as learned by the
/// transaction.
fn keep<'a>(
    found: &mut HashMap<Numbered<'a>, i64>,
    learned: &mut Learned,
    asked: &HashSet<Numbered<'a>>,
    rows: Vec<sqlx::sqlite::SqliteRow>,
) {
    for r in rows {
        learned.new[slot(r.get::<&str, _>(1))].insert(r.get(2), r.get(0));
    }
    for key @ (kind, id) in asked {
        if let Some(n) = learned.new[slot(kind)].get(*id) {
            found.insert(*key, *n);
        }
    }
}

/// Pairs of numbers read by `query` (which selects, for one bound scope, a directory or a flow,
/// each group's number and its members' numbers as a JSON array: a million pairs come over
/// sqlx's channel as one row per group, not a row each), with the (kind, id) of each number
/// they use: one lookup per number, not one per pair.
pub(crate) async fn pairs_with_ids(
    conn: &mut SqliteConnection,
    query: &'static str,
    scope: &str,
) -> Result<(Vec<(i64, i64)>, HashMap<i64, (String, String)>), StoreError> {
    let mut pairs: Vec<(i64, i64)> = Vec::new();
    for r in sqlx::query(query).bind(scope).fetch_all(&mut *conn).await? {
        let group: i64 = r.get(0);
        let members: Vec<i64> = crate::decode("members of a group", r.get::<&str, _>(1))?;
        pairs.extend(members.into_iter().map(|m| (group, m)));
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use crate::Store;

    /// A number given in a transaction that rolled back is given again (SQLite reuses the
    /// largest rowid plus one): the cache must not hold it for the first id, or two ids would
    /// share one number and memberships would be read back under the wrong id.
    #[tokio::test]
    async fn numbers_of_a_rolled_back_transaction_are_not_remembered() {
        let store = Store::open_in_memory().await.unwrap();
        let number = |id: &'static str| {
            let store = store.clone();
            async move {
                let mut tx = store.writer.begin().await.unwrap();
                let mut learned = store.numbers.learn();
                let n = super::numbers(&mut tx, &mut learned, [("user", id)], true)
                    .await
                    .unwrap()[&("user", id)];
                (tx, learned, n)
            }
        };
        let (tx, _learned, lost) = number("a").await;
        tx.rollback().await.unwrap();
        let (tx, learned, b) = number("b").await;
        tx.commit().await.unwrap();
        learned.keep();
        assert_eq!(b, lost, "SQLite gives the rolled-back number again");
        let (tx, learned, a) = number("a").await;
        tx.commit().await.unwrap();
        learned.keep();
        assert_ne!(a, b, "a and b share a number");
        // Committed numbers come back the same, from the cache or the table.
        let (tx, _, again) = number("a").await;
        tx.rollback().await.unwrap();
        assert_eq!(again, a);
        let (tx, _, again) = number("b").await;
        tx.rollback().await.unwrap();
        assert_eq!(again, b);
    }
}
