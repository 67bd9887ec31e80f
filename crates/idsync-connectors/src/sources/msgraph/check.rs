//! `idsync source check`: the tenant, what is in scope, and missing permissions.

use super::{s, source_err, GraphScope, GraphSource};
use idsync_core::{Source, SourceError, SourceRead};
use idsync_msgraph::GraphError;
use serde::Serialize;
use serde_json::Value;

/// What `idsync source check` shows before a first sync: which tenant this is, how much is in
/// scope, and which permissions are missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub tenant_id: Option<String>,
    pub tenant_name: Option<String>,
    /// (domain, is default, is initial)
    pub domains: Vec<(String, bool, bool)>,
    pub users_in_scope: Option<usize>,
    pub groups_in_scope: Option<usize>,
    pub granted: Vec<String>,
    /// Requirements no granted permission meets; each lists the permissions that would.
    pub missing: Vec<Vec<String>>,
    /// What could not be read, and why.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.problems.is_empty()
    }
}

impl GraphSource {
    /// The permissions a read in this scope needs; each inner list: any one of them.
    pub fn required_permissions(&self) -> Vec<Vec<&'static str>> {
        let mut r = vec![
            vec!["User.Read.All", "Directory.Read.All"],
            vec![
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
            ],
        ];
        if matches!(self.cfg.scope, GraphScope::App(_)) {
            r.push(vec!["Application.Read.All", "Directory.Read.All"]);
        }
        r
    }

    /// How many objects a collection holds: `$count` (with `ConsistencyLevel: eventual`, as
    /// Graph requires), else, on a tenant that does not answer it, by paging through the ids.
    async fn count(&self, coll: &str) -> Result<usize, GraphError> {
        let counted = self
            .client
            .get(
                &self.client.url(&format!("{coll}/$count")),
                &[("ConsistencyLevel", "eventual")],
            )
            .await
            .map(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
            });
        match counted {
            Ok(Some(n)) => return Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Ok(None) => tracing::info!(
                collection = coll,
                "graph: $count answered no number, counting by paging"
            ),
            Err(e @ (GraphError::Auth { .. } | GraphError::Consent { .. })) => return Err(e),
            Err(e) => {
                tracing::info!(collection = coll, error = %e, "graph: no $count, counting by paging")
            }
        }
        let url = self.client.url(&format!("{coll}?$select=id&$top=999"));
        Ok(self.client.get_all(&url, &[]).await?.len())
    }

    /// Sign in, read the organization and count what is in scope. Sign-in failures are errors;
    /// everything else lands in the report.
    pub async fn check(&self) -> Result<CheckReport, SourceError> {
        let granted = self.client.granted_roles().await.map_err(source_err)?;
        let mut report = CheckReport {
            tenant_id: None,
            tenant_name: None,
            domains: Vec::new(),
            users_in_scope: None,
            groups_in_scope: None,
            missing: self
                .required_permissions()
                .into_iter()
                .filter(|any| !any.iter().any(|p| granted.iter().any(|g| g == p)))
                .map(|any| any.into_iter().map(str::to_string).collect())
                .collect(),
            granted,
            problems: Vec::new(),
        };
        match self.client.get(&self.client.url("organization"), &[]).await {
            Ok(v) => {
                if let Some(org) = v.get("value").and_then(Value::as_array).and_then(|a| a.first()) {
                    report.tenant_id = s(org, "id");
                    report.tenant_name = s(org, "displayName");
                    for d in org.get("verifiedDomains").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(name) = s(d, "name") {
                            let flag = |k: &str| d.get(k).and_then(Value::as_bool).unwrap_or(false);
                            report.domains.push((name, flag("isDefault"), flag("isInitial")));
                        }
                    }
                }
            }
            Err(e) => report.problems.push(format!("cannot read the organization (grant Organization.Read.All or Directory.Read.All to see the tenant's name and domains): {e}")),
        }
        if !report.missing.is_empty() {
            return Ok(report);
        }
        let counted = match &self.cfg.scope {
            GraphScope::All if self.cfg.group_filter.is_none() && self.uses_delta() => {
                match (self.count("users").await, self.count("groups").await) {
                    (Ok(u), Ok(g)) => Ok((u, g)),
                    (Err(e), _) | (_, Err(e)) => Err(source_err(e)),
                }
            }
            // Anything narrower is counted by reading it (nothing is written).
            _ => match self.read(None).await {
                Ok(SourceRead::Full { snapshot, .. }) => {
                    Ok((snapshot.users.len(), snapshot.groups.len()))
                }
                Ok(SourceRead::Delta { .. }) => Ok((0, 0)),
                Err(e) => Err(e),
            },
        };
        match counted {
            Ok((u, g)) => {
                report.users_in_scope = Some(u);
                report.groups_in_scope = Some(g);
            }
            Err(e) => report
                .problems
                .push(format!("cannot count what is in scope: {e}")),
        }
        Ok(report)
    }
}
