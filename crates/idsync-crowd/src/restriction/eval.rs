//! Evaluating a restriction against a user or a group.

use super::{MatchMode, PropertyType, Restriction};
use crate::directory::fold;
use crate::model::{Attributes, CrowdGroup, CrowdUser};

/// The values of one property of an entity.
enum Values<'a> {
    /// No value (a missing attribute, an empty email, a date idsync does not keep).
    None,
    One(&'a str),
    Many(&'a [String]),
    Bool(bool),
}

fn text(s: &str) -> Values<'_> {
    if s.is_empty() {
        Values::None
    } else {
        Values::One(s)
    }
}

fn attribute<'a>(attributes: &'a Attributes, name: &str) -> Values<'a> {
    match attributes.get(name) {
        Some(v) if !v.is_empty() => Values::Many(v),
        _ => Values::None,
    }
}

fn user_property<'a>(u: &'a CrowdUser, property: &str) -> Values<'a> {
    match property {
        "name" => Values::One(&u.name),
        "email" => text(&u.email),
        "firstName" => text(&u.first_name),
        "lastName" => text(&u.last_name),
        "displayName" => text(&u.display_name),
        "active" => Values::Bool(u.active),
        "key" | "externalId" => text(&u.key),
        "createdDate" | "updatedDate" => Values::None,
        other => attribute(&u.attributes, other),
    }
}

fn group_property<'a>(g: &'a CrowdGroup, property: &str) -> Values<'a> {
    match property {
        "name" => Values::One(&g.name),
        "description" => text(&g.description),
        "active" => Values::Bool(g.active),
        "type" => Values::One("GROUP"),
        "createdDate" | "updatedDate" => Values::None,
        other => attribute(&g.attributes, other),
    }
}

fn compare_text(have: &str, mode: MatchMode, want: &str) -> bool {
    let have = fold(have);
    match mode {
        MatchMode::ExactlyMatches => have == want,
        MatchMode::StartsWith => have.starts_with(want),
        MatchMode::EndsWith => have.ends_with(want),
        MatchMode::Contains => have.contains(want),
        MatchMode::LessThan => have.as_str() < want,
        MatchMode::GreaterThan => have.as_str() > want,
        MatchMode::Null => false,
    }
}

fn matches(values: Values<'_>, kind: PropertyType, mode: MatchMode, value: &str) -> bool {
    if mode == MatchMode::Null {
        return matches!(values, Values::None);
    }
    match (values, kind) {
        (Values::None, _) => false,
        (_, PropertyType::Date) => false,
        (Values::Bool(have), _) => {
            let want = value.trim().eq_ignore_ascii_case("true");
            match mode {
                MatchMode::LessThan => !have && want,
                MatchMode::GreaterThan => have && !want,
                _ => have == want,
            }
        }
        (Values::One(s), _) => compare_text(s, mode, &fold(value)),
        (Values::Many(list), _) => {
            let want = fold(value);
            list.iter().any(|s| compare_text(s, mode, &want))
        }
    }
}

pub fn user(r: &Restriction, u: &CrowdUser) -> bool {
    match r {
        Restriction::All => true,
        Restriction::Property {
            property,
            kind,
            mode,
            value,
        } => matches(user_property(u, property), *kind, *mode, value),
        Restriction::And(parts) => parts.iter().all(|p| user(p, u)),
        Restriction::Or(parts) => parts.iter().any(|p| user(p, u)),
    }
}

pub fn group(r: &Restriction, g: &CrowdGroup) -> bool {
    match r {
        Restriction::All => true,
        Restriction::Property {
            property,
            kind,
            mode,
            value,
        } => matches(group_property(g, property), *kind, *mode, value),
        Restriction::And(parts) => parts.iter().all(|p| group(p, g)),
        Restriction::Or(parts) => parts.iter().any(|p| group(p, g)),
    }
}

/// An ISO 8601 date with an optional time: `2024-05-01`, `2024-05-01T10:00`,
/// `2024-05-01T10:00:00.000+0000`.
pub fn is_iso_date(s: &str) -> bool {
    let b = s.trim().as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7)) {
        return false;
    }
    match b.get(7) {
        None => true,
        Some(b'-') => {
            digits(8..10)
                && match b.get(10) {
                    None => true,
                    Some(b'T') => digits(11..13),
                    _ => false,
                }
        }
        _ => false,
    }
}
