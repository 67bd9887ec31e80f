//! The plan: `diff(desired, ledger)` as a list of operations, each with its reason.
//!
//! The plan is a pure function of its inputs. Applying every operation of a plan to the ledger
//! (see [`LedgerState::record`], in `state.rs`) yields a ledger whose plan against the same
//! desired state is empty; that property is tested with proptest.

use crate::model::{Group, Key, User};
use crate::state::{DesiredState, LedgerState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What to do with a user that was deleted in the source or left the flow's scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeprovisionAction {
    /// Set `active: false` in the target (the user keeps its history there).
    #[default]
    Disable,
    /// Delete the user in the target.
    Delete,
    /// Leave the user in the target as it is (its memberships too).
    Nothing,
    /// Disable now; delete once it has been disabled this many days.
    DeleteAfter { days: u32 },
    /// Disable and replace its name and addresses by placeholders (the real values stay in the
    /// ledger, and come back if the user does).
    Anonymize,
}

/// What to do with a group that was deleted in the source. Groups are never deleted in a target
/// implicitly: in Atlassian products a deleted group loses every permission granted to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupDeletion {
    /// Leave the group and its members in the target untouched.
    #[default]
    Keep,
    /// Delete the group in the target.
    Delete,
}

/// What to do when a group is renamed in the source and the target cannot rename groups
/// (Atlassian Cloud).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRename {
    /// Keep the old name in the target, and say so in the plan.
    #[default]
    Keep,
    /// Create a group with the new name and give it the members; the old group stays in the
    /// target, untouched, with its permissions.
    Recreate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    pub deprovision: DeprovisionAction,
    pub group_deletion: GroupDeletion,
    /// Most members added or removed by one operation.
    pub member_batch: usize,
    /// The ledger was read back from the target (full reconcile): reasons speak of drift.
    pub reconcile: bool,
    /// Whether the target can rename a group in place.
    pub can_rename_groups: bool,
    pub group_rename: GroupRename,
    /// Now, in Unix milliseconds (for grace periods).
    pub now_ms: i64,
    /// A new group is created with its first members (at most `member_batch`), after the
    /// users are created, instead of created empty and given its members after: the target
    /// takes members in the create (`Target::members_in_create`).
    pub members_in_create: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            deprovision: DeprovisionAction::Disable,
            group_deletion: GroupDeletion::Keep,
            member_batch: 100,
            reconcile: false,
            can_rename_groups: true,
            group_rename: GroupRename::Keep,
            now_ms: 0,
            members_in_create: false,
        }
    }
}

/// Why an operation is in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Reason {
    NewInSource,
    MissingInTarget,
    ChangedInSource(Vec<String>),
    ChangedInTarget(Vec<String>),
    DisabledInSource,
    EnabledInSource,
    RemovedFromSource,
    MembershipsAdded,
    MembershipsRemoved,
    /// Reconcile: members the source has that the target lost (removed there).
    MembershipsRemovedInTarget,
    /// Reconcile: members the target has that the source does not (added there by hand).
    MembershipsAddedInTarget,
    /// Reconcile: member ids of a group that name no user the target holds.
    MembersGoneFromTarget,
    /// Renamed in the source; the target cannot rename groups, so a new group is made.
    RecreatedForRename(String),
    /// Still in the source, but out of the flow's scope (the verdict in words).
    LeftScope(String),
    /// Disabled longer than the flow's grace period (in days).
    GracePeriodOver(u32),
    /// No login for longer than the flow's `inactive_after` (in words).
    Inactive(String),
    /// Groups made direct members of a group (nested groups, served targets).
    ChildGroupsAdded,
    ChildGroupsRemoved,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NewInSource => write!(f, "new in the source"),
            Reason::MissingInTarget => write!(f, "missing in the target"),
            Reason::ChangedInSource(a) => write!(f, "changed in the source: {}", a.join(", ")),
            Reason::ChangedInTarget(a) => {
                write!(f, "changed by hand in the target: {}", a.join(", "))
            }
            Reason::DisabledInSource => write!(f, "disabled in the source"),
            Reason::EnabledInSource => write!(f, "enabled in the source"),
            Reason::RemovedFromSource => write!(f, "no longer in the source"),
            Reason::MembershipsAdded => write!(f, "members added in the source"),
            Reason::MembershipsRemoved => write!(f, "members removed in the source"),
            Reason::MembershipsRemovedInTarget => write!(f, "members removed in the target"),
            Reason::MembershipsAddedInTarget => {
                write!(f, "members added in the target by hand")
            }
            Reason::MembersGoneFromTarget => {
                write!(f, "members that no longer exist in the target")
            }
            Reason::LeftScope(why) => write!(f, "left the flow's scope ({why})"),
            Reason::Inactive(why) => write!(f, "{why}"),
            Reason::GracePeriodOver(days) => {
                write!(f, "disabled for more than the grace period of {days} days")
            }
            Reason::ChildGroupsAdded => write!(f, "groups nested in the source"),
            Reason::ChildGroupsRemoved => write!(f, "groups no longer nested in the source"),
            Reason::RecreatedForRename(from) => write!(
                f,
                "renamed in the source from {from:?}; the target cannot rename groups, so a new group is made (the old one stays)"
            ),
        }
    }
}

