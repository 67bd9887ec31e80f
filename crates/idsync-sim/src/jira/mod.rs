//! A Jira Data Center simulator: the internal directory's users, groups, memberships, user
//! properties, application roles, and projects and components with their leads, behind `/rest/api/2`, as Atlassian's published Jira
//! Server/Data Center REST reference describes them (Basic and personal access tokens, Jira's
//! paging and error bodies, username vs user key, case rules, the version rules of `active`,
//! the Data Center rate limiter's headers), over HTTP or HTTPS on loopback, with fault
//! injection. Checked against atlassian-python-api's `Jira` client.

mod api;
pub mod directory;
mod projects;
pub mod server;

pub use directory::{AppRole, Directory, JiraError, Version};
pub use server::{
    start, JiraFaults, JiraSimOptions, JiraSimState, JiraStats, RateLimit, RunningJiraSim,
};
