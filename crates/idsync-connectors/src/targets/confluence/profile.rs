//! A user's display name and email address (decision 0036), by version:
//!
//! - before 9.0, JSON-RPC `editUser` changes both and `getUser` reads the email;
//! - 9.0 and later have no JSON-RPC. The admin user API's *Update user*
//!   (`PUT /rest/api/admin/user/{username}` with `fullName` and `email`, answered 204) is first
//!   in the 9.4 reference; whether a site has it is found by trying it (once a run): a 405, or
//!   a 404 for a user that exists, means the version has no such call, and every change of a
//!   display name or email is then refused with that reason for the rest of the run, without
//!   asking again. Where the call exists, the display name is read back after it.
//! - The email is read where Confluence shows it: JSON-RPC `getUser` before 9.0; the list of
//!   active users (`GET /rest/api/admin/users/list/active`, 9.3 and later) where its users
//!   carry an `email` (documented from 10.2). A user the last read could not show the email
//!   of (none before 9.3, a deactivated or unlicensed user in that list's absence) has its
//!   email left out of the comparison on both sides, so that a reconcile does not chase what it
//!   cannot read.

use super::access::enc_path;
use super::{users, ConfluenceTarget, Instance};
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::Failure;
use idsync_core::{Outcome, User};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Whether the version has `PUT /rest/api/admin/user/{username}`, as found this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UpdateCall {
    Present,
    /// Missing, and the answer that showed it.
    Absent(String),
}

/// Which users' email addresses the last read showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum EmailView {
    /// Not read this run: what idsync sends is compared with what it sent.
    #[default]
    NotRead,
    /// Every user's (JSON-RPC `getUser`, before 9.0).
    All,
    /// Only these users' (lower-case usernames): those the list of active users showed with an
    /// email.
    Only(HashSet<String>),
}

impl ConfluenceTarget {
    /// Whether `username`'s email is compared: always, but where the last read of a version
    /// without JSON-RPC could not show it.
    pub(super) fn email_shown(&self, username: &str) -> bool {
        if self.instance.get().is_none_or(Instance::has_json_rpc) {
            return true;
        }
        match self.emails.lock() {
            Ok(v) => match &*v {
                EmailView::NotRead | EmailView::All => true,
                EmailView::Only(shown) => shown.contains(&username.to_lowercase()),
            },
            Err(_) => true,
        }
    }

    pub(super) fn set_email_view(&self, view: EmailView) {
        if let Ok(mut v) = self.emails.lock() {
            *v = view;
        }
    }

    fn update_call(&self) -> Option<UpdateCall> {
        self.update_call.lock().ok().and_then(|c| c.clone())
    }

    /// What a run found is forgotten when it ends: the next run asks again.
    pub(super) fn forget_run(&self) {
        if let Ok(mut c) = self.update_call.lock() {
            *c = None;
        }
        self.set_email_view(EmailView::NotRead);
    }

    pub(super) async fn update_user(
        &self,
        key: &str,
        before: &User,
        after: &User,
    ) -> Result<Outcome, Failure> {
        let instance = self.instance().await?.clone();
        let b = users::project(before.clone(), true);
        let a = users::project(after.clone(), true);
        let name = self.username(key).await?;
        if a.user_name != b.user_name && a.user_name != name {
            return Ok(Outcome::Rejected {
                reason: format!(
                    "Confluence cannot rename users (no REST or JSON-RPC call for it): {name:?} stays as it is ({:?} asked)",
                    a.user_name
                ),
            });
        }
        let profile = a.display_name != b.display_name || a.primary_email() != b.primary_email();
        let mut refused = None;
        if profile {
            if instance.has_json_rpc() {
                let remote = json!({
                    "name": name,
                    "fullname": a.display_name.clone().unwrap_or_default(),
                    "email": a.primary_email().unwrap_or_default(),
                });
                self.rpc("editUser", json!([remote])).await?;
            } else {
                refused = self.update_profile(&instance, key, &name, &b, &a).await?;
            }
        }
        if a.active != b.active {
            // A refused display name or email does not keep a user from being disabled (or
            // enabled): that is done all the same, and done again, idempotently, when the
            // refused change is planned again.
            self.set_active(&name, a.active).await?;
        } else if !profile {
            // Nothing else changed: the user must still be there all the same.
            self.get_user(key).await?;
        }
        Ok(match refused {
            Some(Outcome::Rejected { reason }) if a.active != b.active => Outcome::Rejected {
                reason: format!(
                    "{reason} (its {} was applied)",
                    if a.active { "enabling" } else { "disabling" }
                ),
            },
            Some(o) => o,
            None => Outcome::Applied { target_id: None },
        })
    }

