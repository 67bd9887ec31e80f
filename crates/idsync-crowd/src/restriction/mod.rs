//! Crowd's search restrictions: the Crowd Query Language of the `restriction` query parameter
//! (`name = "j*" and (active = true or email = "*@example.com")`) and the POSTed search
//! restriction bodies (XML and JSON: null, property and boolean restrictions), parsed into one
//! [`Restriction`] and evaluated against users and groups as Crowd evaluates them:
//!
//! - string properties compare without regard to case (Crowd searches its lower-cased columns);
//!   a multi-valued attribute matches when one of its values does;
//! - `=` with a value `*x*` is CONTAINS, `x*` STARTS_WITH, `*x` ENDS_WITH, else EXACTLY_MATCHES
//!   (the `*` are stripped); `<` and `>` compare strings lexicographically;
//! - `active` is a boolean (`true`, anything else false, as Java's `Boolean.valueOf`);
//! - `createdDate` and `updatedDate` are dates (ISO 8601, checked); idsync keeps neither for a
//!   served entity, so a date restriction matches nothing;
//! - any other property is an attribute name; NULL matches an entity without a value for it.
//!
//! Every parser is linear in its input and bounds nesting at [`MAX_DEPTH`].

mod cql;
mod eval;

use crate::error::{CrowdError, ErrorReason};
use crate::model::{CrowdGroup, CrowdUser};
use crate::Format;

/// What a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    User,
    Group,
}

impl EntityType {
    /// The `entity-type` parameter (`user` or `group`, without regard to case).
    pub fn parse(s: &str) -> Option<EntityType> {
        if s.eq_ignore_ascii_case("user") {
            Some(EntityType::User)
        } else if s.eq_ignore_ascii_case("group") {
            Some(EntityType::Group)
        } else {
            None
        }
    }
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

impl MatchMode {
    /// The match mode named in a POSTed restriction (`EXACTLY_MATCHES`, ...; any case).
    pub fn parse(s: &str) -> Option<MatchMode> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "EXACTLY_MATCHES" => MatchMode::ExactlyMatches,
            "STARTS_WITH" => MatchMode::StartsWith,
            "ENDS_WITH" => MatchMode::EndsWith,
            "CONTAINS" => MatchMode::Contains,
            "LESS_THAN" => MatchMode::LessThan,
            "GREATER_THAN" => MatchMode::GreaterThan,
            "NULL" => MatchMode::Null,
            _ => return None,
        })
    }
}

/// The type of a property's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyType {
    String,
    Boolean,
    Date,
}

impl PropertyType {
    /// The type a POSTed restriction names (`STRING`, `BOOLEAN`, `DATE`; any case).
    pub fn parse(s: &str) -> Option<PropertyType> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "STRING" => PropertyType::String,
            "BOOLEAN" => PropertyType::Boolean,
            "DATE" => PropertyType::Date,
            _ => return None,
        })
    }

    /// The type Crowd gives a property named in CQL.
    pub fn of(property: &str) -> PropertyType {
        match property {
            "active" => PropertyType::Boolean,
            "createdDate" | "updatedDate" => PropertyType::Date,
            _ => PropertyType::String,
        }
    }
}

/// A search restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    /// Everything (Crowd's null restriction).
    All,
    Property {
        /// The property (`name`, `email`, `firstName`, `lastName`, `displayName`, `active`,
        /// `key`/`externalId`, `description`, `createdDate`, `updatedDate`, or an attribute
        /// name), as the client named it.
        property: String,
        kind: PropertyType,
        mode: MatchMode,
        /// The value (without the CQL wildcards); empty for NULL.
        value: String,
    },
    And(Vec<Restriction>),
    Or(Vec<Restriction>),
}

/// Restrictions nest at most this deep (parentheses or boolean bodies); deeper is refused.
pub const MAX_DEPTH: usize = 64;

/// A restriction compares at most this many properties (every user is checked against each):
/// more is refused.
pub const MAX_TERMS: usize = 1000;

/// The restriction of a `restriction` query parameter; an empty one is [`Restriction::All`].
pub fn parse_query(text: &str) -> Result<Restriction, CrowdError> {
    bounded(cql::parse(text)?)
}

fn bounded(r: Restriction) -> Result<Restriction, CrowdError> {
    fn count(r: &Restriction) -> usize {
        match r {
            Restriction::All => 0,
            Restriction::Property { .. } => 1,
            Restriction::And(parts) | Restriction::Or(parts) => parts
                .iter()
                .map(count)
                .fold(0, usize::saturating_add)
                .max(1),
        }
    }
    if count(&r) > MAX_TERMS {
        return Err(bad(format!(
            "the search restriction compares more than {MAX_TERMS} properties"
        )));
    }
    Ok(r)
}

/// The restriction of a POSTed search restriction body in `format`; an empty body is
/// [`Restriction::All`].
pub fn parse_body(body: &[u8], format: Format) -> Result<Restriction, CrowdError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Restriction::All);
    }
    bounded(match format {
        Format::Json => crate::codec::json::parse_restriction(body)?,
        Format::Xml => crate::codec::xml::parse_restriction(body)?,
    })
}

impl Restriction {
    /// A property restriction, its value checked against its type (a date must be ISO 8601).
    pub fn property(
        property: &str,
        kind: PropertyType,
        mode: MatchMode,
        value: Option<&str>,
    ) -> Result<Restriction, CrowdError> {
        let value = match (mode, value) {
            (MatchMode::Null, _) => String::new(),
            (_, None) => return Err(bad(format!("the restriction on {property:?} has no value"))),
            (_, Some(v)) => v.to_string(),
        };
        if property.is_empty() {
            return Err(bad("a property restriction names no property"));
        }
        if kind == PropertyType::Date && mode != MatchMode::Null && !eval::is_iso_date(&value) {
            return Err(bad(format!(
                "{value:?} is not a date (ISO 8601, e.g. 2024-05-01 or 2024-05-01T10:00:00.000+0000)"
            )));
        }
        Ok(Restriction::Property {
            property: property.to_string(),
            kind,
            mode,
            value,
        })
    }

    pub fn matches_user(&self, user: &CrowdUser) -> bool {
        eval::user(self, user)
    }

    pub fn matches_group(&self, group: &CrowdGroup) -> bool {
        eval::group(self, group)
    }
}

/// Crowd's answer to a restriction it cannot read.
pub(crate) fn bad(message: impl Into<String>) -> CrowdError {
    CrowdError::new(400, ErrorReason::IllegalArgument, message)
}
