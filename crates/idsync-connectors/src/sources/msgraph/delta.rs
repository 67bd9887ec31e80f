//! Whole-directory reads by delta query: the first round (also the full snapshot) and the
//! rounds after it.

use super::{s, source_err, Cursor, GraphSource, GROUP_PROPS};
use idsync_core::{Change, MemberRef, Snapshot, SourceError, SourceRead, User};
use idsync_msgraph::GraphError;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl GraphSource {
    /// A delta round from scratch: the full snapshot, and the delta links as the cursor.
    pub(super) async fn full_via_delta(&self) -> Result<SourceRead, SourceError> {
        self.full_via_delta_from(None, None).await
    }

    /// A delta round from scratch, the users' and the groups' chains starting at the given
    /// URLs (a synchronization reset's `Location`) or at a new initial delta query. A reset in
    /// the middle of this round starts it once more, from the `Location` Graph names.
    pub(super) async fn full_via_delta_from(
        &self,
        mut users_start: Option<String>,
        mut groups_start: Option<String>,
    ) -> Result<SourceRead, SourceError> {
        let mut restarted = false;
        loop {
            match self.initial_round(users_start, groups_start).await {
                Err((chain, GraphError::DeltaExpired { reason, location })) if !restarted => {
                    tracing::warn!(
                        reason,
                        chain,
                        location = location.as_deref(),
                        "graph: synchronization reset during a first round, starting it again"
                    );
                    restarted = true;
                    (users_start, groups_start) = match chain {
                        "users" => (location, None),
                        _ => (None, location),
                    };
                }
                Err((_, e)) => return Err(source_err(e)),
                Ok(read) => return Ok(read),
            }
        }
    }

    /// One delta round from scratch; an error names the chain (`users`, `groups`) it came from.
    ///
    /// Graph may return an object more than once in a round (Microsoft documents it for the
    /// initial round): every object is keyed by its immutable id and the later copy wins.
    async fn initial_round(
        &self,
        users_start: Option<String>,
        groups_start: Option<String>,
    ) -> Result<SourceRead, (&'static str, GraphError)> {
        let select = self.user_select(true);
        let users_url = users_start
            .unwrap_or_else(|| self.client.url(&format!("users/delta?$select={select}")));
        let groups_url = groups_start.unwrap_or_else(|| {
            self.client.url(&format!(
                "groups/delta?$select={},members",
                GROUP_PROPS.join(",")
            ))
        });
        // Pages are mapped as they arrive: the raw JSON of a 100k-user tenant is never held whole.
        // The users' and the groups' pages are two chains of links: read side by side.
        let mut users_seen: Vec<Option<User>> = Vec::new();
        let mut user_at: HashMap<String, usize> = HashMap::new();
        let users = self.client.delta_pages(&users_url, |page| {
            for v in &page {
                let Some(id) = s(v, "id") else { continue };
                let user = match v.get("@removed") {
                    Some(_) => None,
                    None => self.map_user(v),
                };
                match user_at.get(&id) {
                    Some(i) => users_seen[*i] = user,
                    None => {
                        user_at.insert(id, users_seen.len());
                        users_seen.push(user);
                    }
                }
            }
        });
        let mut seen_groups = BTreeMap::new();
        let mut members: BTreeMap<String, BTreeSet<MemberRef>> = BTreeMap::new();
        let groups = self.client.delta_pages(&groups_url, |page| {
            for v in &page {
                let Some(id) = s(v, "id") else { continue };
                if v.get("@removed").is_some() {
                    seen_groups.remove(&id);
                    members.remove(&id);
                    continue;
                }
                if let Some(g) = Self::map_group(v) {
                    seen_groups.insert(id.clone(), g);
                }
                // A large group's members may come over several items (and again, in a
                // replayed copy): what a later item says of a member wins.
                let set = members.entry(id).or_default();
                for m in v
                    .get("members@delta")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(kind), Some(mid)) = (Self::member_kind(m), s(m, "id")) {
                        let member = MemberRef { kind, id: mid };
                        if m.get("@removed").is_some() {
                            set.remove(&member);
                        } else {
                            set.insert(member);
                        }
                    }
                }
            }
        });
        let (users_link, groups_link) =
            tokio::try_join!(async { users.await.map_err(|e| ("users", e)) }, async {
                groups.await.map_err(|e| ("groups", e))
            })?;
        let mut snap = Snapshot {
            users: users_seen.into_iter().flatten().collect(),
            ..Snapshot::default()
        };
        self.assemble(&mut snap, seen_groups, members, &HashMap::new());
        let cursor = Cursor {
            users: users_link,
            groups: groups_link,
        };
        Ok(SourceRead::Full {
            snapshot: snap,
            cursor: serde_json::to_string(&cursor).ok(),
        })
    }

    /// Graph asked for a synchronization reset: a full read, from the `Location` it named.
    async fn resync(
        &self,
        reason: &str,
        users: Option<String>,
        groups: Option<String>,
    ) -> Result<SourceRead, SourceError> {
        tracing::warn!(
            reason,
            users_location = users.as_deref(),
            groups_location = groups.as_deref(),
            "graph: the delta link is no longer valid, reading everything"
        );
        self.full_via_delta_from(users, groups).await
    }

    /// A delta round from the stored links. Only a synchronization reset (410 Gone,
    /// `syncStateNotFound`, `resyncRequired`) turns it into a full read; anything else that
    /// still fails after the client's retries fails the read, and the links stay as they were.
    pub(super) async fn delta(&self, cursor: &Cursor) -> Result<SourceRead, SourceError> {
        let select = self.user_select(true);
        let users = match self.client.delta_round(&cursor.users).await {
            Ok(r) => r,
            Err(GraphError::DeltaExpired { reason, location }) => {
                return self.resync(&reason, location, None).await
            }
            Err(e) => return Err(source_err(e)),
        };
        let groups = match self.client.delta_round(&cursor.groups).await {
            Ok(r) => r,
            Err(GraphError::DeltaExpired { reason, location }) => {
                return self.resync(&reason, None, location).await
            }
            Err(e) => return Err(source_err(e)),
        };
        let mut changes = Vec::new();
        let mut incomplete = Vec::new();
        for v in &users.items {
            let Some(id) = s(v, "id") else { continue };
            if v.get("@removed").is_some() {
                changes.push(Change::DeleteUser { source_id: id });
            } else if Self::complete(v, &select) {
                if let Some(u) = self.map_user(v) {
                    changes.push(Change::UpsertUser { user: u });
                }
            } else {
                incomplete.push(id);
            }
        }
        if !incomplete.is_empty() {
            let fetched = self
                .fetch("users", &incomplete, &self.user_select(false))
                .await?;
            for id in &incomplete {
                if let Some(u) = fetched.get(id).and_then(|v| self.map_user(v)) {
                    changes.push(Change::UpsertUser { user: u });
                }
            }
        }
        let group_select = GROUP_PROPS.join(",");
        let mut partial_groups = Vec::new();
        let mut member_changes = Vec::new();
        for v in &groups.items {
            let Some(id) = s(v, "id") else { continue };
            if v.get("@removed").is_some() {
                changes.push(Change::DeleteGroup { source_id: id });
                continue;
            }
            if v.get("displayName").is_some() {
                match Self::map_group(v) {
                    Some(g) if self.group_included(&g.display_name) => {
                        if self.cfg.group_filter.is_some() {
                            // It may have just entered the filter by a rename: its members come whole.
                            partial_groups.push(id.clone());
                        }
                        changes.push(Change::UpsertGroup { group: g });
                    }
                    Some(_) => changes.push(Change::DeleteGroup {
                        source_id: id.clone(),
                    }),
                    None => {}
                }
            } else if self.cfg.group_filter.is_some() {
                partial_groups.push(id.clone());
            }
            for m in v
                .get("members@delta")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(kind), Some(mid)) = (Self::member_kind(m), s(m, "id")) {
                    let member = MemberRef { kind, id: mid };
                    member_changes.push(if m.get("@removed").is_some() {
                        Change::RemoveMember {
                            group: id.clone(),
                            member,
                        }
                    } else {
                        Change::AddMember {
                            group: id.clone(),
                            member,
                        }
                    });
                }
            }
        }
        if self.cfg.group_filter.is_some() && !partial_groups.is_empty() {
            // Membership changes only count for included groups: look their names up.
            let fetched = self.fetch("groups", &partial_groups, &group_select).await?;
            let included: BTreeSet<String> = fetched
                .iter()
                .filter(|(_, v)| s(v, "displayName").is_some_and(|n| self.group_included(&n)))
                .map(|(id, _)| id.clone())
                .collect();
            member_changes.retain(|c| match c {
                Change::AddMember { group, .. } | Change::RemoveMember { group, .. } => {
                    included.contains(group)
                }
                _ => true,
            });
            for g in &included {
                let url = self
                    .client
                    .url(&format!("groups/{g}/members?$select=id&$top=999"));
                let all = self.client.get_all(&url, &[]).await.map_err(source_err)?;
                for m in all {
                    if let (Some(kind), Some(mid)) = (Self::member_kind(&m), s(&m, "id")) {
                        member_changes.push(Change::AddMember {
                            group: g.clone(),
                            member: MemberRef { kind, id: mid },
                        });
                    }
                }
            }
        }
        let mut changes = keep_last_per_object(changes);
        changes.extend(member_changes);
        let next = Cursor {
            users: users.delta_link,
            groups: groups.delta_link,
        };
        Ok(SourceRead::Delta {
            changes,
            cursor: serde_json::to_string(&next).unwrap_or_default(),
        })
    }
}

