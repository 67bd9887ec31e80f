//! A Bamboo Data Center simulator: the internal directory's users, groups and memberships
//! behind the admin REST API (`/rest/api/latest/admin/users`, `/admin/groups`), as
//! Atlassian's Bamboo REST reference describes it (Basic and personal access tokens, the
//! `start`/`limit`/`isLastPage` pages of `RestPageModel`, Bamboo's error bodies, usernames as
//! the only user id, case rules, a password required at create, no call to change a user's
//! full name or email and none to deactivate one), over HTTP or HTTPS on loopback, with
//! fault injection. Checked against atlassian-python-api's `Bamboo` client.

mod api;
pub mod directory;
pub mod server;

pub use directory::{BambooError, Directory};
pub use server::{
    start, BambooFaults, BambooSimOptions, BambooSimState, BambooStats, RunningBambooSim,
};