/// One change to make in the target. Keys are source ids; target ids are resolved from the
/// ledger when the operation is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateUser {
        user: User,
    },
    UpdateUser {
        before: User,
        after: User,
        changed: Vec<String>,
    },
    DisableUser {
        before: User,
        after: User,
    },
    DeleteUser {
        before: User,
    },
    CreateGroup {
        group: Group,
        /// The first members, created with the group (see `PlanOptions::members_in_create`);
        /// the rest are added by `AddMembers` after.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<Key>,
    },
    UpdateGroup {
        before: Group,
        after: Group,
        changed: Vec<String>,
    },
    DeleteGroup {
        before: Group,
    },
    /// `group` is the group's display name, for people reading plans and logs.
    AddMembers {
        group: String,
        users: Vec<Key>,
    },
    RemoveMembers {
        group: String,
        users: Vec<Key>,
    },
    /// Nested groups (a target that serves them): `groups` (keys) become direct member
    /// groups of the group `key`; `group` is its display name.
    AddChildGroups {
        group: String,
        groups: Vec<String>,
    },
    RemoveChildGroups {
        group: String,
        groups: Vec<String>,
    },
}

impl Action {
    /// The action's name as recorded in logs and counts.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateUser { .. } => "create_user",
            Action::UpdateUser { .. } => "update_user",
            Action::DisableUser { .. } => "disable_user",
            Action::DeleteUser { .. } => "delete_user",
            Action::CreateGroup { .. } => "create_group",
            Action::UpdateGroup { .. } => "update_group",
            Action::DeleteGroup { .. } => "delete_group",
            Action::AddMembers { .. } => "add_members",
            Action::RemoveMembers { .. } => "remove_members",
            Action::AddChildGroups { .. } => "add_child_groups",
            Action::RemoveChildGroups { .. } => "remove_child_groups",
        }
    }

    /// Apply order: groups and users exist before memberships name them (a group created with
    /// its first members after those users); memberships go before users and groups are
    /// removed.
    pub fn phase(&self) -> u8 {
        match self {
            Action::CreateGroup { members, .. } if !members.is_empty() => 2,
            Action::CreateGroup { .. } | Action::UpdateGroup { .. } => 0,
            Action::CreateUser { .. } | Action::UpdateUser { .. } => 1,
            Action::AddMembers { .. }
            | Action::RemoveMembers { .. }
            | Action::AddChildGroups { .. }
            | Action::RemoveChildGroups { .. } => 3,
            Action::DisableUser { .. } | Action::DeleteUser { .. } => 4,
            Action::DeleteGroup { .. } => 5,
        }
    }

    /// Whether this operation takes a user's access away (counted against deletion thresholds).
    pub fn is_deprovision(&self) -> bool {
        matches!(self, Action::DisableUser { .. } | Action::DeleteUser { .. })
    }

    /// Whether the object is a user (as opposed to a group or its memberships).
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            Action::CreateUser { .. }
                | Action::UpdateUser { .. }
                | Action::DisableUser { .. }
                | Action::DeleteUser { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The source id of the user or group the operation is about.
    pub key: String,
    #[serde(flatten)]
    pub action: Action,
    pub reason: Reason,
}

impl Operation {
    /// A human-readable label of the object: userName or displayName, else the key.
    pub fn object_label(&self) -> String {
        match &self.action {
            Action::CreateUser { user } => user.user_name.clone(),
            Action::UpdateUser { after, .. } | Action::DisableUser { after, .. } => {
                after.user_name.clone()
            }
            Action::DeleteUser { before } => before.user_name.clone(),
            Action::CreateGroup { group, .. } => group.display_name.clone(),
            Action::UpdateGroup { after, .. } => after.display_name.clone(),
            Action::DeleteGroup { before } => before.display_name.clone(),
            Action::AddMembers { group, .. }
            | Action::RemoveMembers { group, .. }
            | Action::AddChildGroups { group, .. }
            | Action::RemoveChildGroups { group, .. } => group.clone(),
        }
    }

