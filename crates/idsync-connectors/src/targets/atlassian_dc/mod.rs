//! What the Atlassian Data Center targets share (Jira today; Confluence, Bitbucket and Bamboo
//! on the same shapes): the HTTP client with its authentication, CA, concurrency, error
//! bodies and rate limiter (`client`), and the products' paging styles (`paging`).

pub mod client;
pub mod next_link;
pub mod paging;

pub use client::{Auth, ClientConfig, ClientError, DcClient, Failure};
