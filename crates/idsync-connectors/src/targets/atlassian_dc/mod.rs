//! What the Atlassian Data Center targets share (Jira, Confluence, Bitbucket and Bamboo): the
//! HTTP client with its authentication, CA, concurrency, error bodies and rate limiter
//! (`client`), the products' paging styles (`paging`), and the answers to what none of them
//! can do (rename a group, nest groups).

pub mod client;
pub mod next_link;
pub mod paging;

pub use client::{Auth, ClientConfig, ClientError, DcClient, Failure};

use idsync_core::Outcome;

/// A group update on a product that cannot rename groups (none of the four can): a name that
/// differs only in case is the same group (nothing to do), another name is refused with the
/// reason and the group stays as it is.
pub fn group_update(product: &str, target_id: &str, asked: &str) -> Outcome {
    if asked.to_lowercase() == target_id.to_lowercase() {
        Outcome::Applied { target_id: None }
    } else {
        Outcome::Rejected {
            reason: format!(
                "{product} cannot rename groups: {target_id:?} stays as it is ({asked:?} asked)"
            ),
        }
    }
}

/// Nested-group operations: a product's internal directory gets them flattened, as every
/// pushed target.
pub fn no_nested_groups(product: &str) -> Outcome {
    Outcome::Rejected {
        reason: format!("a {product} target takes no nested groups (memberships are flattened)"),
    }
}