    /// The operation in words, as `idsync plan` prints it.
    pub fn describe(&self) -> String {
        let what = match &self.action {
            Action::CreateUser { user } => format!("create user {}", user.user_name),
            Action::UpdateUser { after, changed, .. } => {
                format!("update user {} ({})", after.user_name, changed.join(", "))
            }
            Action::DisableUser { after, .. } => format!("disable user {}", after.user_name),
            Action::DeleteUser { before } => format!("delete user {}", before.user_name),
            Action::CreateGroup { group, members } if !members.is_empty() => format!(
                "create group {} with {} member(s)",
                group.display_name,
                members.len()
            ),
            Action::CreateGroup { group, .. } => format!("create group {}", group.display_name),
            Action::UpdateGroup { after, changed, .. } => {
                format!(
                    "update group {} ({})",
                    after.display_name,
                    changed.join(", ")
                )
            }
            Action::DeleteGroup { before } => format!("delete group {}", before.display_name),
            Action::AddMembers { group, users } => {
                format!("add {} member(s) to group {group}", users.len())
            }
            Action::RemoveMembers { group, users } => {
                format!("remove {} member(s) from group {group}", users.len())
            }
            Action::AddChildGroups { group, groups } => {
                format!("nest {} group(s) in group {group}", groups.len())
            }
            Action::RemoveChildGroups { group, groups } => {
                format!("take {} nested group(s) out of group {group}", groups.len())
            }
        };
        format!("{what}: {}", self.reason)
    }
}

/// An ordered list of operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub operations: Vec<Operation>,
    /// What the plan could not do as the source says, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How the target carries out what the plan asks where targets differ (how it disables
    /// a user), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
    pub fn len(&self) -> usize {
        self.operations.len()
    }
    /// Number of operations per action name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for op in &self.operations {
            *out.entry(op.action.name()).or_insert(0) += 1;
        }
        out
    }
    /// Number of deprovisioning operations (disables and deletes of users).
    pub fn deprovisions(&self) -> usize {
        self.operations
            .iter()
            .filter(|o| o.action.is_deprovision())
            .count()
    }

    /// Take out the deprovisioning of every user not in `allowed`, with the removal of those
    /// users from groups (a held user keeps its access until the hold is answered). Returns
    /// what was taken out, in plan order.
    pub fn hold_deprovisions(&mut self, allowed: &BTreeSet<String>) -> Vec<Operation> {
        let held_users: BTreeSet<String> = self
            .operations
            .iter()
            .filter(|o| o.action.is_deprovision() && !allowed.contains(&o.key))
            .map(|o| o.key.clone())
            .collect();
        if held_users.is_empty() {
            return Vec::new();
        }
        let mut held = Vec::new();
        let mut kept = Vec::with_capacity(self.operations.len());
        for mut op in std::mem::take(&mut self.operations) {
            if op.action.is_deprovision() && held_users.contains(&op.key) {
                held.push(op);
                continue;
            }
            if let Action::RemoveMembers { group, users } = &mut op.action {
                let (hold, keep): (Vec<Key>, Vec<Key>) = std::mem::take(users)
                    .into_iter()
                    .partition(|u| held_users.contains(&**u));
                if !hold.is_empty() {
                    held.push(Operation {
                        key: op.key.clone(),
                        action: Action::RemoveMembers {
                            group: group.clone(),
                            users: hold,
                        },
                        reason: op.reason.clone(),
                    });
                }
                if keep.is_empty() {
                    continue;
                }
                *users = keep;
            }
            kept.push(op);
        }
        self.operations = kept;
        held
    }
}

/// The accidental-deletion threshold of a flow: the most users one run may deprovision on its
/// own, as a count and as a share of the users the flow has provisioned. Above it, a run holds
/// its deprovisions until an admin approves or rejects them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeletionThreshold {
    pub count: Option<usize>,
    pub percent: Option<f64>,
}

impl Default for DeletionThreshold {
    /// 500 deprovisions per run, as Microsoft Entra's provisioning service suggests.
    fn default() -> Self {
        DeletionThreshold {
            count: Some(500),
            percent: None,
        }
    }
}

impl DeletionThreshold {
    /// Whether `deprovisions` out of `provisioned` users is above the threshold.
    pub fn exceeded(&self, deprovisions: usize, provisioned: usize) -> bool {
        let by_count = self.count.is_some_and(|c| deprovisions > c);
        let by_share = self.percent.is_some_and(|p| {
            provisioned > 0 && deprovisions as f64 * 100.0 > p * provisioned as f64
        });
        by_count || by_share
    }
}

