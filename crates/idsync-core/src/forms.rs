//! Which request form a target takes for each kind of change, as learned from its answers
//! (decision 0026). A SCIM service may claim PATCH and answer it 501, or take a member removal
//! only as a value list: the target learns the form that works, the engine keeps it in the
//! store per target, and later runs start with it.

use std::fmt;
use std::str::FromStr;

/// A kind of change whose request form can differ between targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    UpdateUser,
    UpdateGroup,
    AddMembers,
    RemoveMembers,
    /// A group's create with its first members (`post` or `post-with-members`).
    CreateGroup,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::UpdateUser,
        OpKind::UpdateGroup,
        OpKind::AddMembers,
        OpKind::RemoveMembers,
        OpKind::CreateGroup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::UpdateUser => "update-user",
            OpKind::UpdateGroup => "update-group",
            OpKind::AddMembers => "add-members",
            OpKind::RemoveMembers => "remove-members",
            OpKind::CreateGroup => "create-group",
        }
    }
}

/// How a change is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Form {
    /// PATCH whose operations address what they change by path, with a value filter where
    /// needed (`members[value eq "id"]`).
    PatchPath,
    /// PATCH whose operations carry a value list instead of a filter
    /// (`{"op":"remove","path":"members","value":[{"value":"id"}]}`).
    PatchValue,
    /// The whole resource read, changed and written back with PUT.
    Put,
    /// A group's POST without members; its first members follow in a PATCH (a service that
    /// refuses members in the create).
    Post,
    /// A group's POST with its first members (a service that requires them there, or by
    /// default, checked against what the service answers).
    PostWithMembers,
}

impl Form {
    /// Every form, in order (a kind of change only moves forward among its own).
    pub const ALL: [Form; 5] = [
        Form::PatchPath,
        Form::PatchValue,
        Form::Put,
        Form::Post,
        Form::PostWithMembers,
    ];
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::PatchPath => "patch-path",
            Form::PatchValue => "patch-value",
            Form::Put => "put",
            Form::Post => "post",
            Form::PostWithMembers => "post-with-members",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a known operation kind or form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
}

impl FromStr for OpKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "operation kind",
                value: s.to_string(),
            })
    }
}

impl FromStr for Form {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Form::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "request form",
                value: s.to_string(),
            })
    }
}

/// A form a target found to work for a kind of change, and why the earlier one did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedForm {
    pub kind: OpKind,
    pub form: Form,
    /// The answer that refused the form tried before (empty when the form was remembered).
    pub reason: String,
}

/// A user attribute a target refused (a `400` naming it) and is no longer sent (issue 16,
/// item 4): remembered per target like the forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedOmission {
    /// The SCIM attribute path, `emails.primary`, `title`.
    pub path: String,
    /// The answer that refused it (empty when remembered).
    pub reason: String,
}

/// User attributes a target may be set (`omit`) never to be sent: every optional attribute
/// idsync sends, and the sub-attributes of the complex and multi-valued ones. Never
/// `userName`, `active`, `id`.
pub const OMITTABLE_USER_ATTRIBUTES: &[&str] = &[
    "externalId",
    "name",
    "name.formatted",
    "name.givenName",
    "name.familyName",
    "name.middleName",
    "name.honorificPrefix",
    "name.honorificSuffix",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "emails",
    "emails.type",
    "emails.primary",
    "emails.display",
    "phoneNumbers",
    "phoneNumbers.type",
    "phoneNumbers.primary",
    "phoneNumbers.display",
    "addresses",
    "addresses.type",
    "addresses.primary",
    "addresses.formatted",
    "addresses.streetAddress",
    "addresses.locality",
    "addresses.region",
    "addresses.postalCode",
    "addresses.country",
    "ims",
    "photos",
    "entitlements",
    "roles",
    "x509Certificates",
    "employeeNumber",
    "department",
    "organization",
    "division",
    "costCenter",
    "manager",
];

/// Of those, the ones a target's refusal may take away by itself: sub-attributes that qualify
/// a value (never the value, nor a name part people are known by) and optional single values.
/// Whole lists (`emails`), names and `externalId` only go by a setting.
pub const LEARNABLE_OMISSIONS: &[&str] = &[
    "name.formatted",
    "name.middleName",
    "name.honorificPrefix",
    "name.honorificSuffix",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "emails.type",
    "emails.primary",
    "emails.display",
    "phoneNumbers.type",
    "phoneNumbers.primary",
    "phoneNumbers.display",
    "addresses.type",
    "addresses.primary",
    "addresses.formatted",
    "employeeNumber",
    "department",
    "organization",
    "division",
    "costCenter",
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for k in OpKind::ALL {
            assert_eq!(k.as_str().parse::<OpKind>(), Ok(k));
        }
        for f in Form::ALL {
            assert_eq!(f.as_str().parse::<Form>(), Ok(f));
        }
        assert!("patch".parse::<Form>().is_err());
        assert!("".parse::<OpKind>().is_err());
    }
}
