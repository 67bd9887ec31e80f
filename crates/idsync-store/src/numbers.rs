//! Numbers for object ids (decision 0015). Memberships and ledger memberships are stored as
//! pairs of small integers: each id that takes part in one gets a number once, in `numbers`
//! (kind `user` or `group`, and the id). A number stands for its (kind, id) everywhere, in every
//! directory and ledger, and is never reused for anything else.

use crate::reverse::{ReverseMaps, TxReverse};
use crate::StoreError;
use crate::{HashMap, HashSet};
use sqlx::{Row, SqliteConnection};
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
/// transaction); without, they are left out of the answer. The ids travel as one JSON array
/// per kind (see `by_kind`).
pub(crate) async fn numbers<'a>(
    conn: &mut SqliteConnection,
    learned: &mut Learned,
    ids: impl IntoIterator<Item = Numbered<'a>>,
    assign: bool,
) -> Result<HashMap<Numbered<'a>, i64>, StoreError> {
    let asked: HashSet<Numbered<'a>> = ids.into_iter().collect();
    let mut found: HashMap<Numbered<'a>, i64> =
        HashMap::with_capacity_and_hasher(asked.len(), Default::default());
    // Numbers already known (committed, or learned by this transaction) need no statement.
    let mut wanted: HashSet<Numbered<'a>> = HashSet::default();
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
    let rows = by_kind(
        conn,
        "SELECT n, kind, id FROM numbers WHERE kind = $1 AND id IN (SELECT value FROM json_each($2))",
        wanted.iter(),
    )
    .await?;
    let before = found.len();
    keep(&mut found, learned, &wanted, rows);
    if !assign || found.len() - before == wanted.len() {
        return Ok(found);
    }
    let missing: Vec<&Numbered<'a>> = wanted.iter().filter(|k| !found.contains_key(*k)).collect();
    // The store has one writer and the ids were just looked up: every one is inserted.
    let rows = by_kind(
        conn,
        "INSERT INTO numbers (kind, id) SELECT $1, value FROM json_each($2) RETURNING n, kind, id",
        missing.iter().copied(),
    )
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

/// Run `query` (binding a kind and its ids as one JSON array of strings; the statement's text
/// never changes, so it is prepared once, and SQLite reads plain strings, not pairs) once per
/// kind that `ids` hold; the rows of all.
async fn by_kind<'b, 'a: 'b>(
    conn: &mut SqliteConnection,
    query: &'static str,
    ids: impl Iterator<Item = &'b Numbered<'a>>,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
    let mut of_kind: [(&'static str, Vec<&str>); 2] = [("user", Vec::new()), ("group", Vec::new())];
    for (kind, id) in ids {
        of_kind[slot(kind)].1.push(id);
    }
    let mut rows = Vec::new();
    for (kind, ids) in of_kind {
        if ids.is_empty() {
            continue;
        }
        rows.extend(
            sqlx::query(query)
                .bind(kind)
                .bind(crate::encode("ids", &ids)?)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(rows)
}

/// Pairs of numbers as one JSON array of integers, `a << 32 | b` each: SQL takes a pair apart
/// with `value >> 32` and `value & 4294967295`, where a JSON array per pair would be parsed
/// again by each `json_extract` (a fifth of the writer's time in a first sync's member
/// PATCHes). Numbers count up from 1; a store that has numbered 2^31 ids is refused here.
pub(crate) fn packed(pairs: &[(i64, i64)]) -> Result<String, StoreError> {
    const LIMIT: i64 = 1 << 31;
    let mut out = Vec::with_capacity(pairs.len());
    for &(a, b) in pairs {
        if !(0..LIMIT).contains(&a) || !(0..LIMIT).contains(&b) {
            return Err(StoreError::NotCommitted(format!(
                "numbers {a} and {b}: the store holds at most {LIMIT} numbered ids"
            )));
        }
        out.push(a << 32 | b);
    }
    crate::encode("pairs of numbers", &out)
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
    let mut ids = HashMap::with_capacity_and_hasher(used.len(), Default::default());
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

    /// Pairs travel as one integer each, taken apart in SQL; numbers that do not fit are
    /// refused, never folded into another pair.
    #[test]
    fn pairs_pack_into_one_integer_each_or_are_refused() {
        assert_eq!(
            super::packed(&[(1, 2), (7, (1 << 31) - 1)]).unwrap(),
            format!("[{},{}]", (1i64 << 32) + 2, (7i64 << 32) + (1 << 31) - 1)
        );
        assert!(super::packed(&[(1 << 31, 1)]).is_err());
        assert!(super::packed(&[(1, 1 << 31)]).is_err());
        assert!(super::packed(&[(-1, 1)]).is_err());
    }

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
