//! Reading every user, and the email addresses Confluence shows, for a reconcile
//! (decision 0036):
//!
//! - 8.4 and later list every user with `GET /rest/api/user/list` (`read_state`);
//! - before 8.4 no call lists users, but the CQL search does: `GET /rest/api/search` with
//!   `cql=type=user` (the resource's example searches `type in (space,page,user)`), paged with
//!   `start`/`limit` and `_links.next` like every collection. It reads Confluence's search
//!   index, so a user the index lacks (a reindex in progress) is not seen; the groups' members
//!   are read as well. A search result carries no status: a user no group lists is read once
//!   more, with its status.
//! - the emails: JSON-RPC `getUser` before 9.0 (`email_of`); from 9.3 the list of active users
//!   (`GET /rest/api/admin/users/list/active`), where its users carry an `email`.

use super::profile::EmailView;
use super::ConfluenceTarget;
use crate::targets::atlassian_dc::{next_link, Failure};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

impl ConfluenceTarget {
    /// Before 8.4: the users the CQL user search finds that `people` (the groups' members)
    /// lacks, with their status, added to `people` by user key.
    pub(super) async fn add_searched_users(
        &self,
        people: &mut BTreeMap<String, Value>,
    ) -> Result<(), Failure> {
        let found = match next_link::read_all(&self.client, "/rest/api/search?cql=type%3Duser", 200)
            .await
        {
            Ok(found) => found,
            // A search that cannot answer (an old CQL, a search turned off) leaves the groups'
            // members only, and says so.
            Err(f) if matches!(f.status, Some(400 | 404 | 501)) => {
                tracing::warn!(
                    error = %f.reason,
                    "Confluence's CQL user search did not answer: a reconcile sees only the users in some group"
                );
                return Ok(());
            }
            Err(f) => return Err(f),
        };
        let missing: Vec<String> = found
            .iter()
            .filter_map(|r| r.get("user"))
            .filter_map(|u| u.get("userKey").and_then(Value::as_str))
            .filter(|k| !people.contains_key(*k))
            .map(str::to_string)
            .collect();
        let read: Vec<Result<(String, Value), Failure>> = stream::iter(missing)
            .map(|k| async move {
                let v = self.get_user(&k).await?;
                Ok((k, v))
            })
            .buffered(8)
            .collect()
            .await;
        for r in read {
            match r {
                Ok((k, v)) => {
                    people.insert(k, v);
                }
                // Deleted between the search and the read.
                Err(f) if f.status == Some(404) => {}
                Err(f) => return Err(f),
            }
        }
        Ok(())
    }

    /// 9.0 and later: the emails the list of active users shows (9.3 and later; those of its
    /// users that carry one), by lower-case username. Also what the comparison may rely on.
    pub(super) async fn listed_emails(&self) -> Result<HashMap<String, String>, Failure> {
        let listed =
            match next_link::read_all(&self.client, "/rest/api/admin/users/list/active", 200).await
            {
                Ok(l) => l,
                Err(f) if matches!(f.status, Some(404 | 405)) => Vec::new(),
                Err(f) => return Err(f),
            };
        let emails: HashMap<String, String> = listed
            .iter()
            .filter_map(|u| {
                let name = u.get("username").and_then(Value::as_str)?;
                let email = u.get("email").and_then(Value::as_str)?;
                (!email.is_empty()).then(|| (name.to_lowercase(), email.to_string()))
            })
            .collect();
        self.set_email_view(EmailView::Only(emails.keys().cloned().collect()));
        Ok(emails)
    }

    /// The email of one user, read its version's way: JSON-RPC before 9.0, else what the list
    /// of active users showed (`listed`).
    pub(super) async fn email_read(
        &self,
        username: &str,
        listed: &HashMap<String, String>,
    ) -> Result<Option<String>, Failure> {
        if username.is_empty() {
            return Ok(None);
        }
        if self.instance().await?.has_json_rpc() {
            return self.email_of(username).await;
        }
        Ok(listed.get(&username.to_lowercase()).cloned())
    }

    /// The user's email address through JSON-RPC `getUser` (before 9.0).
    pub(super) async fn email_of(&self, username: &str) -> Result<Option<String>, Failure> {
        let v = self.rpc("getUser", serde_json::json!([username])).await?;
        Ok(v.get("email").and_then(Value::as_str).map(str::to_string))
    }

    /// A group's members, with their status.
    pub(super) async fn members(&self, group: &str) -> Result<Vec<Value>, Failure> {
        next_link::read_all(
            &self.client,
            &format!(
                "/rest/api/group/{}/member?expand=status",
                super::access::enc_path(group)
            ),
            200,
        )
        .await
    }
}
