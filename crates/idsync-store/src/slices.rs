//! One user's slice of a directory and of a flow's ledger: what a login needs to say which
//! groups a flow gives the user (decision 0042), read in time proportional to the user (its
//! groups and the groups above them), never to the directory or the ledger.

use super::*;
use crate::reverse::Table;
use crate::{HashMap, HashSet};

impl Store {
    /// The user `user` of directory `dir`, every group it is in directly or through nesting
    /// (the groups above its groups, to the top), and the memberships that link them: the user's
    /// own and those between these groups. Other members of these groups are left out. An
    /// unknown user gives an empty snapshot.
    pub async fn user_slice(&self, dir: &str, user: &str) -> Result<Snapshot, StoreError> {
        let mut out = Snapshot::default();
        // The user, the directory's version and the user's number in one snapshot; then the
        // groups from the reverse map at that version or later (as `member_of` does).
        let mut tx = self.reader.begin().await?;
        let version = Table::Memberships.version(&mut tx, dir).await?;
        let row: Option<String> =
            sqlx::query_scalar("SELECT data FROM users WHERE dir = $1 AND source_id = $2")
                .bind(dir)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        let number: Option<i64> =
            sqlx::query_scalar("SELECT n FROM numbers WHERE kind = 'user' AND id = $1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(out);
        };
        out.users.push(decode::<User>("user", &row)?);
        let (Some(version), Some(number)) = (version, number) else {
            return Ok(out);
        };
        // Up the nesting from the user: each (member, group) edge once, each group once
        // (a cycle ends where it started).
        let mut edges: Vec<(i64, i64)> = Vec::new();
        let mut seen: HashSet<i64> = HashSet::default();
        let mut todo = vec![number];
        while let Some(member) = todo.pop() {
            let groups = self
                .numbers
                .reverse
                .groups_of(&self.writer, Table::Memberships, dir, version, member)
                .await?;
            for g in groups {
                edges.push((member, g));
                if seen.insert(g) {
                    todo.push(g);
                }
            }
        }
        if seen.is_empty() {
            return Ok(out);
        }
        let numbers: Vec<i64> = seen.into_iter().collect();
        let mut groups: HashMap<i64, Group> = HashMap::default();
        for r in sqlx::query(
            "SELECT gn.n, g.data FROM json_each($2) j
             CROSS JOIN numbers gn ON gn.n = j.value AND gn.kind = 'group'
             CROSS JOIN groups_ g ON g.dir = $1 AND g.source_id = gn.id",
        )
        .bind(dir)
        .bind(encode("groups", &numbers)?)
        .fetch_all(&self.reader)
        .await?
        {
            groups.insert(r.get(0), decode("group", r.get::<&str, _>(1))?);
        }
        for (member, group) in edges {
            // A group deleted since the version the map was read at is left out with its edges.
            let Some(g) = groups.get(&group) else {
                continue;
            };
            let member = if member == number {
                MemberRef::user(user)
            } else {
                match groups.get(&member) {
                    Some(m) => MemberRef::group(m.source_id.clone()),
                    None => continue,
                }
            };
            out.memberships.push(Membership {
                group: g.source_id.clone(),
                member,
            });
        }
        let mut groups: Vec<Group> = groups.into_values().collect();
        groups.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        out.groups = groups;
        out.memberships
            .sort_by(|a, b| (&a.group, &a.member.id).cmp(&(&b.group, &b.member.id)));
        Ok(out)
    }

