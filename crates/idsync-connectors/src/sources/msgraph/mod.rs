//! The Microsoft Graph source: Entra ID and Azure AD B2C / External ID tenants.
//!
//! **Scope**: the whole directory, the (transitive) members of listed groups, or the users and
//! groups assigned to an enterprise application. Groups can be filtered by name or regex.
//!
//! **Reads**: with the whole directory in scope and delta available, the first read is a delta
//! round from scratch (`users/delta`, `groups/delta` with `members@delta`), and later reads
//! are delta rounds from the stored delta links: only changes travel. Objects keep their Graph
//! object id as key. A delta item lacking selected properties is completed with one `$batch`
//! of GETs. An expired delta link (410 `syncStateNotFound`) is answered by a full read.
//! Group and application scopes, and tenants without delta (B2C, External ID), are read whole
//! each time; the store writes and logs only what differs, so the incremental cost downstream
//! stays proportional to the changes.
//!
//! Every read is whole or an error: a page that fails after retries fails the read, and
//! nothing is taken as the whole directory.

use async_trait::async_trait;
use idsync_core::{
    Address, AttrValue, Change, Email, Group, MemberKind, MemberRef, Membership, Name, Phone,
    ReadStats, Snapshot, Source, SourceError, SourceRead, User,
};
/// The Graph client this source reads with.
pub use idsync_msgraph as client;
use idsync_msgraph::{GraphClient, GraphError, GraphStats};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which objects the source reads.
#[derive(Debug, Clone)]
pub enum GraphScope {
    /// Every user and group of the tenant.
    All,
    /// Listed groups (by display name) and their transitive members.
    Groups(Vec<String>),
    /// Users and groups assigned to an enterprise application (by its appId), groups with their
    /// transitive members.
    App(String),
}

/// Where a user's userName comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum UserNameFrom {
    UserPrincipalName,
    Mail,
    /// A B2C local account identity of this signInType (`emailAddress`, `userName`, ...).
    Identity(String),
}

/// What keys a user: the object id, or (B2C local accounts) issuer + issuerAssignedId of an
/// identity of a signInType.
#[derive(Debug, Clone, PartialEq)]
pub enum UserKey {
    ObjectId,
    Identity(String),
}

#[derive(Debug, Clone)]
pub struct GraphSourceConfig {
    pub scope: GraphScope,
    /// Only groups whose display name matches (others, and memberships in them, are left out).
    pub group_filter: Option<Regex>,
    pub user_name: UserNameFrom,
    pub key: UserKey,
    /// Extension attributes to read (`extension_<appId>_<name>`), kept in `custom` under
    /// their short name.
    pub extensions: Vec<String>,
    /// Use delta queries (off for B2C and External ID, which have none).
    pub delta: bool,
}

impl Default for GraphSourceConfig {
    fn default() -> Self {
        GraphSourceConfig {
            scope: GraphScope::All,
            group_filter: None,
            user_name: UserNameFrom::UserPrincipalName,
            key: UserKey::ObjectId,
            extensions: Vec::new(),
            delta: true,
        }
    }
}

const USER_PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "accountEnabled",
    "jobTitle",
    "department",
    "employeeId",
    "companyName",
    "officeLocation",
    "city",
    "country",
    "streetAddress",
    "postalCode",
    "state",
    "preferredLanguage",
    "businessPhones",
    "mobilePhone",
    "userType",
    "onPremisesExtensionAttributes",
];
const GROUP_PROPS: &[&str] = &["id", "displayName", "description"];

/// What the source keeps between reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    users: String,
    groups: String,
}

pub struct GraphSource {
    client: GraphClient,
    cfg: GraphSourceConfig,
}

