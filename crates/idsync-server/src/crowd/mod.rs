//! The Crowd-compatible directory idsync serves to Atlassian Data Center products
//! (decision 0031): `/crowd/<target>/rest/usermanagement/1/...`.

mod allow;

pub use allow::{AllowList, BadAllowEntry};
