//! Disabling where Confluence has no call for it (before 8.4, or `deactivation = "groups"`):
//! the user leaves the groups that grant "Can use" (`access_groups`, `confluence-users` by
//! default). Confluence has no user properties to record them in, so each removed group is
//! recorded first as a membership of a record group named `<record_prefix><group>`
//! (`idsync-access-removed-confluence-users`), which grants nothing; a returning user gets
//! the recorded groups back and leaves the record groups, and a run that stops half-way loses
//! nothing (the record is written before the access is removed).

use super::ConfluenceTarget;
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::Failure;
use reqwest::Method;
use serde_json::json;

impl ConfluenceTarget {
    fn record_group(&self, access: &str) -> String {
        format!("{}{}", self.cfg.record_prefix, access).to_lowercase()
    }

    /// The access group a record group stands for, if `group` is one.
    pub(super) fn recorded_access(&self, group: &str) -> Option<String> {
        let prefix = self.cfg.record_prefix.to_lowercase();
        group
            .to_lowercase()
            .strip_prefix(&prefix)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
    }

    async fn ensure_group(&self, name: &str) -> Result<(), Failure> {
        match self
            .client
            .call(
                Method::POST,
                "/rest/api/admin/group",
                Some(&json!({"name": name, "type": "group"})),
            )
            .await
        {
            Err(f) if f.status == Some(409) || f.says("already exists") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The user's groups (lower case).
    pub(super) async fn groups_of(&self, username: &str) -> Result<Vec<String>, Failure> {
        // Confluence has no "groups of a user" call in every version: read the access groups'
        // and record groups' members instead (a few groups, whatever the number of users).
        let mut out = Vec::new();
        for g in &self.cfg.access_groups {
            for group in [g.to_lowercase(), self.record_group(g)] {
                let path = format!("/rest/api/group/{}/member", enc_path(&group));
                let members = match crate::targets::atlassian_dc::next_link::read_all(
                    &self.client,
                    &path,
                    200,
                )
                .await
                {
                    Ok(m) => m,
                    Err(f) if f.status == Some(404) => continue,
                    Err(f) => return Err(f),
                };
                if members.iter().any(|m| {
                    m.get("username")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|u| u.eq_ignore_ascii_case(username))
                }) {
                    out.push(group);
                }
            }
        }
        Ok(out)
    }

    /// Disable (`active == false`): record and remove the access groups the user is in.
    /// Enable: add the recorded groups back, then drop the record.
    pub(super) async fn set_access(&self, username: &str, active: bool) -> Result<(), Failure> {
        let held = self.groups_of(username).await?;
        if active {
            for g in &held {
                if let Some(access) = self.recorded_access(g) {
                    match self.add_to_group(&access, username).await {
                        // A group deleted meanwhile grants nothing any more.
                        Err(f) if f.status == Some(404) && f.says("group") => {}
                        other => other?,
                    }
                    self.remove_from_group(g, username).await?;
                }
            }
            return Ok(());
        }
        let access: Vec<&String> = held
            .iter()
            .filter(|g| self.recorded_access(g).is_none())
            .collect();
        if access.is_empty() && !held.iter().any(|g| self.recorded_access(g).is_some()) {
            // Nothing grants this user access: record the first access group all the same, so
            // that the user reads as disabled and a return gives it the access it lacked.
            if let Some(first) = self.cfg.access_groups.first() {
                let record = self.record_group(first);
                self.ensure_group(&record).await?;
                self.add_to_group(&record, username).await?;
            }
            return Ok(());
        }
        for g in access {
            let record = self.record_group(g);
            self.ensure_group(&record).await?;
            self.add_to_group(&record, username).await?;
            self.remove_from_group(g, username).await?;
        }
        Ok(())
    }
}

/// A path segment, percent-encoded.
pub(super) fn enc_path(s: &str) -> String {
    // The query encoding also serves a path segment once `+` is written as `%20`.
    enc(s).replace('+', "%20")
}
