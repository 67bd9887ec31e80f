//! How the test target departs from a compliant application, as SCIM services in the wild do
//! (issue 16): attributes it does not keep or computes itself, no PATCH, attributes it
//! refuses, members it requires when a group is created. Where the SCIM target learns from
//! such a service (a request form, an attribute to leave out), the test target plays both
//! sides: it refuses once, learns, and hands what it learned to the engine to remember.

use super::{lock, TestTarget};
use crate::targets::scim::Shape;
use idsync_core::{Form, LearnedForm, LearnedOmission, OpKind, Outcome, TargetOp, User};
use std::borrow::Cow;
use std::sync::atomic::Ordering;

#[derive(Debug, Default)]
pub(super) struct Quirks {
    /// Attributes of users it does not keep (`title`, `department`, `emails.type`,
    /// `externalId`).
    drop: Vec<String>,
    /// Attributes it computes itself (`name.formatted`).
    compute: Vec<String>,
    /// User attributes it refuses (`emails.primary`, `title`): a create or update carrying one
    /// is refused with a 400 naming it.
    refuse: Vec<String>,
    /// Refused attributes no longer sent (learned in this run, or remembered).
    omitted: Vec<String>,
    /// Omissions learned in this run and not yet handed over.
    learned: Vec<LearnedOmission>,
    /// It takes a group's first members in the create (`members_in_create = true`).
    members_in_create: bool,
    /// A group create without members is refused.
    requires_members: bool,
}

/// The refusal of an attribute, as such a service words it.
fn refused(path: &str) -> String {
    format!("POST /Users: HTTP 400 (invalidValue): Attribute {path} is not supported")
}

/// The refusal of a group create without members.
const MEMBERS_REQUIRED: &str =
    "POST /Groups: HTTP 400 (invalidValue): members is required: a group is created with at least one member";

fn without(user: &User, paths: &[String]) -> User {
    Shape {
        omit: paths.to_vec(),
        required_name_formatted: false,
    }
    .without_omitted(user.clone())
}

impl TestTarget {
    /// Users are kept without these attributes (`title`, `department`, `emails.type`,
    /// `externalId`), and with these computed (`name.formatted`: given and family name).
    pub fn keep_only(&self, drop: &[String], compute: &[String]) {
        let mut q = lock(&self.quirks);
        q.drop = drop.to_vec();
        q.compute = compute.to_vec();
    }

    /// The application refuses these user attributes (`emails.primary`, `title`, ...) with a
    /// 400 naming the attribute. Like the SCIM target, the test target then leaves one that
    /// may be learned away (`idsync_core::LEARNABLE_OMISSIONS`) out of that request and every
    /// later one, and hands it to the engine to remember (`Target::take_learned_omissions`);
    /// a refusal of any other attribute fails the operation.
    pub fn refuse_attributes(&self, paths: &[String]) {
        lock(&self.quirks).refuse = paths.to_vec();
    }

    /// A group is created with its first members (`Target::members_in_create`).
    pub fn take_members_in_create(&self, on: bool) {
        lock(&self.quirks).members_in_create = on;
    }

    /// A group create without members is refused with a 400 naming members. Where members do
    /// not go in the create yet, the refusal is learned as the `post-with-members` form of
    /// `create-group` (handed to the engine, `Target::take_learned_forms`): from the next run
    /// groups are created with their first members.
    pub fn require_members_on_create(&self, on: bool) {
        lock(&self.quirks).requires_members = on;
    }

    /// The application takes no PATCH, as a SCIM service answering it 501: an update or member
    /// change sent as PATCH is refused (counted in [`TestTarget::patch_refusals`]) and sent
    /// again as PUT, which is learned for its kind of change and handed to the engine to
    /// remember (`Target::take_learned_forms`); a change of a kind given PUT by
    /// `Target::use_forms` goes out as PUT at once.
    pub fn without_patch(&self, on: bool) {
        self.no_patch.store(on, Ordering::SeqCst);
    }

    /// How many changes were sent as PATCH and refused.
    pub fn patch_refusals(&self) -> u64 {
        self.patch_refusals.load(Ordering::SeqCst)
    }

    /// Whether groups are created with their first members (set, or learned).
    pub(super) fn members_go_in_create(&self) -> bool {
        lock(&self.quirks).members_in_create
            || lock(&self.forms).0.get(&OpKind::CreateGroup) == Some(&Form::PostWithMembers)
    }

