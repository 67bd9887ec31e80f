//! JSON as Crowd writes and reads it.

use crate::error::CrowdError;
use crate::restriction::{bad, Restriction};

pub fn parse_restriction(_body: &[u8]) -> Result<Restriction, CrowdError> {
    Err(bad("not written yet"))
}
