//! idsync's connectors: one folder per thing a connector talks to.
//!
//! - [`sources::file`]: users, groups and memberships from JSON or CSV files.
//! - [`sources::msgraph`]: Microsoft Entra ID and Azure AD B2C through Microsoft Graph.
//! - [`targets::scim`]: any SCIM 2.0 service, with profiles for services' quirks
//!   (`generic`, `atlassian-cloud`).
//! - [`targets::bamboo`]: Bamboo Data Center's internal directory (admin REST API).
//! - [`targets::bitbucket`]: Bitbucket Data Center's internal directory (REST `/rest/api/1.0`).
//! - [`targets::jira`]: Jira Data Center's internal directory (REST), on the shared
//!   [`targets::atlassian_dc`] client and paging.
//! - [`targets::test`]: the scriptable test target (an application stand-in with fault
//!   injection and a journal).
//! - `testkit` (feature `testkit`): the conformance suite every target must pass.

pub mod sources {
    pub mod file;
    pub mod msgraph;
}
pub mod targets {
    pub mod atlassian_dc;
    pub mod bamboo;
    pub mod bitbucket;
    pub mod confluence;
    pub mod jira;
    pub(crate) mod listed;
    pub mod scim;
    pub mod test;
}
#[cfg(feature = "testkit")]
pub mod testkit;
