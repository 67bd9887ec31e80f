//! A Confluence Data Center simulator: the internal directory's users, groups and memberships
//! behind `/rest/api` (the user, group, user-group, admin user and admin group resources,
//! long tasks, server information), the applinks manifest and, before 9.0, the JSON-RPC
//! remote API's user calls, as Atlassian's published Confluence Data Center REST reference
//! describes them (Basic and personal access tokens, `start`/`limit`/`size`/`_links.next`
//! paging, the `statusCode`/`message`/`data` error body, username vs user key, case rules, the
//! versions that have each call, the Data Center rate limiter's headers), over HTTP or HTTPS on
//! loopback, with fault injection. Checked against atlassian-python-api's `Confluence` client.

mod api;
pub mod directory;
pub mod server;

pub use crate::jira::{RateLimit, Version};
pub use directory::{Capabilities, ConfError, ConfUser, Directory, DEFAULT_GROUP};
pub use server::{
    start, ConfluenceFaults, ConfluenceSimOptions, ConfluenceSimState, ConfluenceStats,
    RunningConfluenceSim,
};