/// Compute the plan that brings the target from `ledger` to `desired`.
pub fn plan(desired: &DesiredState, ledger: &LedgerState, opts: &PlanOptions) -> Plan {
    let mut ops = Vec::new();
    let batch = opts.member_batch.max(1);

    let mut warnings = Vec::new();
    let mut recreated: BTreeSet<&String> = BTreeSet::new();
    for (key, group) in &desired.groups {
        match ledger.groups.get(key) {
            None => ops.push(Operation {
                key: key.clone(),
                action: Action::CreateGroup {
                    group: group.clone(),
                    members: Vec::new(),
                },
                reason: new_reason(opts),
            }),
            Some(have)
                if !opts.can_rename_groups && have.group.display_name != group.display_name =>
            {
                match opts.group_rename {
                    GroupRename::Recreate => {
                        recreated.insert(key);
                        ops.push(Operation {
                            key: key.clone(),
                            action: Action::CreateGroup {
                                group: group.clone(),
                                members: Vec::new(),
                            },
                            reason: Reason::RecreatedForRename(have.group.display_name.clone()),
                        });
                    }
                    GroupRename::Keep => {
                        warnings.push(format!(
                            "group {:?} was renamed {:?} in the source; the target cannot rename groups, so it keeps its name (group_rename = \"recreate\" makes a new group with the members; the old one keeps its permissions)",
                            have.group.display_name, group.display_name
                        ));
                        let mut kept = group.clone();
                        kept.display_name = have.group.display_name.clone();
                        let changed = have.group.changed_attributes(&kept);
                        if !changed.is_empty() {
                            let changed: Vec<String> =
                                changed.into_iter().map(String::from).collect();
                            ops.push(Operation {
                                key: key.clone(),
                                action: Action::UpdateGroup {
                                    before: have.group.clone(),
                                    after: kept,
                                    changed: changed.clone(),
                                },
                                reason: changed_reason(opts, changed),
                            });
                        }
                    }
                }
            }
            Some(have) => {
                let changed = have.group.changed_attributes(group);
                if !changed.is_empty() {
                    let changed: Vec<String> = changed.into_iter().map(String::from).collect();
                    ops.push(Operation {
                        key: key.clone(),
                        action: Action::UpdateGroup {
                            before: have.group.clone(),
                            after: group.clone(),
                            changed: changed.clone(),
                        },
                        reason: changed_reason(opts, changed),
                    });
                }
            }
        }
    }

    for (key, user) in &desired.users {
        match ledger.users.get(key) {
            None => ops.push(Operation {
                key: key.clone(),
                action: Action::CreateUser { user: user.clone() },
                reason: new_reason(opts),
            }),
            Some(have) => {
                let changed = have.user.changed_attributes(user);
                if changed.is_empty() {
                    continue;
                }
                let only_active = changed == ["active"];
                let (action, reason) = if only_active && !user.active {
                    (
                        Action::DisableUser {
                            before: have.user.clone(),
                            after: user.clone(),
                        },
                        if opts.reconcile {
                            Reason::ChangedInTarget(vec!["active".into()])
                        } else {
                            Reason::DisabledInSource
                        },
                    )
                } else {
                    let changed: Vec<String> = changed.into_iter().map(String::from).collect();
                    let reason = if only_active && !opts.reconcile {
                        Reason::EnabledInSource
                    } else {
                        changed_reason(opts, changed.clone())
                    };
                    (
                        Action::UpdateUser {
                            before: have.user.clone(),
                            after: user.clone(),
                            changed,
                        },
                        reason,
                    )
                };
                ops.push(Operation {
                    key: key.clone(),
                    action,
                    reason,
                });
            }
        }
    }

    let empty = BTreeSet::new();
    // Where the groups created by this plan are in it (their first members go with them).
    let creates: BTreeMap<String, usize> = if opts.members_in_create {
        ops.iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.action, Action::CreateGroup { .. }))
            .map(|(i, o)| (o.key.clone(), i))
            .collect()
    } else {
        BTreeMap::new()
    };
    for (key, group) in &desired.groups {
        let want = desired.members.get(key).unwrap_or(&empty);
        // A group made anew has no members yet.
        let have = if recreated.contains(key) {
            &empty
        } else {
            ledger.members.get(key).unwrap_or(&empty)
        };
        let mut add: Vec<Key> = want.difference(have).cloned().collect();
        let remove: Vec<Key> = have.difference(want).cloned().collect();
        // The first members go with the group's create, where the target takes them there.
        if let Some(Action::CreateGroup { members, .. }) = creates
            .get(key.as_str())
            .and_then(|i| ops.get_mut(*i))
            .map(|o| &mut o.action)
        {
            let rest = add.split_off(add.len().min(batch));
            *members = std::mem::replace(&mut add, rest);
        }
        for chunk in add.chunks(batch) {
            ops.push(Operation {
                key: key.clone(),
                action: Action::AddMembers {
                    group: group.display_name.clone(),
                    users: chunk.to_vec(),
                },
                reason: if opts.reconcile {
                    Reason::MembershipsRemovedInTarget
                } else {
                    Reason::MembershipsAdded
                },
            });
        }
        for chunk in remove.chunks(batch) {
            ops.push(Operation {
                key: key.clone(),
                action: Action::RemoveMembers {
                    group: group.display_name.clone(),
                    users: chunk.to_vec(),
                },
                reason: if opts.reconcile {
                    Reason::MembershipsAddedInTarget
                } else {
                    Reason::MembershipsRemoved
                },
            });
        }
    }

    for (key, have) in &ledger.users {
        if desired.users.contains_key(key) {
            continue;
        }
        let disable = || {
            let mut after = have.user.clone();
            after.active = false;
            Action::DisableUser {
                before: have.user.clone(),
                after,
            }
        };
        let (action, reason) = match opts.deprovision {
            DeprovisionAction::Nothing => continue,
            DeprovisionAction::Delete => (
                Action::DeleteUser {
                    before: have.user.clone(),
                },
                Reason::RemovedFromSource,
            ),
            DeprovisionAction::Disable => {
                if !have.user.active {
                    continue;
                }
                (disable(), Reason::RemovedFromSource)
            }
            DeprovisionAction::DeleteAfter { days } => {
                if have.user.active {
                    (disable(), Reason::RemovedFromSource)
                } else if have
                    .disabled_ms
                    .is_some_and(|t| opts.now_ms - t >= i64::from(days) * 86_400_000)
                {
                    (
                        Action::DeleteUser {
                            before: have.user.clone(),
                        },
                        Reason::GracePeriodOver(days),
                    )
                } else {
                    continue;
                }
            }
            DeprovisionAction::Anonymize => {
                if have.original.is_some() && !have.user.active {
                    continue;
                }
                (
                    Action::DisableUser {
                        before: have.user.clone(),
                        after: anonymized(key, &have.user),
                    },
                    Reason::RemovedFromSource,
                )
            }
        };
        ops.push(Operation {
            key: key.clone(),
            action,
            reason,
        });
    }

    if opts.group_deletion == GroupDeletion::Delete {
        for (key, have) in &ledger.groups {
            if !desired.groups.contains_key(key) {
                ops.push(Operation {
                    key: key.clone(),
                    action: Action::DeleteGroup {
                        before: have.group.clone(),
                    },
                    reason: Reason::RemovedFromSource,
                });
            }
        }
    }

    crate::nesting::plan_child_groups(desired, ledger, &recreated, batch, &mut ops);

    ops.sort_by_key(|o| o.action.phase());
    Plan {
        operations: ops,
        warnings,
        notes: Vec::new(),
    }
}

