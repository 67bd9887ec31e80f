//! The first sync into Jira through the binary matches its creates against one listing of
//! Jira's users and groups (decision 0040), not two searches per user and one per group.

use super::jira::{jira_sim, sync, write_jira_config, Jira};
use super::write_people_csv;

#[test]
fn jira_first_sync_matches_its_creates_against_one_listing() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &[]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 30);
    write_jira_config(dir.path(), &root, "");
    let stats = || {
        let v: serde_json::Value = jira
            .http
            .get(format!("{root}/_sim/stats"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (
            v["requests"].as_u64().unwrap(),
            v["writes"].as_u64().unwrap(),
        )
    };
    let (requests, writes) = stats();
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    let after = stats();
    let (requests, writes) = (after.0 - requests, after.1 - writes);
    assert_eq!(jira.users().len(), 31);
    let reads = requests - writes;
    // The reads: serverInfo, myself, the application roles, the listing's probe and its two
    // pages, the group picker once. Searching would add 60 (2 per user) and 2 (per group).
    assert!(
        reads <= 10,
        "{reads} reads for 30 creates ({writes} writes): matching lists once"
    );
    // Writes: a create and a property per user, two groups, 40 memberships.
    assert_eq!(writes, 30 + 30 + 2 + 40, "{requests} requests");
}