    /// 9.0 and later: the admin update where the version has it (tried once a run), read back;
    /// else the refusal, where Confluence really holds something else.
    async fn update_profile(
        &self,
        instance: &Instance,
        key: &str,
        name: &str,
        b: &User,
        a: &User,
    ) -> Result<Option<Outcome>, Failure> {
        let mut known = self.update_call();
        if known.is_none() {
            // One request finds out; the others wait for its answer.
            let _one = self.probing.lock().await;
            known = self.update_call();
            if known.is_none() {
                match self.put_profile(name, a).await {
                    Ok(()) => {
                        tracing::info!(
                            version = %instance.version_text,
                            "Confluence changes display names and emails with PUT /rest/api/admin/user/{{username}}"
                        );
                        self.found(UpdateCall::Present);
                        return self.read_back(key, name, a).await.map(|()| None);
                    }
                    Err(f) => match self.call_missing(&f, name).await? {
                        Some(why) => {
                            tracing::warn!(
                                version = %instance.version_text,
                                answer = %why,
                                "Confluence has no call to change a user's display name or email: such changes are refused for this run"
                            );
                            self.found(UpdateCall::Absent(why.clone()));
                            known = Some(UpdateCall::Absent(why));
                        }
                        None => return Err(f),
                    },
                }
            }
        }
        match known {
            Some(UpdateCall::Absent(why)) => {
                self.refuse_if_held(instance, key, name, b, a, &why).await
            }
            _ => {
                self.put_profile(name, a).await?;
                self.read_back(key, name, a).await.map(|()| None)
            }
        }
    }

    fn found(&self, call: UpdateCall) {
        if let Ok(mut c) = self.update_call.lock() {
            *c = Some(call);
        }
    }

    async fn put_profile(&self, name: &str, a: &User) -> Result<(), Failure> {
        let mut body = json!({"fullName": a.display_name.clone().unwrap_or_default()});
        // Confluence takes no blank email: one the source lacks is left as it is.
        if let Some(e) = a.primary_email().filter(|e| !e.is_empty()) {
            body["email"] = json!(e);
        }
        let path = format!("/rest/api/admin/user/{}", enc_path(name));
        self.client
            .call(Method::PUT, &path, Some(&body))
            .await
            .map(|_| ())
    }

    /// Whether a failed update says the version has no such call (and why): 405, or 404 for a
    /// user Confluence still has. A 404 for a user gone is the user's own.
    async fn call_missing(&self, f: &Failure, name: &str) -> Result<Option<String>, Failure> {
        let why = |s: u16| format!("PUT /rest/api/admin/user/{{username}} answered {s}");
        match f.status {
            Some(405) => Ok(Some(why(405))),
            Some(404) => {
                let path = format!("/rest/api/user?username={}", enc(name));
                match self.client.call(Method::GET, &path, None).await {
                    Ok(_) => Ok(Some(why(404))),
                    Err(g) if g.status == Some(404) => Ok(None),
                    Err(g) => Err(g),
                }
            }
            _ => Ok(None),
        }
    }

    /// The display name is read back (the email cannot be read per user; a reconcile compares
    /// it where the version shows it).
    async fn read_back(&self, key: &str, name: &str, a: &User) -> Result<(), Failure> {
        let back = self.get_user(key).await?;
        let held = back.get("displayName").and_then(Value::as_str);
        if held != a.display_name.as_deref() {
            return Err(Failure {
                status: Some(400),
                reason: format!(
                    "PUT /rest/api/admin/user/{{username}}: Confluence answered but {name}'s display name is {:?}, not {:?}",
                    held.unwrap_or_default(),
                    a.display_name.as_deref().unwrap_or_default()
                ),
                messages: Vec::new(),
                retry_after: None,
            });
        }
        Ok(())
    }

    /// No call can change it: refused where Confluence really holds another display name (an
    /// adopted user's `before` may not be what Confluence holds), or where the email really
    /// changed (one idsync recorded, and another now).
    async fn refuse_if_held(
        &self,
        instance: &Instance,
        key: &str,
        name: &str,
        b: &User,
        a: &User,
        why: &str,
    ) -> Result<Option<Outcome>, Failure> {
        let current = self.get_user(key).await?;
        let display =
            current.get("displayName").and_then(Value::as_str) != a.display_name.as_deref();
        let email = b.primary_email().is_some_and(|e| !e.is_empty())
            && b.primary_email() != a.primary_email();
        if !display && !email {
            return Ok(None);
        }
        Ok(Some(Outcome::Rejected {
            reason: format!(
                "Confluence {} has no call to change a user's display name or email ({why}; the JSON-RPC editUser went in 9.0; the admin update came with 9.4): change {name:?} in Confluence's user management, or use the Crowd-compatible directory",
                instance.version_text
            ),
        }))
    }
}
