//! Crowd's search restrictions: the Crowd Query Language of the `restriction` query parameter
//! (`name = "j*" and (active = true or email = "*@example.com")`) and the POSTed
//! `search-restriction` bodies (XML and JSON: null, property and boolean restrictions), parsed
//! into one [`Restriction`] and evaluated against users and groups.

use crate::error::{CrowdError, ErrorReason};
use crate::model::{CrowdGroup, CrowdUser};
use crate::Format;

/// What a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    User,
    Group,
}

/// How a property is compared with a value (Crowd's `MatchMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    ExactlyMatches,
    StartsWith,
    EndsWith,
    Contains,
    LessThan,
    GreaterThan,
    /// The property has no value.
    Null,
}

/// A search restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// Everything (Crowd's null restriction).
    All,
    Property {
        /// The property (`name`, `email`, `firstName`, `lastName`, `displayName`, `active`,
        /// `description`, or an attribute name), as the client named it.
        property: String,
        mode: MatchMode,
        value: String,
    },
    And(Vec<Restriction>),
    Or(Vec<Restriction>),
}

/// Restrictions nest at most this deep (parentheses or boolean bodies); deeper is refused.
pub const MAX_DEPTH: usize = 64;

/// The restriction of a `restriction` query parameter.
pub fn parse_query(text: &str) -> Result<Restriction, CrowdError> {
    crate::restriction::cql::parse(text)
}

/// The restriction of a POSTed `search-restriction` body in `format`.
pub fn parse_body(body: &[u8], format: Format) -> Result<Restriction, CrowdError> {
    match format {
        Format::Json => crate::codec::json::parse_restriction(body),
        Format::Xml => crate::codec::xml::parse_restriction(body),
    }
}

impl Restriction {
    pub fn matches_user(&self, user: &CrowdUser) -> bool {
        eval::user(self, user)
    }

    pub fn matches_group(&self, group: &CrowdGroup) -> bool {
        eval::group(self, group)
    }
}

pub(crate) fn bad(message: impl Into<String>) -> CrowdError {
    CrowdError::new(400, ErrorReason::IllegalArgument, message)
}

mod cql {
    use super::*;
    pub fn parse(_text: &str) -> Result<Restriction, CrowdError> {
        Err(bad("restriction parsing is not written yet"))
    }
}

mod eval {
    use super::*;
    pub fn user(_r: &Restriction, _u: &CrowdUser) -> bool {
        false
    }
    pub fn group(_r: &Restriction, _g: &CrowdGroup) -> bool {
        false
    }
}
