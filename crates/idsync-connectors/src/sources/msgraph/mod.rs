//! The Microsoft Graph source: Entra ID and Azure AD B2C / External ID tenants.
//!
//! **Scope**: the whole directory, the (transitive) members of listed groups, or the users and
//! groups assigned to an enterprise application. Groups can be filtered by name or regex.
//!
//! **Reads**: with the whole directory in scope and delta available, the first read is a delta
//! round from scratch (`users/delta`, `groups/delta` with `members@delta`), and later reads
//! are delta rounds from the stored delta links: only changes travel. Objects keep their Graph
//! object id as key. A delta item lacking selected properties is completed with one `$batch`
//! of GETs. An expired delta link (410 `syncStateNotFound`) is answered by a full read.
//! Group and application scopes, and tenants without delta (B2C, External ID), are read whole
//! each time; the store writes and logs only what differs, so the incremental cost downstream
//! stays proportional to the changes.
//!
//! Every read is whole or an error: a page that fails after retries fails the read, and
//! nothing is taken as the whole directory.

mod check;
mod delta;
mod listing;
mod map;

pub use check::CheckReport;

use async_trait::async_trait;
use idsync_core::{ReadStats, Source, SourceError, SourceRead};
/// The Graph client this source reads with.
pub use idsync_msgraph as client;
use idsync_msgraph::{GraphClient, GraphError, GraphStats};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which objects the source reads.
#[derive(Debug, Clone)]
pub enum GraphScope {
    /// Every user and group of the tenant.
    All,
    /// Listed groups (by display name) and their transitive members.
    Groups(Vec<String>),
    /// Users and groups assigned to an enterprise application (by its appId), groups with their
    /// transitive members.
    App(String),
}

/// Where a user's userName comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum UserNameFrom {
    UserPrincipalName,
    Mail,
    /// A B2C local account identity of this signInType (`emailAddress`, `userName`, ...).
    Identity(String),
}

/// What keys a user: the object id, or (B2C local accounts) issuer + issuerAssignedId of an
/// identity of a signInType.
#[derive(Debug, Clone, PartialEq)]
pub enum UserKey {
    ObjectId,
    Identity(String),
}

#[derive(Debug, Clone)]
pub struct GraphSourceConfig {
    pub scope: GraphScope,
    /// Only groups whose display name matches (others, and memberships in them, are left out).
    pub group_filter: Option<Regex>,
    pub user_name: UserNameFrom,
    pub key: UserKey,
    /// Extension attributes to read (`extension_<appId>_<name>`), kept in `custom` under
    /// their short name.
    pub extensions: Vec<String>,
    /// Use delta queries (off for B2C and External ID, which have none).
    pub delta: bool,
}

impl Default for GraphSourceConfig {
    fn default() -> Self {
        GraphSourceConfig {
            scope: GraphScope::All,
            group_filter: None,
            user_name: UserNameFrom::UserPrincipalName,
            key: UserKey::ObjectId,
            extensions: Vec::new(),
            delta: true,
        }
    }
}

const USER_PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "accountEnabled",
    "jobTitle",
    "department",
    "employeeId",
    "companyName",
    "officeLocation",
    "city",
    "country",
    "streetAddress",
    "postalCode",
    "state",
    "preferredLanguage",
    "businessPhones",
    "mobilePhone",
    "userType",
    "onPremisesExtensionAttributes",
];
const GROUP_PROPS: &[&str] = &["id", "displayName", "description"];

/// What the source keeps between reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    users: String,
    groups: String,
}

pub struct GraphSource {
    client: GraphClient,
    cfg: GraphSourceConfig,
}

fn source_err(e: GraphError) -> SourceError {
    match e {
        GraphError::Auth { .. } | GraphError::Consent { .. } => SourceError::Auth(e.to_string()),
        GraphError::DeltaExpired { reason, .. } => SourceError::CursorExpired(reason),
        GraphError::Invalid { url, message } => SourceError::Invalid {
            location: url,
            message,
        },
        other => SourceError::Unavailable(other.to_string()),
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

impl GraphSource {
    pub fn new(client: GraphClient, cfg: GraphSourceConfig) -> Self {
        GraphSource { client, cfg }
    }

    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// What the Graph client did so far (requests, retries, throttles, resource units).
    pub fn stats(&self) -> GraphStats {
        self.client.stats()
    }

    fn user_select(&self, with_manager: bool) -> String {
        let mut props: Vec<String> = USER_PROPS.iter().map(|s| (*s).to_string()).collect();
        if !self.cfg.delta
            || !matches!(self.cfg.scope, GraphScope::All)
            || self.cfg.key != UserKey::ObjectId
        {
            props.push("identities".into());
        }
        props.extend(self.cfg.extensions.iter().cloned());
        if with_manager {
            props.push("manager".into());
        }
        props.join(",")
    }

    fn uses_delta(&self) -> bool {
        self.cfg.delta
            && matches!(self.cfg.scope, GraphScope::All)
            && self.cfg.key == UserKey::ObjectId
    }

    fn group_included(&self, name: &str) -> bool {
        self.cfg
            .group_filter
            .as_ref()
            .is_none_or(|r| r.is_match(name))
    }
}

#[async_trait]
impl Source for GraphSource {
    fn describe(&self) -> String {
        format!(
            "Microsoft Graph tenant {} ({})",
            self.client.config().tenant,
            self.client.config().graph
        )
    }

    fn stats(&self) -> Option<ReadStats> {
        let s = self.client.stats();
        Some(ReadStats {
            requests: s.requests,
            retries: s.retries,
            throttled: s.throttled,
            resource_units: s.resource_units,
        })
    }

    async fn read(&self, cursor: Option<&str>) -> Result<SourceRead, SourceError> {
        match &self.cfg.scope {
            GraphScope::All if self.uses_delta() => {
                match cursor.and_then(|c| serde_json::from_str::<Cursor>(c).ok()) {
                    Some(c) => self.delta(&c).await,
                    None => self.full_via_delta().await,
                }
            }
            GraphScope::All => self.full_by_listing().await,
            GraphScope::Groups(names) => {
                let ids = self.group_ids_by_name(names).await?;
                self.full_from_groups(ids, Vec::new()).await
            }
            GraphScope::App(app) => {
                let (users, groups) = self.app_assignments(app).await?;
                self.full_from_groups(groups, users).await
            }
        }
    }
}