    /// Send `op` in the form its kind is known to take: without PATCH, a first change of a kind
    /// is refused as PATCH and PUT is learned.
    pub(super) fn negotiate_form(&self, op: &TargetOp) {
        if !self.no_patch.load(Ordering::SeqCst) {
            return;
        }
        let kind = match op {
            TargetOp::UpdateUser { .. } => OpKind::UpdateUser,
            TargetOp::UpdateGroup { .. } => OpKind::UpdateGroup,
            TargetOp::AddMembers { .. } => OpKind::AddMembers,
            TargetOp::RemoveMembers { .. } => OpKind::RemoveMembers,
            _ => return,
        };
        let mut f = lock(&self.forms);
        if f.0.get(&kind) == Some(&Form::Put) {
            return;
        }
        self.patch_refusals.fetch_add(1, Ordering::SeqCst);
        f.0.insert(kind, Form::Put);
        f.1.push(LearnedForm {
            kind,
            form: Form::Put,
            reason: "PATCH: HTTP 501: this application takes no PATCH".into(),
        });
    }

    /// What the application refuses of `op`: a user change is sent on without the refused
    /// attributes it learned to leave out (refused once, here, if it is the first); a group
    /// create without members, where members are required, is refused.
    pub(super) fn screen<'o>(&self, op: &'o TargetOp) -> Result<Cow<'o, TargetOp>, Outcome> {
        match op {
            TargetOp::CreateGroup { members, .. } if members.is_empty() => {
                if !lock(&self.quirks).requires_members {
                    return Ok(Cow::Borrowed(op));
                }
                if !self.members_go_in_create() {
                    let mut f = lock(&self.forms);
                    if f.0.get(&OpKind::CreateGroup) != Some(&Form::PostWithMembers) {
                        f.0.insert(OpKind::CreateGroup, Form::PostWithMembers);
                        f.1.push(LearnedForm {
                            kind: OpKind::CreateGroup,
                            form: Form::PostWithMembers,
                            reason: MEMBERS_REQUIRED.into(),
                        });
                    }
                }
                Err(Outcome::Rejected {
                    reason: MEMBERS_REQUIRED.into(),
                })
            }
            TargetOp::CreateUser { user } => {
                let user = self.screen_user(user)?;
                Ok(Cow::Owned(TargetOp::CreateUser { user }))
            }
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => {
                let after = self.screen_user(after)?;
                Ok(Cow::Owned(TargetOp::UpdateUser {
                    target_id: target_id.clone(),
                    before: before.clone(),
                    after,
                }))
            }
            _ => Ok(Cow::Borrowed(op)),
        }
    }

    /// A user as sent: without what was learned to be left out; a refused attribute it still
    /// carries is learned (once) and left out, or refuses the change when it may not be.
    fn screen_user(&self, user: &User) -> Result<User, Outcome> {
        let mut q = lock(&self.quirks);
        let mut user = without(user, &q.omitted);
        for path in q.refuse.clone() {
            let carried = without(&user, std::slice::from_ref(&path)) != user;
            if !carried {
                continue;
            }
            if !idsync_core::LEARNABLE_OMISSIONS.contains(&path.as_str()) {
                return Err(Outcome::Rejected {
                    reason: refused(&path),
                });
            }
            user = without(&user, std::slice::from_ref(&path));
            q.omitted.push(path.clone());
            q.learned.push(LearnedOmission {
                reason: refused(&path),
                path,
            });
        }
        Ok(user)
    }

    /// Leave these out too (remembered from earlier runs).
    pub(super) fn omit_learned(&self, paths: &[String]) {
        let mut q = lock(&self.quirks);
        for p in paths {
            if idsync_core::LEARNABLE_OMISSIONS.contains(&p.as_str()) && !q.omitted.contains(p) {
                q.omitted.push(p.clone());
            }
        }
    }

    pub(super) fn take_omissions(&self) -> Vec<LearnedOmission> {
        std::mem::take(&mut lock(&self.quirks).learned)
    }

    /// A user without what this application is never sent.
    pub(super) fn without_omitted(&self, user: User) -> User {
        let q = lock(&self.quirks);
        if q.omitted.is_empty() {
            return user;
        }
        without(&user, &q.omitted)
    }

    /// A user as this application keeps it.
    pub(super) fn as_held(&self, mut user: User) -> User {
        let q = lock(&self.quirks);
        for a in &q.drop {
            match a.as_str() {
                "title" => user.title = None,
                "department" => user.department = None,
                "emails.type" => user.emails.iter_mut().for_each(|e| e.kind = None),
                "externalId" => user.external_id = None,
                _ => {}
            }
        }
        if q.compute.iter().any(|a| a == "name.formatted") {
            let parts: Vec<&str> = [&user.name.given_name, &user.name.family_name]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .collect();
            user.name.formatted = (!parts.is_empty()).then(|| parts.join(" "));
        }
        user
    }
}
