//! A Bitbucket Data Center simulator: the internal directory's users, groups, memberships,
//! global group permissions and user settings behind `/rest/api/1.0`, as Atlassian's published
//! Bitbucket Data Center REST reference describes them (Basic and personal access tokens,
//! `start`/`limit`/`isLastPage`/`nextPageStart` paging, `errors[]` bodies with `context`,
//! `message` and `exceptionName`, creates answered 204, case-insensitive names, the Data
//! Center rate limiter's headers), over HTTP or HTTPS on loopback, with fault injection.
//! Checked against atlassian-python-api's `Bitbucket` client.

mod api;
pub mod directory;
pub mod server;

pub use api::MAX_PAGE;
pub use directory::{BbGroup, BbUser, BitbucketError, Directory};
pub use server::{
    start, BitbucketFaults, BitbucketSimOptions, BitbucketSimState, BitbucketStats, RateLimit,
    RunningBitbucketSim,
};
