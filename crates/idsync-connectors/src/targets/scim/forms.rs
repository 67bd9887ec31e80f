//! Which request form the service takes for each kind of change (decision 0026).
//!
//! A service may say `patch.supported: true` and answer PATCH 501 or 405, or take member
//! removals only as a value list, not with a `members[value eq "id"]` path filter. Each change
//! is sent in the form known to work for its kind (the discovery's default, or what an earlier
//! run learned); when the service refuses the form itself, the change is sent again in the next
//! form (PATCH with path filter, PATCH with a value list, PUT of the whole resource), and that
//! form is used from then on and handed to the engine to remember.

use super::{quote, Answer, Member, MembersAdd, ScimTarget};
use idsync_core::{Form, Group, LearnedForm, OpKind, Outcome, TargetOp, User};
use idsync_scim::resource::{user_body, user_patch_ops};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// The forms in use, by kind of change, and those learned and not yet handed over.
#[derive(Debug, Default)]
pub(super) struct Forms {
    table: Mutex<HashMap<OpKind, Form>>,
    learned: Mutex<Vec<LearnedForm>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The form a kind of change starts with when nothing was learned.
fn default_form(kind: OpKind, patch: bool) -> Form {
    match (patch, kind) {
        (false, _) => Form::Put,
        // Members are added with a value list: there is no filter form of an addition.
        (true, OpKind::AddMembers) => Form::PatchValue,
        (true, _) => Form::PatchPath,
    }
}

impl Forms {
    /// The form to send a change of this kind in. Where the service says it has no PATCH at
    /// all, PUT whatever was learned.
    pub(super) fn current(&self, kind: OpKind, patch: bool) -> Form {
        if !patch {
            return Form::Put;
        }
        lock(&self.table)
            .get(&kind)
            .copied()
            .unwrap_or_else(|| default_form(kind, patch))
    }

    /// The form remembered or learned for this kind, if any.
    pub(super) fn remembered(&self, kind: OpKind) -> Option<Form> {
        lock(&self.table).get(&kind).copied()
    }

    /// Start with these forms (remembered by the engine).
    pub(super) fn use_forms(&self, forms: &[LearnedForm]) {
        let mut t = lock(&self.table);
        for f in forms {
            t.insert(f.kind, f.form);
        }
    }

    /// `form` works where the one before did not. Said once, however many changes in flight
    /// met the same refusal.
    pub(super) fn learn(&self, kind: OpKind, form: Form, reason: &str) {
        let mut t = lock(&self.table);
        let before = t.get(&kind).copied();
        if before.is_some_and(|b| b >= form) {
            return;
        }
        t.insert(kind, form);
        drop(t);
        lock(&self.learned).push(LearnedForm {
            kind,
            form,
            reason: reason.to_string(),
        });
    }