    /// The nesting above `groups` in directory `dir`: each `(group, parent)` edge reachable
    /// upwards from them, by source id, each once (a cycle ends where it started). Groups the
    /// directory does not hold have no edges. Time proportional to the groups above them.
    pub async fn nesting_above(
        &self,
        dir: &str,
        groups: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.reader.begin().await?;
        let version = Table::Memberships.version(&mut tx, dir).await?;
        let start: Vec<i64> = sqlx::query_scalar(
            "SELECT nb.n FROM json_each($1) j CROSS JOIN numbers nb ON nb.kind = 'group' AND nb.id = j.value",
        )
        .bind(encode("groups", &groups)?)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(version) = version else {
            return Ok(Vec::new());
        };
        let mut edges: Vec<(i64, i64)> = Vec::new();
        let mut seen: HashSet<i64> = start.iter().copied().collect();
        let mut todo = start;
        while let Some(member) = todo.pop() {
            let parents = self
                .numbers
                .reverse
                .groups_of(&self.writer, Table::Memberships, dir, version, member)
                .await?;
            for g in parents {
                edges.push((member, g));
                if seen.insert(g) {
                    todo.push(g);
                }
            }
        }
        if edges.is_empty() {
            return Ok(Vec::new());
        }
        let numbers: Vec<i64> = seen.into_iter().collect();
        let mut ids: HashMap<i64, String> = HashMap::default();
        for r in sqlx::query(
            "SELECT nb.n, nb.id FROM json_each($1) j CROSS JOIN numbers nb ON nb.n = j.value AND nb.kind = 'group'",
        )
        .bind(encode("groups", &numbers)?)
        .fetch_all(&self.reader)
        .await?
        {
            ids.insert(r.get(0), r.get(1));
        }
        Ok(edges
            .into_iter()
            .filter_map(|(m, g)| Some((ids.get(&m)?.clone(), ids.get(&g)?.clone())))
            .collect())
    }

    /// The part of flow `flow`'s ledger about the user keyed `key`: its entry, the groups it is
    /// a member of (their entries, with the user as their only member). Nesting between
    /// ledger groups is left out.
    pub async fn ledger_user_slice(
        &self,
        flow: &str,
        key: &str,
    ) -> Result<LedgerState, StoreError> {
        let mut ledger = LedgerState::default();
        let mut tx = self.reader.begin().await?;
        let version = Table::LedgerMembers.version(&mut tx, flow).await?;
        let row = sqlx::query(
            "SELECT target_id, data, disabled_ms, original FROM ledger_users WHERE flow = $1 AND key = $2",
        )
        .bind(flow)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let number: Option<i64> =
            sqlx::query_scalar("SELECT n FROM numbers WHERE kind = 'user' AND id = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        if let Some(r) = row {
            let original: Option<&str> = r.get(3);
            ledger.users.insert(
                key.to_string(),
                LedgerUser {
                    target_id: r.get(0),
                    user: decode("ledger user", r.get::<&str, _>(1))?,
                    disabled_ms: r.get(2),
                    original: original.map(|o| decode("ledger user", o)).transpose()?,
                },
            );
        }
        let (Some(version), Some(number)) = (version, number) else {
            return Ok(ledger);
        };
        let groups = self
            .numbers
            .reverse
            .groups_of(&self.writer, Table::LedgerMembers, flow, version, number)
            .await?;
        if groups.is_empty() {
            return Ok(ledger);
        }
        let user = Key::from(key);
        // Memberships are kept for keys whether or not the group has its own entry (as
        // `load_ledger` does).
        for r in sqlx::query(
            "SELECT gn.id, lg.target_id, lg.data FROM json_each($2) j
             CROSS JOIN numbers gn ON gn.n = j.value AND gn.kind = 'group'
             LEFT JOIN ledger_groups lg ON lg.flow = $1 AND lg.key = gn.id",
        )
        .bind(flow)
        .bind(encode("groups", &groups)?)
        .fetch_all(&self.reader)
        .await?
        {
            let group: String = r.get(0);
            ledger
                .members
                .entry(group.clone())
                .or_default()
                .insert(Key::clone(&user));
            let data: Option<&str> = r.get(2);
            if let Some(data) = data {
                ledger.groups.insert(
                    group,
                    LedgerGroup {
                        target_id: r.get(1),
                        group: decode("ledger group", data)?,
                    },
                );
            }
        }
        Ok(ledger)
    }
}
