//! The simulated tenant: users, groups, memberships and enterprise applications, with a change
//! counter that gives delta queries real semantics. No HTTP here.
//!
//! Every write moves the tenant's `version`. Objects remember the version of their last change,
//! deletions leave tombstones and membership changes are logged, so a delta token is just the
//! version it was issued at: the next delta returns what changed after it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The kind of a directory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn odata_type(self) -> &'static str {
        match self {
            Kind::User => "#microsoft.graph.user",
            Kind::Group => "#microsoft.graph.group",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub users: usize,
    pub groups: usize,
    /// User memberships in total (spread over the groups); nested-group links come on top.
    pub memberships: usize,
    /// Levels of group nesting (1: flat).
    pub depth: usize,
    pub seed: u64,
    /// An Azure AD B2C tenant: local accounts with `identities`, no `mail`, no delta queries.
    pub b2c: bool,
    /// The tenant's initial domain prefix (`<name>.onmicrosoft.com`).
    pub name: String,
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            users: 100,
            groups: 10,
            memberships: 300,
            depth: 3,
            seed: 1,
            b2c: false,
            name: "contoso".into(),
        }
    }
}

/// A user or group: its Graph properties, and the versions it was created and last changed at.
#[derive(Debug, Clone)]
pub struct Obj {
    pub props: Map<String, Value>,
    pub changed: u64,
}

/// One app role assignment of an enterprise application.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub principal: (Kind, String),
    pub app_role_id: String,
}

/// An enterprise application (service principal) and who is assigned to it.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub assignments: Vec<Assignment>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TenantError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
}

#[derive(Debug, Clone)]
struct Tombstone {
    at: u64,
    kind: Kind,
    id: String,
}

#[derive(Debug, Clone)]
struct MemberEvent {
    at: u64,
    group: String,
    member: (Kind, String),
    added: bool,
}

/// The tenant.
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub b2c: bool,
    /// The application id whose `extension_<appId>_<name>` attributes the tenant carries
    /// (B2C's b2c-extensions-app), without dashes.
    pub extension_app: String,
    pub domains: Vec<String>,
    users: BTreeMap<String, Obj>,
    groups: BTreeMap<String, Obj>,
    members: HashMap<String, BTreeSet<(Kind, String)>>,
    member_of: HashMap<String, BTreeSet<String>>,
    tombstones: Vec<Tombstone>,
    member_log: Vec<MemberEvent>,
    pub service_principals: Vec<ServicePrincipal>,
    version: u64,
    /// Delta tokens issued before this version are expired (fault injection, or age).
    pub delta_floor: u64,
}

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Frances",
    "John",
    "Radia",
    "Dennis",
    "Adele",
    "Tim",
    "Hedy",
    "Linus",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Björn",
    "Zoë",
    "José",
    "Amélie",
    "Łukasz",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Allen",
    "McCarthy",
    "Perlman",
    "Ritchie",
    "Goldberg",
    "Berners-Lee",
    "Lamarr",
    "Torvalds",
    "Johnson",
    "Wirth",
    "Wilson",
    "Ström",
    "Müller",
    "García",
    "Nowak",
    "O'Neil",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Support",
    "Research",
    "Operations",
];
const CITIES: &[&str] = &[
    "Berlin", "Seattle", "Sydney", "London", "Paris", "Warsaw", "Oslo",
];