    pub(super) fn take_learned(&self) -> Vec<LearnedForm> {
        std::mem::take(&mut *lock(&self.learned))
    }
}

/// The HTTP status and `scimType` of a refused PATCH, read from the outcome's reason
/// ("PATCH /Groups/1: HTTP 400 (invalidPath): ...").
fn refused_patch(o: &Outcome) -> Option<(u16, Option<&str>)> {
    let Outcome::Rejected { reason } = o else {
        return None;
    };
    if !reason.starts_with("PATCH ") {
        return None;
    }
    let (_, rest) = reason.split_once(": HTTP ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let status = digits.parse::<u16>().ok()?;
    let scim_type = rest[digits.len()..]
        .strip_prefix(" (")
        .and_then(|r| r.split_once(')'))
        .map(|(t, _)| t);
    Some((status, scim_type))
}

/// The form to send a change in after the service refused `form` with `o`, when the refusal is
/// about the form and not the change: PATCH not implemented or not allowed (501, 405) → PUT;
/// a member removal's path filter refused (400 invalidPath / invalidFilter / noTarget, or 501:
/// django-scim2 implements removal by value list only) → a value list, then PUT if that is
/// refused too (a PUT is tried last: django-scim2 answers it 200 and ignores its members).
pub(super) fn fallback(kind: OpKind, form: Form, o: &Outcome) -> Option<Form> {
    if form == Form::Put {
        return None;
    }
    let (status, scim_type) = refused_patch(o)?;
    match status {
        501 if kind == OpKind::RemoveMembers && form == Form::PatchPath => Some(Form::PatchValue),
        501 | 405 => Some(Form::Put),
        400 if kind == OpKind::RemoveMembers
            && form == Form::PatchPath
            && matches!(
                scim_type,
                Some("invalidPath" | "invalidFilter" | "noTarget")
            ) =>
        {
            Some(Form::PatchValue)
        }
        _ => None,
    }
}

impl ScimTarget {
    /// Send a change in the form known to work for its kind, learning the next form when the
    /// service refuses the form itself.
    pub(super) async fn send_in_form(&self, kind: OpKind, op: &TargetOp) -> Outcome {
        let patch = match self.supports_patch().await {
            Ok(p) => p,
            Err(o) => return o,
        };
        let mut form = self.forms.current(kind, patch);
        loop {
            let o = self.send_form(form, op).await;
            let Some(next) = fallback(kind, form, &o) else {
                return o;
            };
            let reason = match &o {
                Outcome::Rejected { reason } => reason.as_str(),
                _ => "",
            };
            tracing::debug!(operation = %kind, refused = %form, next = %next, reason, "request form refused");
            self.forms.learn(kind, next, reason);
            form = next;
        }
    }

    async fn send_form(&self, form: Form, op: &TargetOp) -> Outcome {
        match op {
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => self.update_user(form, target_id, before, after).await,
            TargetOp::UpdateGroup {
                target_id,
                before,
                after,
            } => self.update_group(form, target_id, before, after).await,
            TargetOp::AddMembers { group_id, user_ids } => {
                self.members(form, true, group_id, user_ids).await
            }
            TargetOp::RemoveMembers { group_id, user_ids } => {
                self.members(form, false, group_id, user_ids).await
            }
            _ => Outcome::Rejected {
                reason: "not a change with a request form".into(),
            },
        }
    }

    async fn update_user(&self, form: Form, id: &str, before: &User, after: &User) -> Outcome {
        let path = format!("/Users/{id}");
        match form {
            Form::PatchPath | Form::PatchValue | Form::Post | Form::PostWithMembers => {
                self.patch(&path, &user_patch_ops(before, after)).await
            }
            Form::Put => match self
                .send(Method::PUT, &path, Some(user_body(after).to_string()))
                .await
            {
                Answer::Ok(..) => Outcome::Applied { target_id: None },
                Answer::Failed(o) => o,
            },
        }
    }

    async fn update_group(&self, form: Form, id: &str, before: &Group, after: &Group) -> Outcome {
        if form == Form::Put {
            let (name, ext) = (after.display_name.clone(), after.external_id.clone());
            return self
                .put_group(id, |o| {
                    o.insert("displayName".into(), Value::String(name));
                    match ext {
                        Some(e) => o.insert("externalId".into(), Value::String(e)),
                        None => o.remove("externalId"),
                    };
                })
                .await;
        }
        let mut ops =
            vec![json!({"op": "replace", "path": "displayName", "value": after.display_name})];
        if before.external_id != after.external_id {
            ops.push(match &after.external_id {
                Some(e) => json!({"op": "replace", "path": "externalId", "value": e}),
                None => json!({"op": "remove", "path": "externalId"}),
            });
        }
        self.patch(&format!("/Groups/{id}"), &ops).await
    }

    async fn members(&self, form: Form, add: bool, group_id: &str, user_ids: &[String]) -> Outcome {
        let path = format!("/Groups/{group_id}");
        if form == Form::Put {
            return self
                .put_group(group_id, |o| {
                    let mut members: Vec<Value> = o
                        .get("members")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let has =
                        |m: &Value, id: &str| m.get("value").and_then(Value::as_str) == Some(id);
                    if add {
                        for id in user_ids {
                            if !members.iter().any(|m| has(m, id)) {
                                members.push(json!({"value": id}));
                            }
                        }
                    } else {
                        members.retain(|m| !user_ids.iter().any(|id| has(m, id)));
                    }
                    o.insert("members".into(), Value::Array(members));
                })
                .await;
        }
        for chunk in user_ids.chunks(self.cfg.member_batch.max(1)) {
            let o = match (add, form) {
                (true, _) | (false, Form::PatchValue) => {
                    let ops = MembersAdd {
                        op: if add { "add" } else { "remove" },
                        path: "members",
                        value: chunk.iter().map(|id| Member { value: id }).collect(),
                    };
                    self.patch(&path, &[ops]).await
                }
                (false, _) => {
                    let ops: Vec<Value> = chunk
                        .iter()
                        .map(|id| {
                            json!({"op": "remove", "path": format!("members[value eq {}]", quote(id))})
                        })
                        .collect();
                    self.patch(&path, &ops).await
                }
            };
            if !matches!(o, Outcome::Applied { .. }) {
                return o;
            }
        }
        Outcome::Applied { target_id: None }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn rejected(reason: &str) -> Outcome {
        Outcome::Rejected {
            reason: reason.into(),
        }
    }

    #[test]
    fn refusals_of_the_form_lead_to_the_next_form_and_others_do_not() {
        let k = OpKind::RemoveMembers;
        let not_impl = rejected("PATCH /Groups/1: HTTP 501: PATCH is not implemented");
        // A removal by path filter not implemented: the value list first, then PUT.
        assert_eq!(
            fallback(k, Form::PatchPath, &not_impl),
            Some(Form::PatchValue)
        );
        assert_eq!(fallback(k, Form::PatchValue, &not_impl), Some(Form::Put));
        assert_eq!(
            fallback(OpKind::UpdateGroup, Form::PatchPath, &not_impl),
            Some(Form::Put)
        );
        assert_eq!(
            fallback(k, Form::PatchValue, &rejected("PATCH /Groups/1: HTTP 405")),
            Some(Form::Put)
        );
        let bad_path = rejected("PATCH /Groups/1: HTTP 400 (invalidPath): filters unsupported");
        assert_eq!(
            fallback(k, Form::PatchPath, &bad_path),
            Some(Form::PatchValue)
        );
        assert_eq!(
            fallback(OpKind::UpdateUser, Form::PatchPath, &bad_path),
            None
        );
        // The change itself refused: no other form helps.
        let dup = rejected("PATCH /Users/1: HTTP 409 (uniqueness): taken");
        assert_eq!(fallback(OpKind::UpdateUser, Form::PatchPath, &dup), None);
        // A PUT refused, or a GET 405, says nothing of PATCH.
        assert_eq!(fallback(k, Form::Put, &not_impl), None);
        assert_eq!(
            fallback(k, Form::PatchPath, &rejected("GET /Groups/1: HTTP 405")),
            None
        );
        assert_eq!(
            fallback(
                k,
                Form::PatchPath,
                &Outcome::Retryable {
                    reason: "PATCH /Groups/1: HTTP 503".into(),
                    retry_after: None
                }
            ),
            None
        );
    }

    #[test]
    fn a_form_is_learned_once_and_never_goes_back() {
        let f = Forms::default();
        assert_eq!(f.current(OpKind::RemoveMembers, true), Form::PatchPath);
        assert_eq!(f.current(OpKind::AddMembers, true), Form::PatchValue);
        assert_eq!(f.current(OpKind::UpdateUser, false), Form::Put);
        f.learn(OpKind::RemoveMembers, Form::PatchValue, "a");
        f.learn(OpKind::RemoveMembers, Form::Put, "b");
        f.learn(OpKind::RemoveMembers, Form::Put, "c");
        f.learn(OpKind::RemoveMembers, Form::PatchValue, "d");
        assert_eq!(f.current(OpKind::RemoveMembers, true), Form::Put);
        let learned: Vec<_> = f
            .take_learned()
            .into_iter()
            .map(|l| (l.form, l.reason))
            .collect();
        assert_eq!(
            learned,
            vec![(Form::PatchValue, "a".into()), (Form::Put, "b".into())]
        );
        assert!(f.take_learned().is_empty());
        f.use_forms(&[LearnedForm {
            kind: OpKind::UpdateUser,
            form: Form::Put,
            reason: String::new(),
        }]);
        assert_eq!(f.current(OpKind::UpdateUser, true), Form::Put);
    }
}
