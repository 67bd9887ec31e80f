//! Crowd's entities and the conversion from idsync's model.
//!
//! A user: `name` (idsync's `userName`), `key` (the ledger key: stable across renames, which is
//! what the products match renamed users by), `active`, `first-name`, `last-name`,
//! `display-name`, `email`, and multi-valued string attributes. A group: `name` (the group's
//! display name), `description`, `active` (always true: idsync serves no inactive groups),
//! type `GROUP`, attributes.

use idsync_core::{AttrValue, Group, User};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Multi-valued string attributes, by name.
pub type Attributes = BTreeMap<String, Vec<String>>;

/// A Crowd user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrowdUser {
    pub name: String,
    pub key: String,
    pub active: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub attributes: Attributes,
}

/// A Crowd group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrowdGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub active: bool,
    #[serde(default)]
    pub attributes: Attributes,
}

/// The attribute names idsync's own user attributes are served under.
pub mod attr {
    pub const DEPARTMENT: &str = "department";
    pub const TITLE: &str = "title";
    /// The manager's user name (the manager's ledger key when the manager is not served).
    pub const MANAGER: &str = "manager";
    pub const EMPLOYEE_NUMBER: &str = "employeeNumber";
    pub const PHONE: &str = "phone";
    pub const MOBILE: &str = "mobile";
    pub const ORGANIZATION: &str = "organization";
    pub const DIVISION: &str = "division";
    pub const COST_CENTER: &str = "costCenter";
    pub const USER_TYPE: &str = "userType";
    pub const LOCALE: &str = "locale";
    pub const TIMEZONE: &str = "timezone";
    pub const PREFERRED_LANGUAGE: &str = "preferredLanguage";
    pub const NICK_NAME: &str = "nickName";
    pub const EXTERNAL_ID: &str = "externalId";
}

impl CrowdUser {
    /// The Crowd user for idsync's `user`, served under ledger key `key`. `manager_name` is the
    /// manager's user name when the manager is served too (else the attribute carries the
    /// manager's key as the source gave it).
    pub fn from_user(key: &str, user: &User, manager_name: Option<&str>) -> CrowdUser {
        let first_name = user.name.given_name.clone().unwrap_or_default();
        let last_name = user.name.family_name.clone().unwrap_or_default();
        let display_name = user
            .display_name
            .clone()
            .or_else(|| user.name.formatted.clone())
            .unwrap_or_else(|| {
                let joined = format!("{first_name} {last_name}");
                let joined = joined.trim();
                if joined.is_empty() {
                    user.user_name.clone()
                } else {
                    joined.to_string()
                }
            });
        let mut attributes = Attributes::new();
        let mut put = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                if !v.is_empty() {
                    attributes.insert(name.to_string(), vec![v.clone()]);
                }
            }
        };
        put(attr::DEPARTMENT, &user.department);
        put(attr::TITLE, &user.title);
        put(attr::EMPLOYEE_NUMBER, &user.employee_id);
        put(attr::ORGANIZATION, &user.organization);
        put(attr::DIVISION, &user.division);
        put(attr::COST_CENTER, &user.cost_center);
        put(attr::USER_TYPE, &user.user_type);
        put(attr::LOCALE, &user.locale);
        put(attr::TIMEZONE, &user.timezone);
        put(attr::PREFERRED_LANGUAGE, &user.preferred_language);
        put(attr::NICK_NAME, &user.nick_name);
        put(attr::EXTERNAL_ID, &user.external_id);
        let manager = manager_name
            .map(str::to_string)
            .or_else(|| user.manager.clone());
        put(attr::MANAGER, &manager);
        // Phones: the mobile ones under `mobile`, the others under `phone` (primary first).
        let mut phones: Vec<&idsync_core::Phone> = user.phone_numbers.iter().collect();
        phones.sort_by_key(|p| !p.primary);
        for p in phones {
            let name = if p.kind.as_deref() == Some("mobile") {
                attr::MOBILE
            } else {
                attr::PHONE
            };
            attributes
                .entry(name.to_string())
                .or_default()
                .push(p.value.clone());
        }
        // Every extension attribute the mapping produced, under its own name; idsync's own
        // names above win a clash.
        for (name, value) in &user.custom {
            if attributes.contains_key(name) {
                continue;
            }
            let mut values = Vec::new();
            flatten(value, &mut values);
            if !values.is_empty() {
                attributes.insert(name.clone(), values);
            }
        }
        CrowdUser {
            name: user.user_name.clone(),
            key: key.to_string(),
            active: user.active,
            first_name,
            last_name,
            display_name,
            email: user.primary_email().unwrap_or_default().to_string(),
            attributes,
        }
    }
}

fn flatten(value: &AttrValue, out: &mut Vec<String>) {
    match value {
        AttrValue::String(s) | AttrValue::DateTime(s) | AttrValue::Reference(s) => {
            out.push(s.clone())
        }
        AttrValue::Integer(i) => out.push(i.to_string()),
        AttrValue::Decimal(d) => out.push(d.to_string()),
        AttrValue::Boolean(b) => out.push(b.to_string()),
        AttrValue::Multi(values) => {
            for v in values {
                flatten(v, out);
            }
        }
    }
}

impl CrowdGroup {
    /// The Crowd group for idsync's `group`.
    pub fn from_group(group: &Group) -> CrowdGroup {
        CrowdGroup {
            name: group.display_name.clone(),
            description: group.description.clone().unwrap_or_default(),
            active: true,
            attributes: Attributes::new(),
        }
    }
}