fn uuid_from(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'ä' | 'á' | 'à' => Some('a'),
            'é' | 'è' | 'ë' => Some('e'),
            'ö' | 'ó' | 'ø' => Some('o'),
            'ü' | 'ú' => Some('u'),
            'ł' | 'Ł' => Some('l'),
            'ß' => Some('s'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

impl Tenant {
    /// A deterministic tenant: the same spec always gives the same objects and ids.
    pub fn generate(spec: &TenantSpec) -> Tenant {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let id = uuid_from(&mut rng);
        let extension_app = uuid_from(&mut rng).replace('-', "");
        let initial = format!("{}.onmicrosoft.com", spec.name);
        let domains = if spec.b2c {
            vec![initial.clone()]
        } else {
            vec![initial.clone(), format!("{}.com", spec.name)]
        };
        let mail_domain = domains.last().cloned().unwrap_or_else(|| initial.clone());
        let mut t = Tenant {
            id,
            name: spec.name.clone(),
            display_name: format!("{} (simulated)", spec.name),
            b2c: spec.b2c,
            extension_app,
            domains,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            members: HashMap::new(),
            member_of: HashMap::new(),
            tombstones: Vec::new(),
            member_log: Vec::new(),
            service_principals: Vec::new(),
            version: 0,
            delta_floor: 0,
        };
        let created = "2024-01-15T09:00:00Z";
        let mut user_ids = Vec::with_capacity(spec.users);
        for i in 0..spec.users {
            let uid = uuid_from(&mut rng);
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            let nick = format!("{}.{}{i}", ascii_lower(first), ascii_lower(last));
            let dept = DEPARTMENTS[rng.gen_range(0..DEPARTMENTS.len())];
            let mut p = Map::new();
            p.insert("id".into(), json!(uid));
            p.insert("displayName".into(), json!(format!("{first} {last}")));
            p.insert("givenName".into(), json!(first));
            p.insert("surname".into(), json!(last));
            p.insert("accountEnabled".into(), json!(rng.gen_ratio(19, 20)));
            p.insert("createdDateTime".into(), json!(created));
            p.insert("department".into(), json!(dept));
            p.insert("jobTitle".into(), json!(format!("{dept} specialist")));
            p.insert("city".into(), json!(CITIES[rng.gen_range(0..CITIES.len())]));
            p.insert("employeeId".into(), json!(format!("E{:06}", i + 1)));
            if spec.b2c {
                let email = format!("{nick}@example.net");
                p.insert(
                    "userPrincipalName".into(),
                    json!(format!("{uid}@{initial}")),
                );
                p.insert("mail".into(), Value::Null);
                p.insert("mailNickname".into(), json!(uid.replace('-', "")));
                p.insert(
                    "identities".into(),
                    json!([
                        {"signInType": "emailAddress", "issuer": initial, "issuerAssignedId": email},
                        {"signInType": "userPrincipalName", "issuer": initial, "issuerAssignedId": format!("{uid}@{initial}")}
                    ]),
                );
                p.insert(
                    format!("extension_{}_loyaltyId", t.extension_app),
                    json!(format!("L{:08}", i + 1)),
                );
                p.insert("creationType".into(), json!("LocalAccount"));
            } else {
                let upn = format!("{nick}@{mail_domain}");
                p.insert("userPrincipalName".into(), json!(upn));
                p.insert("mail".into(), json!(upn));
                p.insert("mailNickname".into(), json!(nick));
                p.insert("companyName".into(), json!(t.display_name));
                p.insert("usageLocation".into(), json!("DE"));
                p.insert("businessPhones".into(), json!([format!("+49 30 {:07}", i)]));
                p.insert(
                    "onPremisesSamAccountName".into(),
                    json!(nick.chars().take(20).collect::<String>()),
                );
                p.insert(
                    "onPremisesExtensionAttributes".into(),
                    json!({"extensionAttribute1": format!("cc-{}", 1000 + i % 50)}),
                );
                p.insert(
                    "identities".into(),
                    json!([{"signInType": "userPrincipalName", "issuer": initial, "issuerAssignedId": upn}]),
                );
            }
            t.users.insert(
                uid.clone(),
                Obj {
                    props: p,
                    changed: 0,
                },
            );
            user_ids.push(uid);
        }
        // Managers: everyone but the first in each block of 20 reports to that first user.
        for (i, uid) in user_ids.iter().enumerate() {
            if i % 20 != 0 {
                let manager = user_ids[i - i % 20].clone();
                if let Some(u) = t.users.get_mut(uid) {
                    u.props.insert("manager".into(), json!({"id": manager}));
                }
            }
        }
        // Groups by level: level 0 has the most; each group below level 0 is nested in one
        // group of the level above.
        let depth = spec.depth.max(1);
        let mut levels: Vec<Vec<String>> = vec![Vec::new(); depth];
        for i in 0..spec.groups {
            let gid = uuid_from(&mut rng);
            let level = if depth == 1 { 0 } else { i % depth };
            let dept = DEPARTMENTS[i % DEPARTMENTS.len()];
            let name = format!("{dept} {:04}", i + 1);
            let mut p = Map::new();
            p.insert("id".into(), json!(gid));
            p.insert("displayName".into(), json!(name));
            p.insert(
                "description".into(),
                json!(format!("{dept} team (level {level})")),
            );
            p.insert("mailNickname".into(), json!(ascii_lower(&name)));
            p.insert("mailEnabled".into(), json!(false));
            p.insert("securityEnabled".into(), json!(true));
            p.insert("groupTypes".into(), json!([]));
            p.insert("createdDateTime".into(), json!(created));
            t.groups.insert(
                gid.clone(),
                Obj {
                    props: p,
                    changed: 0,
                },
            );
            levels[level].push(gid);
        }
        for level in 1..depth {
            let (above, this) = (levels[level - 1].clone(), levels[level].clone());
            if above.is_empty() {
                continue;
            }
            for (i, child) in this.iter().enumerate() {
                let parent = &above[i % above.len()];
                t.link(parent, (Kind::Group, child.clone()));
            }
        }
        // User memberships: groups get members in proportion, users at random.
        let all_groups: Vec<String> = t.groups.keys().cloned().collect();
        if !all_groups.is_empty() && !user_ids.is_empty() {
            let max = all_groups.len().saturating_mul(user_ids.len());
            let want = spec.memberships.min(max);
            let mut made = 0;
            let mut tries = 0usize;
            while made < want && tries < want.saturating_mul(4) {
                tries += 1;
                let g = &all_groups[rng.gen_range(0..all_groups.len())];
                let u = &user_ids[rng.gen_range(0..user_ids.len())];
                if t.link(g, (Kind::User, u.clone())) {
                    made += 1;
                }
            }
        }
        // One enterprise application with some users and one group assigned.
        let sp_id = uuid_from(&mut rng);
        let app_id = uuid_from(&mut rng);
        let mut assignments = Vec::new();
        for uid in user_ids.iter().take(10) {
            assignments.push(Assignment {
                id: uuid_from(&mut rng),
                principal: (Kind::User, uid.clone()),
                app_role_id: "00000000-0000-0000-0000-000000000000".into(),
            });
        }
        if let Some(g) = levels.first().and_then(|l| l.first()) {
            assignments.push(Assignment {
                id: uuid_from(&mut rng),
                principal: (Kind::Group, g.clone()),
                app_role_id: "00000000-0000-0000-0000-000000000000".into(),
            });
        }
        t.service_principals.push(ServicePrincipal {
            id: sp_id,
            app_id,
            display_name: "Atlassian Cloud".into(),
            assignments,
        });
        t.tombstones.clear();
        t.member_log.clear();
        // Generated objects are at version 0; the first delta link is issued at 1.
        t.version = 1;
        t
    }

    /// Add a member without logging (generation) and say whether it was new.
    fn link(&mut self, group: &str, member: (Kind, String)) -> bool {
        let id = member.1.clone();
        let added = self
            .members
            .entry(group.to_string())
            .or_default()
            .insert(member);
        if added {
            self.member_of
                .entry(id)
                .or_default()
                .insert(group.to_string());
        }
        added
    }

    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn user_count(&self) -> usize {
        self.users.len()
    }
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
    pub fn membership_count(&self) -> usize {
        self.members.values().map(BTreeSet::len).sum()
    }

    pub fn objects(&self, kind: Kind) -> &BTreeMap<String, Obj> {
        match kind {
            Kind::User => &self.users,
            Kind::Group => &self.groups,
        }
    }

    fn objects_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, Obj> {
        match kind {
            Kind::User => &mut self.users,
            Kind::Group => &mut self.groups,
        }
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<&Obj> {
        self.objects(kind).get(id)
    }

    /// Which kind an object id is, if it exists.
    pub fn kind_of(&self, id: &str) -> Option<Kind> {
        if self.users.contains_key(id) {
            Some(Kind::User)
        } else if self.groups.contains_key(id) {
            Some(Kind::Group)
        } else {
            None
        }
    }

    /// Direct members of a group.
    pub fn members(&self, group: &str) -> Option<Vec<(Kind, String)>> {
        self.groups.get(group)?;
        Some(
            self.members
                .get(group)
                .map(|m| m.iter().cloned().collect())
                .unwrap_or_default(),
        )
    }

    /// Every object under a group through nested groups (cycles included), without the group
    /// itself.
    pub fn transitive_members(&self, group: &str) -> Option<Vec<(Kind, String)>> {
        self.groups.get(group)?;
        let mut seen: BTreeSet<(Kind, String)> = BTreeSet::new();
        let mut stack = vec![group.to_string()];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        while let Some(g) = stack.pop() {
            if !visited.insert(g.clone()) {
                continue;
            }
            for m in self.members.get(&g).into_iter().flatten() {
                if m.1 != group && seen.insert(m.clone()) && m.0 == Kind::Group {
                    stack.push(m.1.clone());
                }
            }
        }
        Some(seen.into_iter().collect())
    }

    /// Every group an object is in, through nested groups (cycles included), in id order.
    pub fn transitive_member_of(&self, id: &str) -> Vec<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(o) = stack.pop() {
            for g in self.member_of.get(&o).into_iter().flatten() {
                if g != id && seen.insert(g.clone()) {
                    stack.push(g.clone());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// Make every delta link issued so far invalid; links issued from now on work.
    pub fn expire_delta_links(&mut self) {
        let v = self.bump();
        self.delta_floor = v;
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn unique_check(
        &self,
        kind: Kind,
        except: Option<&str>,
        p: &Map<String, Value>,
    ) -> Result<(), TenantError> {
        let key = match kind {
            Kind::User => "userPrincipalName",
            Kind::Group => return Ok(()),
        };
        let Some(v) = p.get(key).and_then(Value::as_str) else {
            return Ok(());
        };
        let clash = self.users.iter().any(|(id, o)| {
            Some(id.as_str()) != except
                && o.props
                    .get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|x| x.eq_ignore_ascii_case(v))
        });
        if clash {
            return Err(TenantError::Conflict(format!(
                "Another object with the same value for property {key} already exists."
            )));
        }
        Ok(())
    }

    /// Create a user or group from Graph properties; returns the stored object.
    pub fn create(
        &mut self,
        kind: Kind,
        mut props: Map<String, Value>,
        created: &str,
    ) -> Result<Map<String, Value>, TenantError> {
        let required: &[&str] = match kind {
            Kind::User => &["displayName", "userPrincipalName"],
            Kind::Group => &["displayName"],
        };
        for r in required {
            if !props.get(*r).is_some_and(Value::is_string) {
                return Err(TenantError::Invalid(format!(
                    "Invalid value specified for property '{r}' of resource '{}'.",
                    match kind {
                        Kind::User => "User",
                        Kind::Group => "Group",
                    }
                )));
            }
        }
        self.unique_check(kind, None, &props)?;
        let id = uuid::Uuid::new_v4().to_string();
        props.remove("password");
        props.remove("passwordProfile");
        props.insert("id".into(), json!(id));
        props.insert("createdDateTime".into(), json!(created));
        if kind == Kind::User {
            props
                .entry("accountEnabled".to_string())
                .or_insert(json!(true));
        }
        let v = self.bump();
        self.objects_mut(kind).insert(
            id,
            Obj {
                props: props.clone(),
                changed: v,
            },
        );
        Ok(props)
    }

    /// Update properties (null removes a value); `id` and `createdDateTime` are read-only.
    pub fn update(
        &mut self,
        kind: Kind,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<(), TenantError> {
        if !self.objects(kind).contains_key(id) {
            return Err(TenantError::NotFound(format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present.")));
        }
        let mut merged = self
            .objects(kind)
            .get(id)
            .map(|o| o.props.clone())
            .unwrap_or_default();
        for (k, v) in patch {
            if k == "id" || k == "createdDateTime" {
                continue;
            }
            merged.insert(k, v);
        }
        self.unique_check(kind, Some(id), &merged)?;
        let v = self.bump();
        if let Some(o) = self.objects_mut(kind).get_mut(id) {
            o.props = merged;
            o.changed = v;
        }
        Ok(())
    }

    /// Delete a user or group (and every membership naming it).
    pub fn delete(&mut self, kind: Kind, id: &str) -> Result<(), TenantError> {
        if self.objects_mut(kind).remove(id).is_none() {
            return Err(TenantError::NotFound(format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present.")));
        }
        let v = self.bump();
        self.tombstones.push(Tombstone {
            at: v,
            kind,
            id: id.to_string(),
        });
        for g in self.member_of.remove(id).unwrap_or_default() {
            if let Some(m) = self.members.get_mut(&g) {
                m.remove(&(kind, id.to_string()));
            }
            self.member_log.push(MemberEvent {
                at: v,
                group: g,
                member: (kind, id.to_string()),
                added: false,
            });
        }
        if kind == Kind::Group {
            for (_, m) in self.members.remove(id).unwrap_or_default() {
                if let Some(of) = self.member_of.get_mut(&m) {
                    of.remove(id);
                }
            }
        }
        Ok(())
    }

    /// Add a member to a group.
    pub fn add_member(&mut self, group: &str, member: &str) -> Result<(), TenantError> {
        if !self.groups.contains_key(group) {
            return Err(TenantError::NotFound(format!("Resource '{group}' does not exist or one of its queried reference-property objects are not present.")));
        }
        let Some(kind) = self.kind_of(member) else {
            return Err(TenantError::NotFound(format!("Resource '{member}' does not exist or one of its queried reference-property objects are not present.")));
        };
        if member == group {
            return Err(TenantError::Invalid(
                "A group cannot be a member of itself.".into(),
            ));
        }
        if !self.link(group, (kind, member.to_string())) {
            return Err(TenantError::Invalid("One or more added object references already exist for the following modified properties: 'members'.".into()));
        }
        let v = self.bump();
        self.member_log.push(MemberEvent {
            at: v,
            group: group.to_string(),
            member: (kind, member.to_string()),
            added: true,
        });
        Ok(())
    }

    /// Remove a member from a group.
    pub fn remove_member(&mut self, group: &str, member: &str) -> Result<(), TenantError> {
        let Some(kind) = self.kind_of(member) else {
            return Err(TenantError::NotFound(format!("Resource '{member}' does not exist or one of its queried reference-property objects are not present.")));
        };
        let removed = self
            .members
            .get_mut(group)
            .is_some_and(|m| m.remove(&(kind, member.to_string())));
        if !removed {
            return Err(TenantError::NotFound(format!("Resource '{member}' does not exist or one of its queried reference-property objects are not present.")));
        }
        if let Some(of) = self.member_of.get_mut(member) {
            of.remove(group);
        }
        let v = self.bump();
        self.member_log.push(MemberEvent {
            at: v,
            group: group.to_string(),
            member: (kind, member.to_string()),
            added: false,
        });
        Ok(())
    }

    /// One page of a delta round: what changed in `(since, upto]` for one kind, ordered by id,
    /// after `after`, at most `limit` items; and whether more follow. Changed objects come in
    /// their current state, deleted ones as removals, and for groups the member changes (member,
    /// added). With `since == 0` (the initial round) every object comes with all its members.
    pub fn changes_page(
        &self,
        kind: Kind,
        since: u64,
        upto: u64,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<DeltaItem>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        if since == 0 {
            // The initial round walks the objects in id order: a page costs its own size.
            let objects = self.objects(kind);
            let rest = match after {
                Some(a) => objects.range::<str, _>((Excluded(a), Unbounded)),
                None => objects.range::<str, _>(..),
            };
            let mut page = Vec::with_capacity(limit);
            let mut more = false;
            for (id, o) in rest {
                if o.changed > upto {
                    continue;
                }
                if page.len() == limit {
                    more = true;
                    break;
                }
                page.push(DeltaItem::Changed {
                    id: id.clone(),
                    members: (kind == Kind::Group).then(|| {
                        self.members
                            .get(id)
                            .map(|m| m.iter().map(|m| (m.clone(), true)).collect())
                            .unwrap_or_default()
                    }),
                });
            }
            return (page, more);
        }
        let mut out: BTreeMap<String, DeltaItem> = BTreeMap::new();
        for (id, o) in self.objects(kind) {
            if o.changed > since && o.changed <= upto {
                out.insert(
                    id.clone(),
                    DeltaItem::Changed {
                        id: id.clone(),
                        members: None,
                    },
                );
            }
        }
        for t in &self.tombstones {
            if t.kind == kind && t.at > since && t.at <= upto {
                out.insert(t.id.clone(), DeltaItem::Removed { id: t.id.clone() });
            }
        }
        if kind == Kind::Group {
            let mut per: BTreeMap<&str, BTreeMap<(Kind, String), bool>> = BTreeMap::new();
            for e in &self.member_log {
                if e.at > since && e.at <= upto {
                    per.entry(&e.group)
                        .or_default()
                        .insert(e.member.clone(), e.added);
                }
            }
            for (g, changes) in per {
                if !self.groups.contains_key(g) {
                    continue;
                }
                let list: Vec<((Kind, String), bool)> = changes.into_iter().collect();
                match out.get_mut(g) {
                    Some(DeltaItem::Changed { members, .. }) => *members = Some(list),
                    _ => {
                        out.insert(
                            g.to_string(),
                            DeltaItem::MembersOnly {
                                id: g.to_string(),
                                members: list,
                            },
                        );
                    }
                }
            }
        }
        let rest = match after {
            Some(a) => out.range::<str, _>((Excluded(a), Unbounded)),
            None => out.range::<str, _>(..),
        };
        let mut page: Vec<DeltaItem> = rest.take(limit + 1).map(|(_, v)| v.clone()).collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}

/// One entry of a delta round.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaItem {
    /// The object changed (or, in the initial round, exists); for groups, the member changes
    /// when there are any.
    Changed {
        id: String,
        members: Option<Vec<((Kind, String), bool)>>,
    },
    /// Only the group's members changed.
    MembersOnly {
        id: String,
        members: Vec<((Kind, String), bool)>,
    },
    /// Deleted.
    Removed { id: String },
}

impl DeltaItem {
    pub fn id(&self) -> &str {
        match self {
            DeltaItem::Changed { id, .. }
            | DeltaItem::MembersOnly { id, .. }
            | DeltaItem::Removed { id } => id,
        }
    }
}
