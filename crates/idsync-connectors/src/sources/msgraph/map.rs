//! Graph users and groups into idsync's model.

use super::{s, GraphSource, UserKey, UserNameFrom};
use idsync_core::{Address, AttrValue, Email, Group, MemberKind, Name, Phone, User};
use serde_json::Value;
use std::collections::HashMap;

impl GraphSource {
    /// Map a Graph user to idsync's model; `None` when it has no usable key or userName.
    pub fn map_user(&self, v: &Value) -> Option<User> {
        let id = s(v, "id")?;
        let identities: Vec<&Value> = v
            .get("identities")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let identity = |kind: &str| {
            identities
                .iter()
                .find(|i| i.get("signInType").and_then(Value::as_str) == Some(kind))
                .copied()
        };
        let key = match &self.cfg.key {
            UserKey::ObjectId => id.clone(),
            UserKey::Identity(kind) => {
                let i = identity(kind)?;
                format!("{}/{}", s(i, "issuer")?, s(i, "issuerAssignedId")?)
            }
        };
        let email_identity = identity("emailAddress").and_then(|i| s(i, "issuerAssignedId"));
        let mail = s(v, "mail").or_else(|| email_identity.clone());
        let user_name = match &self.cfg.user_name {
            UserNameFrom::UserPrincipalName => s(v, "userPrincipalName"),
            UserNameFrom::Mail => mail.clone(),
            UserNameFrom::Identity(kind) => identity(kind).and_then(|i| s(i, "issuerAssignedId")),
        }?;
        let mut u = User::new(key, user_name);
        u.external_id = s(v, "mailNickname");
        u.name = Name {
            given_name: s(v, "givenName"),
            family_name: s(v, "surname"),
            formatted: s(v, "displayName"),
            ..Name::default()
        };
        u.display_name = s(v, "displayName");
        if let Some(m) = mail {
            u.emails.push(Email {
                value: m,
                kind: Some("work".into()),
                primary: true,
                display: None,
            });
        }
        if let Some(p) = v
            .get("businessPhones")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
        {
            u.phone_numbers.push(Phone {
                value: p.to_string(),
                kind: Some("work".into()),
                primary: true,
                display: None,
            });
        }
        if let Some(m) = s(v, "mobilePhone") {
            let primary = u.phone_numbers.is_empty();
            u.phone_numbers.push(Phone {
                value: m,
                kind: Some("mobile".into()),
                primary,
                display: None,
            });
        }
        let address = Address {
            street_address: s(v, "streetAddress"),
            locality: s(v, "city"),
            region: s(v, "state"),
            postal_code: s(v, "postalCode"),
            country: s(v, "country"),
            kind: Some("work".into()),
            ..Address::default()
        };
        if address
            != (Address {
                kind: Some("work".into()),
                ..Address::default()
            })
        {
            u.addresses.push(address);
        }
        u.user_type = s(v, "userType");
        u.active = v
            .get("accountEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        u.title = s(v, "jobTitle");
        u.department = s(v, "department");
        u.employee_id = s(v, "employeeId");
        u.organization = s(v, "companyName");
        u.preferred_language = s(v, "preferredLanguage");
        u.manager = v.get("manager").and_then(|m| s(m, "id")).or_else(|| {
            v.get("manager@delta")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|m| m.get("@removed").is_none()))
                .and_then(|m| s(m, "id"))
        });
        if let Some(ext) = v
            .get("onPremisesExtensionAttributes")
            .and_then(Value::as_object)
        {
            for (k, val) in ext {
                if let Some(x) = val.as_str() {
                    u.custom.insert(k.clone(), AttrValue::String(x.to_string()));
                }
            }
        }
        for e in &self.cfg.extensions {
            let short = e.rsplit_once('_').map_or(e.as_str(), |(_, n)| n);
            match v.get(e) {
                Some(Value::String(x)) => {
                    u.custom
                        .insert(short.to_string(), AttrValue::String(x.clone()));
                }
                Some(Value::Bool(b)) => {
                    u.custom.insert(short.to_string(), AttrValue::Boolean(*b));
                }
                Some(Value::Number(n)) => {
                    if let Some(i) = n.as_i64() {
                        u.custom.insert(short.to_string(), AttrValue::Integer(i));
                    }
                }
                _ => {}
            }
        }
        Some(u)
    }

    pub(super) fn map_group(v: &Value) -> Option<Group> {
        let mut g = Group::new(s(v, "id")?, s(v, "displayName")?);
        g.description = s(v, "description");
        Some(g)
    }

    pub(super) fn member_kind(v: &Value) -> Option<MemberKind> {
        match v.get("@odata.type").and_then(Value::as_str) {
            Some("#microsoft.graph.user") => Some(MemberKind::User),
            Some("#microsoft.graph.group") => Some(MemberKind::Group),
            _ => None,
        }
    }

    /// Does a delta item carry every property we select?
    pub(super) fn complete(v: &Value, props: &str) -> bool {
        props
            .split(',')
            .filter(|p| *p != "manager" && *p != "identities")
            .all(|p| v.get(p).is_some())
    }

    /// Map Graph users, one per object id (a listing that returns an object twice keeps the
    /// later copy); with identity keys, also the object id → key map that memberships (which
    /// name object ids) are translated through. Managers are translated here: a manager is
    /// named by the key it is stored under, and one that has no key in this read names nobody.
    pub(super) fn map_users<'a>(
        &self,
        values: impl Iterator<Item = &'a Value>,
    ) -> (Vec<User>, HashMap<String, String>) {
        let mut users: Vec<User> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        let mut keys = HashMap::new();
        for v in values {
            if let (Some(u), Some(id)) = (self.map_user(v), s(v, "id")) {
                if u.source_id != id {
                    keys.insert(id.clone(), u.source_id.clone());
                }
                match at.get(&id) {
                    Some(i) => users[*i] = u,
                    None => {
                        at.insert(id, users.len());
                        users.push(u);
                    }
                }
            }
        }
        if self.cfg.key != UserKey::ObjectId {
            for u in &mut users {
                u.manager = u.manager.take().and_then(|m| keys.get(&m).cloned());
            }
        }
        (users, keys)
    }
}
