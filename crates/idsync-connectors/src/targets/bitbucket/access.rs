//! Disabling in Bitbucket, which has no deactivation call: the user leaves the groups that
//! grant access (configured, or the groups holding `LICENSED_USER` or more in the global
//! permissions). Each removed group is recorded first, as a membership of an idsync-owned
//! group `<record_prefix><group>` (`idsync-access-removed-stash-users`, created when missing
//! and granted nothing), as the Confluence and Bamboo targets do: a returning user gets
//! exactly the recorded groups back and leaves the record groups, a run that stops half-way
//! loses nothing (the record is written before the access is removed), an administrator sees
//! the record, and a reconcile reads it from the group listing it makes anyway.
//!
//! Bitbucket's user settings (`users/{userSlug}/settings`) are not used for the record: the
//! REST reference documents them "for a specific user identified by the user slug" and does
//! not say that an administrator may read or write another user's (decision 0037).

use super::BitbucketTarget;
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::Failure;
use reqwest::Method;
use serde_json::Value;

/// Global permissions that hold a licence seat (`LICENSED_USER` and above).
const GRANTING: &[&str] = &["LICENSED_USER", "PROJECT_CREATE", "ADMIN", "SYS_ADMIN"];

/// The groups that grant access, and where they come from (for the plan's note).
pub(super) async fn groups(t: &BitbucketTarget) -> Result<&(Vec<String>, &'static str), Failure> {
    t.access
        .get_or_try_init(|| async {
            if !t.cfg.access_groups.is_empty() {
                return Ok((t.cfg.access_groups.clone(), "as configured"));
            }
            let granted = t.list("admin/permissions/groups").await?;
            let mut out: Vec<String> = granted
                .iter()
                .filter(|p| {
                    p.get("permission")
                        .and_then(Value::as_str)
                        .is_some_and(|p| GRANTING.contains(&p))
                })
                .filter_map(|p| p.get("group")?.get("name")?.as_str().map(str::to_string))
                .filter(|g| t.recorded_access(g).is_none())
                .collect();
            out.sort();
            out.dedup();
            Ok((out, "the groups granted LICENSED_USER or more"))
        })
        .await
}

impl BitbucketTarget {
    fn record_group(&self, access: &str) -> String {
        format!("{}{access}", self.cfg.record_prefix)
    }

    /// The access group a record group stands for, if `group` is one.
    pub(super) fn recorded_access(&self, group: &str) -> Option<String> {
        let prefix = &self.cfg.record_prefix;
        if prefix.is_empty() || group.len() <= prefix.len() {
            return None;
        }
        let head = group.get(..prefix.len())?;
        let rest = group.get(prefix.len()..)?;
        head.eq_ignore_ascii_case(prefix).then(|| rest.to_string())
    }

    /// Create the group unless it is there.
    async fn ensure_group(&self, name: &str) -> Result<(), Failure> {
        match self
            .call(
                Method::POST,
                &format!("admin/groups?name={}", enc(name)),
                None,
            )
            .await
        {
            Ok(_) => {}
            Err(f) if f.status == Some(409) => {}
            Err(f) => return Err(f),
        }
        self.note_group(name, true);
        Ok(())
    }

    /// The groups the user is in, as Bitbucket names them.
    async fn groups_of(&self, name: &str) -> Result<Vec<String>, Failure> {
        Ok(self
            .list(&format!("admin/users/more-members?context={}", enc(name)))
            .await?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// Disable (`active == false`): record, then remove, the access groups the user is in.
    /// Enable: add the recorded groups back (one `add-groups` call; a group deleted meanwhile
    /// grants nothing any more and is skipped), then leave the record groups.
    pub(super) async fn set_access(&self, name: &str, active: bool) -> Result<(), Failure> {
        let held = self.groups_of(name).await?;
        let records: Vec<&String> = held
            .iter()
            .filter(|g| self.recorded_access(g).is_some())
            .collect();
        if active {
            if records.is_empty() {
                return Ok(());
            }
            let existing = self.group_names().await?;
            let back: Vec<String> = records
                .iter()
                .filter_map(|g| self.recorded_access(g))
                .filter_map(|g| existing.get(&g.to_lowercase()).cloned())
                .collect();
            self.add_groups(name, &back).await?;
            for r in records {
                self.remove_group(name, r).await?;
            }
            return Ok(());
        }
        let (access, _) = groups(self).await?;
        let mut removed: Vec<&String> = held
            .iter()
            .filter(|g| access.iter().any(|a| a.eq_ignore_ascii_case(g)))
            .collect();
        let mut record: Vec<String> = removed.iter().map(|g| self.record_group(g)).collect();
        if removed.is_empty() && records.is_empty() {
            // Nothing grants this user access: record the first access group all the same, so
            // that the user reads as disabled and a return gives it the access it lacked.
            if let Some(first) = access.first() {
                record.push(self.record_group(first));
            }
        }
        record.retain(|r| !records.iter().any(|h| h.eq_ignore_ascii_case(r)));
        for r in &record {
            self.ensure_group(r).await?;
        }
        self.add_groups(name, &record).await?;
        removed.sort();
        for g in removed {
            self.remove_group(name, g).await?;
        }
        Ok(())
    }
}
