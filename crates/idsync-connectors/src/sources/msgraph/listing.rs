//! Reads by enumeration: group and application scopes, and tenants without delta.

use super::{s, source_err, GraphSource, GROUP_PROPS};
use idsync_core::{Group, MemberKind, MemberRef, Membership, Snapshot, SourceError, SourceRead};
use idsync_msgraph::GraphError;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl GraphSource {
    /// Fetch whole objects by id with `$batch`.
    pub(super) async fn fetch(
        &self,
        coll: &str,
        ids: &[String],
        select: &str,
    ) -> Result<HashMap<String, Value>, SourceError> {
        let expand = if coll == "users" {
            "&$expand=manager($select=id)"
        } else {
            ""
        };
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("/{coll}/{id}?$select={select}{expand}"))
            .collect();
        let answers = self.client.batch_get(&urls).await.map_err(source_err)?;
        let mut out = HashMap::new();
        for (id, a) in ids.iter().zip(answers) {
            match a {
                Ok(v) => {
                    out.insert(id.clone(), v);
                }
                // Deleted since the delta said it changed: the next round reports the removal.
                Err(GraphError::NotFound(_)) => {}
                Err(e) => return Err(source_err(e)),
            }
        }
        Ok(out)
    }

    /// Keep the included groups and the memberships among what is in the snapshot; user
    /// members are named through `keys` where their key is not their object id.
    pub(super) fn assemble(
        &self,
        snap: &mut Snapshot,
        groups: BTreeMap<String, Group>,
        members: BTreeMap<String, BTreeSet<MemberRef>>,
        keys: &HashMap<String, String>,
    ) {
        let groups: BTreeMap<String, Group> = groups
            .into_iter()
            .filter(|(_, g)| self.group_included(&g.display_name))
            .collect();
        let users: BTreeSet<&str> = snap.users.iter().map(|u| u.source_id.as_str()).collect();
        let mut memberships = Vec::new();
        for (g, ms) in members {
            if !groups.contains_key(&g) {
                continue;
            }
            for mut m in ms {
                if m.kind == MemberKind::User {
                    if let Some(k) = keys.get(&m.id) {
                        m.id.clone_from(k);
                    }
                }
                let present = match m.kind {
                    MemberKind::User => users.contains(m.id.as_str()),
                    MemberKind::Group => groups.contains_key(&m.id),
                };
                if present {
                    memberships.push(Membership {
                        group: g.clone(),
                        member: m,
                    });
                }
            }
        }
        snap.groups = groups.into_values().collect();
        snap.memberships = memberships;
    }

    pub(super) async fn list_users(&self) -> Result<Vec<Value>, SourceError> {
        let url = self.client.url(&format!(
            "users?$select={}&$expand=manager($select=id)&$top=999",
            self.user_select(false)
        ));
        self.client.get_all(&url, &[]).await.map_err(source_err)
    }

    /// Direct members of groups, with `$batch` (one request per group, pages followed).
    pub(super) async fn direct_members(
        &self,
        groups: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<MemberRef>>, SourceError> {
        let urls: Vec<String> = groups
            .iter()
            .map(|g| format!("/groups/{g}/members?$select=id&$top=999"))
            .collect();
        let answers = self.client.batch_get(&urls).await.map_err(source_err)?;
        let mut out: BTreeMap<String, BTreeSet<MemberRef>> = BTreeMap::new();
        for (g, a) in groups.iter().zip(answers) {
            let mut page = a.map_err(source_err)?;
            let set = out.entry(g.clone()).or_default();
            loop {
                for m in page
                    .get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(kind), Some(mid)) = (Self::member_kind(m), s(m, "id")) {
                        set.insert(MemberRef { kind, id: mid });
                    }
                }
                match page.get("@odata.nextLink").and_then(Value::as_str) {
                    Some(next) => page = self.client.get(next, &[]).await.map_err(source_err)?,
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// The whole tenant by enumeration (no delta).
    pub(super) async fn full_by_listing(&self) -> Result<SourceRead, SourceError> {
        let users = self.list_users().await?;
        let url = self.client.url(&format!(
            "groups?$select={}&$top=999",
            GROUP_PROPS.join(",")
        ));
        let groups = self.client.get_all(&url, &[]).await.map_err(source_err)?;
        let mut snap = Snapshot::default();
        let (mapped, keys) = self.map_users(users.iter());
        snap.users = mapped;
        let groups: BTreeMap<String, Group> = groups
            .iter()
            .filter_map(Self::map_group)
            .filter(|g| self.group_included(&g.display_name))
            .map(|g| (g.source_id.clone(), g))
            .collect();
        let ids: Vec<String> = groups.keys().cloned().collect();
        let members = self.direct_members(&ids).await?;
        self.assemble(&mut snap, groups, members, &keys);
        Ok(SourceRead::Full {
            snapshot: snap,
            cursor: None,
        })
    }

    /// Groups in scope, given as group ids: each with its nested groups, and every user
    /// under them.
    pub(super) async fn full_from_groups(
        &self,
        roots: Vec<String>,
        direct_users: Vec<String>,
    ) -> Result<SourceRead, SourceError> {
        let select = self.user_select(false);
        let mut users: BTreeMap<String, Value> = BTreeMap::new();
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let root_urls: Vec<String> = roots
            .iter()
            .map(|g| format!("/groups/{g}?$select={}", GROUP_PROPS.join(",")))
            .collect();
        for (g, a) in roots.iter().zip(
            self.client
                .batch_get(&root_urls)
                .await
                .map_err(source_err)?,
        ) {
            match a {
                Ok(v) => {
                    if let Some(gr) = Self::map_group(&v) {
                        groups.insert(g.clone(), gr);
                    }
                }
                Err(GraphError::NotFound(_)) => {}
                Err(e) => return Err(source_err(e)),
            }
        }
        let roots: Vec<String> = groups.keys().cloned().collect();
        for g in &roots {
            let url = self.client.url(&format!(
                "groups/{g}/transitiveMembers/microsoft.graph.user?$select={select}&$top=999"
            ));
            for u in self.client.get_all(&url, &[]).await.map_err(source_err)? {
                if let Some(id) = s(&u, "id") {
                    users.insert(id, u);
                }
            }
            let url = self.client.url(&format!(
                "groups/{g}/transitiveMembers/microsoft.graph.group?$select={}&$top=999",
                GROUP_PROPS.join(",")
            ));
            for v in self.client.get_all(&url, &[]).await.map_err(source_err)? {
                if let Some(gr) = Self::map_group(&v) {
                    groups.insert(gr.source_id.clone(), gr);
                }
            }
        }
        let missing: Vec<String> = direct_users
            .into_iter()
            .filter(|u| !users.contains_key(u))
            .collect();
        if !missing.is_empty() {
            for (id, v) in self.fetch("users", &missing, &select).await? {
                users.insert(id, v);
            }
        }
        // Managers: one batch for the users in scope.
        let ids: Vec<String> = users.keys().cloned().collect();
        let urls: Vec<String> = ids
            .iter()
            .map(|u| format!("/users/{u}/manager?$select=id"))
            .collect();
        for (id, a) in ids
            .iter()
            .zip(self.client.batch_get(&urls).await.map_err(source_err)?)
        {
            match a {
                Ok(m) => {
                    if let (Some(u), Some(mid)) = (users.get_mut(id), s(&m, "id")) {
                        if let Some(o) = u.as_object_mut() {
                            o.insert("manager".into(), serde_json::json!({"id": mid}));
                        }
                    }
                }
                Err(GraphError::NotFound(_)) => {}
                Err(e) => return Err(source_err(e)),
            }
        }
        let mut snap = Snapshot::default();
        let (mapped, keys) = self.map_users(users.values());
        snap.users = mapped;
        let gids: Vec<String> = groups.keys().cloned().collect();
        let members = self.direct_members(&gids).await?;
        self.assemble(&mut snap, groups, members, &keys);
        Ok(SourceRead::Full {
            snapshot: snap,
            cursor: None,
        })
    }

    pub(super) async fn group_ids_by_name(
        &self,
        names: &[String],
    ) -> Result<Vec<String>, SourceError> {
        let mut out = Vec::new();
        for n in names {
            let quoted = n.replace('\'', "''");
            let filter = format!("displayName eq '{quoted}'");
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("$filter", &filter)
                .append_pair("$select", "id,displayName")
                .finish();
            let url = self.client.url(&format!("groups?{q}"));
            let found = self.client.get_all(&url, &[]).await.map_err(source_err)?;
            if found.is_empty() {
                return Err(SourceError::Invalid {
                    location: "scope".into(),
                    message: format!("no group named \"{n}\" in the tenant"),
                });
            }
            out.extend(found.iter().filter_map(|g| s(g, "id")));
        }
        Ok(out)
    }

    pub(super) async fn app_assignments(
        &self,
        app_id: &str,
    ) -> Result<(Vec<String>, Vec<String>), SourceError> {
        let url = self.client.url(&format!(
            "servicePrincipals(appId='{app_id}')?$select=id,displayName"
        ));
        let sp = match self.client.get(&url, &[]).await {
            Ok(v) => v,
            Err(GraphError::NotFound(_)) => {
                return Err(SourceError::Invalid {
                    location: "scope".into(),
                    message: format!("no enterprise application with appId {app_id} in the tenant"),
                })
            }
            Err(e) => return Err(source_err(e)),
        };
        let sp_id = s(&sp, "id").unwrap_or_default();
        let url = self.client.url(&format!(
            "servicePrincipals/{sp_id}/appRoleAssignedTo?$top=999"
        ));
        let mut users = Vec::new();
        let mut groups = Vec::new();
        for a in self.client.get_all(&url, &[]).await.map_err(source_err)? {
            let Some(p) = s(&a, "principalId") else {
                continue;
            };
            match a.get("principalType").and_then(Value::as_str) {
                Some("User") => users.push(p),
                Some("Group") => groups.push(p),
                _ => {}
            }
        }
        Ok((users, groups))
    }
}
