//! Disabling where Bamboo has no call for it: the user leaves the configured access groups
//! (those Bamboo's global "Access" permission is granted to). Each removed group is recorded
//! first, as membership in idsync's group `<record_group>:<access group>`, and the user joins
//! `<record_group>` itself, so that the record lives in Bamboo (a run that stops half-way
//! loses nothing), an administrator sees it, a reconcile reads the user as disabled, and a
//! returning user gets exactly the recorded groups back.

use super::BambooTarget;
use crate::targets::atlassian_dc::Failure;

pub(super) async fn disable(t: &BambooTarget, name: &str) -> Result<(), Failure> {
    if t.cfg.access_groups.is_empty() {
        return Err(Failure {
            status: Some(400),
            reason: format!(
                "cannot disable Bamboo user {name}: Bamboo has no call to deactivate a user and the target sets no access_groups to remove"
            ),
            messages: Vec::new(),
            retry_after: None,
        });
    }
    let held: Vec<String> = t
        .groups_of(name)
        .await?
        .into_iter()
        .filter(|g| {
            t.cfg
                .access_groups
                .iter()
                .any(|a| a.eq_ignore_ascii_case(g))
        })
        .collect();
    let mut records = vec![t.cfg.record_group.clone()];
    records.extend(held.iter().map(|g| format!("{}{g}", t.record_prefix())));
    for r in &records {
        t.ensure_group(r).await?;
    }
    t.user_groups(name, &records, true).await?;
    t.user_groups(name, &held, false).await
}

pub(super) async fn enable(t: &BambooTarget, name: &str) -> Result<(), Failure> {
    let prefix = t.record_prefix().to_lowercase();
    let records: Vec<String> = t
        .groups_of(name)
        .await?
        .into_iter()
        .filter(|g| t.is_record(g))
        .collect();
    let restore: Vec<String> = records
        .iter()
        .filter(|g| g.to_lowercase().starts_with(&prefix))
        .map(|g| g.chars().skip(prefix.chars().count()).collect())
        .collect();
    match t.user_groups(name, &restore, true).await {
        // An access group deleted meanwhile grants nothing any more: give back the others.
        Err(f) if f.status == Some(404) && f.says("group") => {
            for g in &restore {
                match t.user_groups(name, std::slice::from_ref(g), true).await {
                    Err(f) if f.status == Some(404) && f.says("group") => {}
                    other => other?,
                }
            }
        }
        other => other?,
    }
    t.user_groups(name, &records, false).await
}
