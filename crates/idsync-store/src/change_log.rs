//! The change log's writer: entries appended inside a directory write's transaction, the
//! directory's sequence kept, consecutive membership changes of one group sharing a row.

use super::*;

/// Appends change-log entries inside a transaction and keeps the directory's sequence.
///
/// Consecutive additions to (or removals from) one group's members at one time share a row
/// (decision 0018): a full read of a million memberships writes a thousand rows, not a million.
/// Every change keeps its own sequence number; the row's `seq` is the last of its changes.
pub(crate) struct ChangeWriter {
    pub(crate) dir: String,
    pub(crate) seq: i64,
    pub(crate) count: usize,
    /// Rows not yet inserted. Written in multi-row INSERTs.
    pub(crate) pending: Vec<LogRow>,
}

/// A change-log row not yet inserted.
pub(crate) enum LogRow {
    One {
        seq: i64,
        at_ms: i64,
        kind: &'static str,
        key: String,
        data: String,
    },
    Members {
        last_seq: i64,
        at_ms: i64,
        add: bool,
        batch: MemberBatch,
    },
}

/// The data of a change-log row of kind `add_members` or `remove_members`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct MemberBatch {
    pub(crate) group: String,
    pub(crate) members: Vec<MemberRef>,
}

pub(crate) const ADD_MEMBERS: &str = "add_members";
pub(crate) const REMOVE_MEMBERS: &str = "remove_members";

/// Rows per multi-row INSERT (SQLite allows 32,766 parameters per statement).
pub(crate) const ROWS_PER_INSERT: usize = 400;

/// Membership changes per change-log row at most.
pub(crate) const MEMBERS_PER_ROW: usize = 1000;

impl ChangeWriter {
    pub(crate) async fn start(
        tx: &mut Tx<'_>,
        learned: &mut numbers::Learned,
        dir: &str,
    ) -> Result<Self, StoreError> {
        // One statement: the directory's row, made if missing, and its sequence.
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO directories (name, last_seq) VALUES ($1, 0) ON CONFLICT (name) DO UPDATE SET last_seq = directories.last_seq RETURNING last_seq",
        )
        .bind(dir)
        .fetch_one(&mut **tx)
        .await?;
        learned.reverse.starts_at(Table::Memberships, dir, seq);
        Ok(Self {
            dir: dir.to_string(),
            seq,
            count: 0,
            pending: Vec::new(),
        })
    }

    pub(crate) async fn push(
        &mut self,
        tx: &mut Tx<'_>,
        change: &Change,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.seq += 1;
        self.count += 1;
        let row = match change {
            Change::AddMember { group, member } | Change::RemoveMember { group, member } => {
                let add = matches!(change, Change::AddMember { .. });
                if let Some(LogRow::Members {
                    last_seq,
                    at_ms: at,
                    add: a,
                    batch,
                }) = self.pending.last_mut()
                {
                    if *a == add
                        && *at == at_ms
                        && batch.group == *group
                        && batch.members.len() < MEMBERS_PER_ROW
                    {
                        batch.members.push(member.clone());
                        *last_seq = self.seq;
                        return Ok(());
                    }
                }
                LogRow::Members {
                    last_seq: self.seq,
                    at_ms,
                    add,
                    batch: MemberBatch {
                        group: group.clone(),
                        members: vec![member.clone()],
                    },
                }
            }
            _ => LogRow::One {
                seq: self.seq,
                at_ms,
                kind: change.kind(),
                key: change.object().1.to_string(),
                data: encode("change", change)?,
            },
        };
        self.add(tx, row).await
    }

    /// Log the upsert of `item`, whose JSON `encode` wrote as `data`.
    pub(crate) async fn push_upsert<T: DirObject>(
        &mut self,
        tx: &mut Tx<'_>,
        item: &T,
        data: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.seq += 1;
        self.count += 1;
        let (kind, data) = T::change_json(data);
        let row = LogRow::One {
            seq: self.seq,
            at_ms,
            kind,
            key: item.source_id().to_string(),
            data,
        };
        self.add(tx, row).await
    }

    pub(crate) async fn add(&mut self, tx: &mut Tx<'_>, row: LogRow) -> Result<(), StoreError> {
        if self.pending.len() >= ROWS_PER_INSERT {
            self.flush(tx).await?;
        }
        self.pending.push(row);
        Ok(())
    }

    pub(crate) async fn flush(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(self.pending.len());
        for row in self.pending.drain(..) {
            rows.push(match row {
                LogRow::One {
                    seq,
                    at_ms,
                    kind,
                    key,
                    data,
                } => (seq, at_ms, kind, key, data),
                LogRow::Members {
                    last_seq,
                    at_ms,
                    add,
                    batch,
                } => {
                    let data = encode("change", &batch)?;
                    let kind = if add { ADD_MEMBERS } else { REMOVE_MEMBERS };
                    (last_seq, at_ms, kind, batch.group, data)
                }
            });
        }
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO change_log (dir, seq, at_ms, kind, object_key, data) ",
        );
        q.push_values(rows, |mut b, (seq, at, kind, key, data)| {
            b.push_bind(self.dir.clone())
                .push_bind(seq)
                .push_bind(at)
                .push_bind(kind)
                .push_bind(key)
                .push_bind(data);
        });
        q.build().execute(&mut **tx).await?;
        Ok(())
    }

    pub(crate) async fn finish(
        mut self,
        tx: &mut Tx<'_>,
        learned: &mut numbers::Learned,
        source: &str,
        cursor: Option<&str>,
    ) -> Result<WriteSummary, StoreError> {
        self.flush(tx).await?;
        learned
            .reverse
            .committed_as(Table::Memberships, &self.dir, self.seq);
        if self.count > 0 {
            sqlx::query("UPDATE directories SET last_seq = $2 WHERE name = $1")
                .bind(&self.dir)
                .bind(self.seq)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(c) = cursor {
            sqlx::query("INSERT INTO source_cursors (source, cursor) VALUES ($1, $2) ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor")
                .bind(source)
                .bind(c)
                .execute(&mut **tx)
                .await?;
        }
        Ok(WriteSummary {
            changes: self.count,
            last_seq: self.seq,
        })
    }
}
