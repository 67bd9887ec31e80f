//! The identity model, shaped on SCIM core User/Group and the enterprise extension (RFC 7643).
//!
//! Identity is the *source id* (the identity provider's own immutable object id), never a name:
//! a rename in the source keeps the same object.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A shared object key (a source id). Member sets and member operations hold the same key many
/// times over; sharing one allocation keeps a 1M-membership plan small.
pub type Key = Arc<str>;

/// A typed value of a custom attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum AttrValue {
    String(String),
    Integer(i64),
    Decimal(f64),
    Boolean(bool),
    /// An RFC 3339 date-time, kept as written by the source.
    DateTime(String),
    /// A reference to another object (a source id).
    Reference(String),
    /// A multi-valued attribute.
    Multi(Vec<AttrValue>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Name {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honorific_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honorific_suffix: Option<String>,
}

impl Name {
    pub fn is_empty(&self) -> bool {
        self == &Name::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Email {
    pub value: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub primary: bool,
    /// A human-readable name for the value (RFC 7643 §2.4), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    pub value: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub primary: bool,
    /// A human-readable name for the value (RFC 7643 §2.4), kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub primary: bool,
}

/// An element of a multi-valued attribute with SCIM's generic sub-attributes (RFC 7643 §2.4):
/// ims, photos, entitlements, roles, x509Certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MultiValue {
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub primary: bool,
}

fn yes() -> bool {
    true
}

/// A user. `source_id` is the key; `id` is idsync's internal id (assigned by the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub source_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Name::is_empty")]
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<Email>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<Phone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    /// The manager's source id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ims: Vec<MultiValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<MultiValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<MultiValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<MultiValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x509_certificates: Vec<MultiValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, AttrValue>,
}

impl User {
    /// A user with only the required attributes set.
    pub fn new(source_id: impl Into<String>, user_name: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            source_id: source_id.into(),
            external_id: None,
            user_name: user_name.into(),
            name: Name::default(),
            display_name: None,
            emails: Vec::new(),
            phone_numbers: Vec::new(),
            addresses: Vec::new(),
            nick_name: None,
            user_type: None,
            active: true,
            title: None,
            department: None,
            employee_id: None,
            organization: None,
            division: None,
            cost_center: None,
            manager: None,
            preferred_language: None,
            locale: None,
            timezone: None,
            profile_url: None,
            ims: Vec::new(),
            photos: Vec::new(),
            entitlements: Vec::new(),
            roles: Vec::new(),
            x509_certificates: Vec::new(),
            custom: BTreeMap::new(),
        }
    }

    /// The primary email, or the first one.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }

    /// Names of the attributes whose values differ between `self` and `other`
    /// (the internal `id` is not an attribute and is ignored).
    pub fn changed_attributes(&self, other: &User) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! cmp {
            ($($field:ident => $name:literal),* $(,)?) => {
                $( if self.$field != other.$field { out.push($name); } )*
            };
        }
        cmp!(
            source_id => "sourceId",
            external_id => "externalId",
            user_name => "userName",
            name => "name",
            display_name => "displayName",
            emails => "emails",
            phone_numbers => "phoneNumbers",
            addresses => "addresses",
            nick_name => "nickName",
            user_type => "userType",
            active => "active",
            title => "title",
            department => "department",
            employee_id => "employeeId",
            organization => "organization",
            division => "division",
            cost_center => "costCenter",
            manager => "manager",
            preferred_language => "preferredLanguage",
            locale => "locale",
            timezone => "timezone",
            profile_url => "profileUrl",
            ims => "ims",
            photos => "photos",
            entitlements => "entitlements",
            roles => "roles",
            x509_certificates => "x509Certificates",
            custom => "custom",
        );
        out
    }

    /// Equal in every attribute (ignoring the internal id).
    pub fn same_attributes(&self, other: &User) -> bool {
        self.changed_attributes(other).is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub source_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Group {
    pub fn new(source_id: impl Into<String>, display_name: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            source_id: source_id.into(),
            external_id: None,
            display_name: display_name.into(),
            description: None,
        }
    }

    pub fn changed_attributes(&self, other: &Group) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.source_id != other.source_id {
            out.push("sourceId");
        }
        if self.external_id != other.external_id {
            out.push("externalId");
        }
        if self.display_name != other.display_name {
            out.push("displayName");
        }
        if self.description != other.description {
            out.push("description");
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "user",
            MemberKind::Group => "group",
        }
    }
}

/// A member of a group: a user or a group, by source id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberRef {
    pub kind: MemberKind,
    pub id: String,
}

impl MemberRef {
    pub fn user(id: impl Into<String>) -> Self {
        Self {
            kind: MemberKind::User,
            id: id.into(),
        }
    }
    pub fn group(id: impl Into<String>) -> Self {
        Self {
            kind: MemberKind::Group,
            id: id.into(),
        }
    }
}

/// A direct membership: `member` is a direct member of the group `group` (source ids).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub group: String,
    pub member: MemberRef,
}

/// A whole directory at one moment: what a full read of a source yields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub memberships: Vec<Membership>,
}