/// A disabled copy of a user with placeholders for what identifies a person: name, addresses,
/// phone numbers, job. The domain stays (a target may take only its verified domains); the
/// placeholder is derived from the key, so it is stable and unique per user.
pub fn anonymized(key: &str, u: &User) -> User {
    // FNV-1a: a short, stable tag; not a secret.
    let tag = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let domain = u
        .primary_email()
        .unwrap_or(&u.user_name)
        .rsplit_once('@')
        .map(|(_, d)| d.to_string());
    let local = format!("deprovisioned-{tag:016x}");
    let address = match &domain {
        Some(d) => format!("{local}@{d}"),
        None => local.clone(),
    };
    let mut a = User::new(u.source_id.clone(), address.clone());
    a.id.clone_from(&u.id);
    a.external_id.clone_from(&u.external_id);
    a.display_name = Some("Former user".into());
    a.name.given_name = Some("Former".into());
    a.name.family_name = Some("User".into());
    if !u.emails.is_empty() {
        a.emails = vec![crate::model::Email {
            value: address,
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
    }
    a.active = false;
    a
}

fn new_reason(opts: &PlanOptions) -> Reason {
    if opts.reconcile {
        Reason::MissingInTarget
    } else {
        Reason::NewInSource
    }
}

fn changed_reason(opts: &PlanOptions, changed: Vec<String>) -> Reason {
    if opts.reconcile {
        Reason::ChangedInTarget(changed)
    } else {
        Reason::ChangedInSource(changed)
    }
}
