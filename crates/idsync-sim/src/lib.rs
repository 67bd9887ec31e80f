//! Simulators that ship with idsync, like a local emulator: a person can try idsync with no
//! cloud account, and tests run against them at 100k-user scale. Each is checked against the
//! real client libraries of the service it imitates (for Graph: Microsoft's msgraph SDK).

pub mod bamboo;
pub mod bitbucket;
pub mod confluence;
mod dc;
pub mod graph;
pub mod jira;