fn source_err(e: GraphError) -> SourceError {
    match e {
        GraphError::Auth { .. } | GraphError::Consent { .. } => SourceError::Auth(e.to_string()),
        GraphError::DeltaExpired(m) => SourceError::CursorExpired(m),
        GraphError::Invalid { url, message } => SourceError::Invalid {
            location: url,
            message,
        },
        other => SourceError::Unavailable(other.to_string()),
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

impl GraphSource {
    pub fn new(client: GraphClient, cfg: GraphSourceConfig) -> Self {
        GraphSource { client, cfg }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// What the Graph client did so far (requests, retries, throttles, resource units).
    pub fn stats(&self) -> GraphStats {
        self.client.stats()
    }

    fn user_select(&self, with_manager: bool) -> String {
        let mut props: Vec<String> = USER_PROPS.iter().map(|s| (*s).to_string()).collect();
        if !self.cfg.delta
            || !matches!(self.cfg.scope, GraphScope::All)
            || self.cfg.key != UserKey::ObjectId
        {
            props.push("identities".into());
        }
        props.extend(self.cfg.extensions.iter().cloned());
        if with_manager {
            props.push("manager".into());
        }
        props.join(",")
    }

    fn uses_delta(&self) -> bool {
        self.cfg.delta
            && matches!(self.cfg.scope, GraphScope::All)
            && self.cfg.key == UserKey::ObjectId
    }

    fn group_included(&self, name: &str) -> bool {
        self.cfg
            .group_filter
            .as_ref()
            .is_none_or(|r| r.is_match(name))
    }

    /// Map a Graph user to idsync's model; `None` when it has no usable key or userName.
    pub fn map_user(&self, v: &Value) -> Option<User> {
        let id = s(v, "id")?;
        let identities: Vec<&Value> = v
            .get("identities")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let identity = |kind: &str| {
            identities
                .iter()
                .find(|i| i.get("signInType").and_then(Value::as_str) == Some(kind))
                .copied()
        };
        let key = match &self.cfg.key {
            UserKey::ObjectId => id.clone(),
            UserKey::Identity(kind) => {
                let i = identity(kind)?;
                format!("{}/{}", s(i, "issuer")?, s(i, "issuerAssignedId")?)
            }
        };
        let email_identity = identity("emailAddress").and_then(|i| s(i, "issuerAssignedId"));
        let mail = s(v, "mail").or_else(|| email_identity.clone());
        let user_name = match &self.cfg.user_name {
            UserNameFrom::UserPrincipalName => s(v, "userPrincipalName"),
            UserNameFrom::Mail => mail.clone(),
            UserNameFrom::Identity(kind) => identity(kind).and_then(|i| s(i, "issuerAssignedId")),
        }?;
        let mut u = User::new(key, user_name);
        u.external_id = s(v, "mailNickname");
        u.name = Name {
            given_name: s(v, "givenName"),
            family_name: s(v, "surname"),
            formatted: s(v, "displayName"),
            ..Name::default()
        };
        u.display_name = s(v, "displayName");
        if let Some(m) = mail {
            u.emails.push(Email {
                value: m,
                kind: Some("work".into()),
                primary: true,
            });
        }
        if let Some(p) = v
            .get("businessPhones")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
        {
            u.phone_numbers.push(Phone {
                value: p.to_string(),
                kind: Some("work".into()),
                primary: true,
            });
        }
        if let Some(m) = s(v, "mobilePhone") {
            let primary = u.phone_numbers.is_empty();
            u.phone_numbers.push(Phone {
                value: m,
                kind: Some("mobile".into()),
                primary,
            });
        }
        let address = Address {
            street_address: s(v, "streetAddress"),
            locality: s(v, "city"),
            region: s(v, "state"),
            postal_code: s(v, "postalCode"),
            country: s(v, "country"),
            kind: Some("work".into()),
            ..Address::default()
        };
        if address
            != (Address {
                kind: Some("work".into()),
                ..Address::default()
            })
        {
            u.addresses.push(address);
        }
        u.user_type = s(v, "userType");
        u.active = v
            .get("accountEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        u.title = s(v, "jobTitle");
        u.department = s(v, "department");
        u.employee_id = s(v, "employeeId");
        u.organization = s(v, "companyName");
        u.preferred_language = s(v, "preferredLanguage");
        u.manager = v.get("manager").and_then(|m| s(m, "id")).or_else(|| {
            v.get("manager@delta")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|m| m.get("@removed").is_none()))
                .and_then(|m| s(m, "id"))
        });
        if let Some(ext) = v
            .get("onPremisesExtensionAttributes")
            .and_then(Value::as_object)
        {
            for (k, val) in ext {
                if let Some(x) = val.as_str() {
                    u.custom.insert(k.clone(), AttrValue::String(x.to_string()));
                }
            }
        }
        for e in &self.cfg.extensions {
            let short = e.rsplit_once('_').map_or(e.as_str(), |(_, n)| n);
            match v.get(e) {
                Some(Value::String(x)) => {
                    u.custom
                        .insert(short.to_string(), AttrValue::String(x.clone()));
                }
                Some(Value::Bool(b)) => {
                    u.custom.insert(short.to_string(), AttrValue::Boolean(*b));
                }
                Some(Value::Number(n)) => {
                    if let Some(i) = n.as_i64() {
                        u.custom.insert(short.to_string(), AttrValue::Integer(i));
                    }
                }
                _ => {}
            }
        }
        Some(u)
    }

    fn map_group(v: &Value) -> Option<Group> {
        let mut g = Group::new(s(v, "id")?, s(v, "displayName")?);
        g.description = s(v, "description");
        Some(g)
    }

    fn member_kind(v: &Value) -> Option<MemberKind> {
        match v.get("@odata.type").and_then(Value::as_str) {
            Some("#microsoft.graph.user") => Some(MemberKind::User),
            Some("#microsoft.graph.group") => Some(MemberKind::Group),
            _ => None,
        }
    }

    /// Does a delta item carry every property we select?
    fn complete(v: &Value, props: &str) -> bool {
        props
            .split(',')
            .filter(|p| *p != "manager" && *p != "identities")
            .all(|p| v.get(p).is_some())
    }

    /// Fetch whole objects by id with `$batch`.
    async fn fetch(
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

    async fn full_via_delta(&self) -> Result<SourceRead, SourceError> {
        let select = self.user_select(true);
        let users_url = self.client.url(&format!("users/delta?$select={select}"));
        let groups_url = self.client.url(&format!(
            "groups/delta?$select={},members",
            GROUP_PROPS.join(",")
        ));
        // Pages are mapped as they arrive: the raw JSON of a 100k-user tenant is never held whole.
        // The users' and the groups' pages are two chains of links: read side by side.
        let mut snap = Snapshot::default();
        let users = self.client.delta_pages(&users_url, |page| {
            for v in &page {
                if v.get("@removed").is_none() {
                    if let Some(u) = self.map_user(v) {
                        snap.users.push(u);
                    }
                }
            }
        });
        let mut seen_groups = BTreeMap::new();
        let mut members: BTreeMap<String, BTreeSet<MemberRef>> = BTreeMap::new();
        let groups = self.client.delta_pages(&groups_url, |page| {
            for v in &page {
                if v.get("@removed").is_some() {
                    continue;
                }
                let Some(id) = s(v, "id") else { continue };
                if let Some(g) = Self::map_group(v) {
                    seen_groups.insert(id.clone(), g);
                }
                // A large group's members may come over several items.
                let set = members.entry(id).or_default();
                for m in v
                    .get("members@delta")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if m.get("@removed").is_some() {
                        continue;
                    }
                    if let (Some(kind), Some(mid)) = (Self::member_kind(m), s(m, "id")) {
                        set.insert(MemberRef { kind, id: mid });
                    }
                }
            }
        });
        let (users_link, groups_link) = tokio::try_join!(users, groups).map_err(source_err)?;
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

    /// Keep the included groups and the memberships among what is in the snapshot; user
    /// members are named through `keys` where their key is not their object id.
    fn assemble(
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

    async fn delta(&self, cursor: &Cursor) -> Result<SourceRead, SourceError> {
        let select = self.user_select(true);
        let users = self.client.delta_round(&cursor.users).await;
        let groups = match &users {
            Ok(_) => self.client.delta_round(&cursor.groups).await,
            Err(_) => Err(GraphError::DeltaExpired("skipped".into())),
        };
        let (users, groups) = match (users, groups) {
            (Ok(u), Ok(g)) => (u, g),
            (Err(GraphError::DeltaExpired(why)), _) | (_, Err(GraphError::DeltaExpired(why))) => {
                tracing::warn!(reason = %why, "graph: delta link no longer valid, reading everything");
                return self.full_via_delta().await;
            }
            (Err(e), _) | (_, Err(e)) => return Err(source_err(e)),
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

    async fn list_users(&self) -> Result<Vec<Value>, SourceError> {
        let url = self.client.url(&format!(
            "users?$select={}&$expand=manager($select=id)&$top=999",
            self.user_select(false)
        ));
        self.client.get_all(&url, &[]).await.map_err(source_err)
    }

    /// Direct members of groups, with `$batch` (one request per group, pages followed).
    async fn direct_members(
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
    async fn full_by_listing(&self) -> Result<SourceRead, SourceError> {
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

    /// Map Graph users; with identity keys, also the object id → key map that memberships
    /// (which name object ids) are translated through.
    fn map_users<'a>(
        &self,
        values: impl Iterator<Item = &'a Value>,
    ) -> (Vec<User>, HashMap<String, String>) {
        let mut users = Vec::new();
        let mut keys = HashMap::new();
        for v in values {
            if let (Some(u), Some(id)) = (self.map_user(v), s(v, "id")) {
                if u.source_id != id {
                    keys.insert(id, u.source_id.clone());
                }
                users.push(u);
            }
        }
        (users, keys)
    }

    /// Groups in scope, given as group ids: each with its nested groups, and every user
    /// under them.
    async fn full_from_groups(
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

    async fn group_ids_by_name(&self, names: &[String]) -> Result<Vec<String>, SourceError> {
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

    async fn app_assignments(
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

/// What `idsync source check` shows before a first sync: which tenant this is, how much is in
/// scope, and which permissions are missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub tenant_id: Option<String>,
    pub tenant_name: Option<String>,
    /// (domain, is default, is initial)
    pub domains: Vec<(String, bool, bool)>,
    pub users_in_scope: Option<usize>,
    pub groups_in_scope: Option<usize>,
    pub granted: Vec<String>,
    /// Requirements no granted permission meets; each lists the permissions that would.
    pub missing: Vec<Vec<String>>,
    /// What could not be read, and why.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.problems.is_empty()
    }
}

impl GraphSource {
    /// The permissions a read in this scope needs; each inner list: any one of them.
    pub fn required_permissions(&self) -> Vec<Vec<&'static str>> {
        let mut r = vec![
            vec!["User.Read.All", "Directory.Read.All"],
            vec![
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
            ],
        ];
        if matches!(self.cfg.scope, GraphScope::App(_)) {
            r.push(vec!["Application.Read.All", "Directory.Read.All"]);
        }
        r
    }

    /// Sign in, read the organization and count what is in scope. Sign-in failures are errors;
    /// everything else lands in the report.
    pub async fn check(&self) -> Result<CheckReport, SourceError> {
        let granted = self.client.granted_roles().await.map_err(source_err)?;
        let mut report = CheckReport {
            tenant_id: None,
            tenant_name: None,
            domains: Vec::new(),
            users_in_scope: None,
            groups_in_scope: None,
            missing: self
                .required_permissions()
                .into_iter()
                .filter(|any| !any.iter().any(|p| granted.iter().any(|g| g == p)))
                .map(|any| any.into_iter().map(str::to_string).collect())
                .collect(),
            granted,
            problems: Vec::new(),
        };
        match self.client.get(&self.client.url("organization"), &[]).await {
            Ok(v) => {
                if let Some(org) = v.get("value").and_then(Value::as_array).and_then(|a| a.first()) {
                    report.tenant_id = s(org, "id");
                    report.tenant_name = s(org, "displayName");
                    for d in org.get("verifiedDomains").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(name) = s(d, "name") {
                            let flag = |k: &str| d.get(k).and_then(Value::as_bool).unwrap_or(false);
                            report.domains.push((name, flag("isDefault"), flag("isInitial")));
                        }
                    }
                }
            }
            Err(e) => report.problems.push(format!("cannot read the organization (grant Organization.Read.All or Directory.Read.All to see the tenant's name and domains): {e}")),
        }
        if !report.missing.is_empty() {
            return Ok(report);
        }
        let counted = match &self.cfg.scope {
            GraphScope::All if self.cfg.group_filter.is_none() && self.uses_delta() => {
                let count = |coll: &'static str| async move {
                    let v = self
                        .client
                        .get(
                            &self.client.url(&format!("{coll}/$count")),
                            &[("ConsistencyLevel", "eventual")],
                        )
                        .await?;
                    Ok::<usize, GraphError>(
                        v.as_u64()
                            .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
                            .unwrap_or(0) as usize,
                    )
                };
                match (count("users").await, count("groups").await) {
                    (Ok(u), Ok(g)) => Ok((u, g)),
                    (Err(e), _) | (_, Err(e)) => Err(source_err(e)),
                }
            }
            // Anything narrower is counted by reading it (nothing is written).
            _ => match self.read(None).await {
                Ok(SourceRead::Full { snapshot, .. }) => {
                    Ok((snapshot.users.len(), snapshot.groups.len()))
                }
                Ok(SourceRead::Delta { .. }) => Ok((0, 0)),
                Err(e) => Err(e),
            },
        };
        match counted {
            Ok((u, g)) => {
                report.users_in_scope = Some(u);
                report.groups_in_scope = Some(g);
            }
            Err(e) => report
                .problems
                .push(format!("cannot count what is in scope: {e}")),
        }
        Ok(report)
    }
}

#[async_trait]
impl Source for GraphSource {
    fn describe(&self) -> String {
        format!(
            "Microsoft Graph tenant {} ({})",
            self.client.config().tenant,
            self.client.config().graph
        )
    }

    fn stats(&self) -> Option<ReadStats> {
        let s = self.client.stats();
        Some(ReadStats {
            requests: s.requests,
            retries: s.retries,
            throttled: s.throttled,
            resource_units: s.resource_units,
        })
    }

    async fn read(&self, cursor: Option<&str>) -> Result<SourceRead, SourceError> {
        match &self.cfg.scope {
            GraphScope::All if self.uses_delta() => {
                match cursor.and_then(|c| serde_json::from_str::<Cursor>(c).ok()) {
                    Some(c) => self.delta(&c).await,
                    None => self.full_via_delta().await,
                }
            }
            GraphScope::All => self.full_by_listing().await,
            GraphScope::Groups(names) => {
                let ids = self.group_ids_by_name(names).await?;
                self.full_from_groups(ids, Vec::new()).await
            }
            GraphScope::App(app) => {
                let (users, groups) = self.app_assignments(app).await?;
                self.full_from_groups(groups, users).await
            }
        }
    }
}