/// An object that came more than once in a round (a replay) keeps only its last change:
/// the later copy wins. Membership changes are not objects: they keep their order.
fn keep_last_per_object(changes: Vec<Change>) -> Vec<Change> {
    fn key(c: &Change) -> Option<(bool, &str)> {
        match c {
            Change::UpsertUser { user } => Some((true, user.source_id.as_str())),
            Change::DeleteUser { source_id } => Some((true, source_id.as_str())),
            Change::UpsertGroup { group } => Some((false, group.source_id.as_str())),
            Change::DeleteGroup { source_id } => Some((false, source_id.as_str())),
            _ => None,
        }
    }
    let mut last: HashMap<(bool, &str), usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if let Some(k) = key(c) {
            last.insert(k, i);
        }
    }
    let keep: Vec<bool> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| key(c).is_none_or(|k| last.get(&k) == Some(&i)))
        .collect();
    changes
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::keep_last_per_object;
    use idsync_core::{Change, Group, MemberKind, MemberRef, User};

    #[test]
    fn an_object_replayed_in_a_round_keeps_its_last_change_and_memberships_their_order() {
        let user = |name: &str| Change::UpsertUser {
            user: User::new("u1", name),
        };
        let member = |add: bool| {
            let m = MemberRef {
                kind: MemberKind::User,
                id: "u1".into(),
            };
            if add {
                Change::AddMember {
                    group: "g1".into(),
                    member: m,
                }
            } else {
                Change::RemoveMember {
                    group: "g1".into(),
                    member: m,
                }
            }
        };
        let changes = vec![
            user("first@example.com"),
            Change::UpsertGroup {
                group: Group::new("g1", "Old"),
            },
            member(true),
            user("second@example.com"),
            member(false),
            Change::UpsertGroup {
                group: Group::new("g1", "New"),
            },
            Change::DeleteUser {
                source_id: "u2".into(),
            },
        ];
        let kept = keep_last_per_object(changes);
        assert_eq!(
            kept,
            vec![
                member(true),
                user("second@example.com"),
                member(false),
                Change::UpsertGroup {
                    group: Group::new("g1", "New"),
                },
                Change::DeleteUser {
                    source_id: "u2".into(),
                },
            ]
        );
    }
}
