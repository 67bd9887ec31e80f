//! Crowd's entities written as Crowd writes them, in JSON and XML: users, groups, their lists,
//! attributes, memberships, events and the cookie configuration. Every entity carries `link`
//! elements to its canonical resource under the request's base URL.

use crate::codec::xml::XmlOut;
use crate::directory::Directory;
use crate::event::Event;
use crate::model::{Attributes, CrowdGroup, CrowdUser};
use crate::url::encode;
use crate::Format;
use serde_json::{json, Map, Value};

/// What a rendering needs: the base URL of the links and the format.
#[derive(Debug, Clone, Copy)]
pub struct Out<'a> {
    pub base: &'a str,
    pub format: Format,
}

/// How much of an entity to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The name and the link only (a list without `expand`).
    Minimal,
    /// Every field; attributes as a link only.
    Full,
    /// Every field and the attributes.
    WithAttributes,
}

/// Who owns an attribute list (for its links).
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    User(&'a str),
    Group(&'a str),
}

impl<'a> Out<'a> {
    fn link(&self, path_and_query: &str) -> String {
        format!("{}/{}", self.base, path_and_query)
    }

    fn user_link(&self, name: &str) -> String {
        self.link(&format!("user?username={}", encode(name)))
    }

    fn group_link(&self, name: &str) -> String {
        self.link(&format!("group?groupname={}", encode(name)))
    }

    fn attributes_link(&self, owner: Owner<'_>) -> String {
        match owner {
            Owner::User(n) => self.link(&format!("user/attribute?username={}", encode(n))),
            Owner::Group(n) => self.link(&format!("group/attribute?groupname={}", encode(n))),
        }
    }

    fn attribute_link(&self, owner: Owner<'_>, attribute: &str) -> String {
        format!(
            "{}&attributename={}",
            self.attributes_link(owner),
            encode(attribute)
        )
    }

    // ---- JSON ----

    fn json_link(href: String, rel: &str) -> Value {
        json!({"href": href, "rel": rel})
    }

    fn json_attributes(&self, owner: Owner<'_>, attributes: Option<&Attributes>) -> Value {
        let list: Vec<Value> = attributes
            .map(|a| {
                a.iter()
                    .map(|(name, values)| {
                        json!({
                            "link": Self::json_link(self.attribute_link(owner, name), "self"),
                            "name": name,
                            "values": values,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "attributes": list,
            "link": Self::json_link(self.attributes_link(owner), "self"),
        })
    }

    pub fn json_user(&self, u: &CrowdUser, detail: Detail) -> Value {
        let mut m = Map::new();
        if detail != Detail::Minimal {
            m.insert("expand".into(), json!("attributes"));
        }
        m.insert(
            "link".into(),
            Self::json_link(self.user_link(&u.name), "self"),
        );
        m.insert("name".into(), json!(u.name));
        if detail == Detail::Minimal {
            return Value::Object(m);
        }
        m.insert("first-name".into(), json!(u.first_name));
        m.insert("last-name".into(), json!(u.last_name));
        m.insert("display-name".into(), json!(u.display_name));
        m.insert("email".into(), json!(u.email));
        m.insert(
            "password".into(),
            json!({"link": Self::json_link(
                self.link(&format!("user/password?username={}", encode(&u.name))),
                "edit"
            )}),
        );
        m.insert("key".into(), json!(u.key));
        m.insert("active".into(), json!(u.active));
        let attributes = (detail == Detail::WithAttributes).then_some(&u.attributes);
        m.insert(
            "attributes".into(),
            self.json_attributes(Owner::User(&u.name), attributes),
        );
        Value::Object(m)
    }

    pub fn json_group(&self, g: &CrowdGroup, detail: Detail) -> Value {
        let mut m = Map::new();
        if detail != Detail::Minimal {
            m.insert("expand".into(), json!("attributes"));
        }
        m.insert(
            "link".into(),
            Self::json_link(self.group_link(&g.name), "self"),
        );
        m.insert("name".into(), json!(g.name));
        if detail == Detail::Minimal {
            return Value::Object(m);
        }
        m.insert("description".into(), json!(g.description));
        m.insert("type".into(), json!("GROUP"));
        m.insert("active".into(), json!(g.active));
        let attributes = (detail == Detail::WithAttributes).then_some(&g.attributes);
        m.insert(
            "attributes".into(),
            self.json_attributes(Owner::Group(&g.name), attributes),
        );
        Value::Object(m)
    }

    // ---- XML ----

    fn xml_link(x: &mut XmlOut, href: &str, rel: &str) {
        x.empty("link", &[("rel", rel), ("href", href)]);
    }

    fn xml_attributes(
        &self,
        x: &mut XmlOut,
        tag: &str,
        owner: Option<Owner<'_>>,
        attributes: Option<&Attributes>,
    ) {
        x.open(tag, &[]);
        for (name, values) in attributes.into_iter().flatten() {
            x.open("attribute", &[("name", name)]);
            if let Some(owner) = owner {
                Self::xml_link(x, &self.attribute_link(owner, name), "self");
            }
            x.open("values", &[]);
            for v in values {
                x.leaf("value", v);
            }
            x.close("values");
            x.close("attribute");
        }
        if let Some(owner) = owner {
            Self::xml_link(x, &self.attributes_link(owner), "self");
        }
        x.close(tag);
    }

    pub fn xml_user(&self, x: &mut XmlOut, tag: &str, u: &CrowdUser, detail: Detail) {
        if detail == Detail::Minimal {
            x.open(tag, &[("name", &u.name)]);
            Self::xml_link(x, &self.user_link(&u.name), "self");
            x.close(tag);
            return;
        }
        x.open(tag, &[("name", &u.name), ("expand", "attributes")]);
        Self::xml_link(x, &self.user_link(&u.name), "self");
        x.leaf("first-name", &u.first_name);
        x.leaf("last-name", &u.last_name);
        x.leaf("display-name", &u.display_name);
        x.leaf("email", &u.email);
        x.open("password", &[]);
        Self::xml_link(
            x,
            &self.link(&format!("user/password?username={}", encode(&u.name))),
            "edit",
        );
        x.close("password");
        x.leaf("key", &u.key);
        x.leaf("active", if u.active { "true" } else { "false" });
        let attributes = (detail == Detail::WithAttributes).then_some(&u.attributes);
        self.xml_attributes(x, "attributes", Some(Owner::User(&u.name)), attributes);
        x.close(tag);
    }

    pub fn xml_group(&self, x: &mut XmlOut, tag: &str, g: &CrowdGroup, detail: Detail) {
        if detail == Detail::Minimal {
            x.open(tag, &[("name", &g.name)]);
            Self::xml_link(x, &self.group_link(&g.name), "self");
            x.close(tag);
            return;
        }
        x.open(tag, &[("name", &g.name), ("expand", "attributes")]);
        Self::xml_link(x, &self.group_link(&g.name), "self");
        x.leaf("description", &g.description);
        x.leaf("type", "GROUP");
        x.leaf("active", if g.active { "true" } else { "false" });
        let attributes = (detail == Detail::WithAttributes).then_some(&g.attributes);
        self.xml_attributes(x, "attributes", Some(Owner::Group(&g.name)), attributes);
        x.close(tag);
    }

    // ---- bodies ----

    /// One user (`GET user`).
    pub fn user(&self, u: &CrowdUser, detail: Detail) -> Vec<u8> {
        match self.format {
            Format::Json => self.json_user(u, detail).to_string().into_bytes(),
            Format::Xml => {
                let mut x = XmlOut::new();
                self.xml_user(&mut x, "user", u, detail);
                x.into_bytes()
            }
        }
    }

    /// One group (`GET group`).
    pub fn group(&self, g: &CrowdGroup, detail: Detail) -> Vec<u8> {
        match self.format {
            Format::Json => self.json_group(g, detail).to_string().into_bytes(),
            Format::Xml => {
                let mut x = XmlOut::new();
                self.xml_group(&mut x, "group", g, detail);
                x.into_bytes()
            }
        }
    }

    /// A list of users: `<users expand="user">...</users>`, `{"expand":"user","users":[...]}`.
    pub fn users(&self, list: &[&CrowdUser], detail: Detail) -> Vec<u8> {
        match self.format {
            Format::Json => {
                let users: Vec<Value> = list.iter().map(|u| self.json_user(u, detail)).collect();
                json!({"expand": "user", "users": users})
                    .to_string()
                    .into_bytes()
            }
            Format::Xml => {
                let mut x = XmlOut::new();
                x.open("users", &[("expand", "user")]);
                for u in list {
                    self.xml_user(&mut x, "user", u, detail);
                }
                x.close("users");
                x.into_bytes()
            }
        }
    }

    /// A list of groups: `<groups expand="group">...</groups>`, `{"expand":"group","groups":[...]}`.
    pub fn groups(&self, list: &[&CrowdGroup], detail: Detail) -> Vec<u8> {
        match self.format {
            Format::Json => {
                let groups: Vec<Value> = list.iter().map(|g| self.json_group(g, detail)).collect();
                json!({"expand": "group", "groups": groups})
                    .to_string()
                    .into_bytes()
            }
            Format::Xml => {
                let mut x = XmlOut::new();
                x.open("groups", &[("expand", "group")]);
                for g in list {
                    self.xml_group(&mut x, "group", g, detail);
                }
                x.close("groups");
                x.into_bytes()
            }
        }
    }

    /// The attributes of a user or group (`GET user/attribute`).
    pub fn attributes(&self, owner: Owner<'_>, attributes: &Attributes) -> Vec<u8> {
        match self.format {
            Format::Json => self
                .json_attributes(owner, Some(attributes))
                .to_string()
                .into_bytes(),
            Format::Xml => {
                let mut x = XmlOut::new();
                self.xml_attributes(&mut x, "attributes", Some(owner), Some(attributes));
                x.into_bytes()
            }
        }
    }

    /// The cookie configuration (`GET config/cookie`).
    pub fn cookie_config(&self) -> Vec<u8> {
        match self.format {
            Format::Json => json!({"domain": "", "name": COOKIE_NAME, "secure": false})
                .to_string()
                .into_bytes(),
            Format::Xml => {
                let mut x = XmlOut::new();
                x.open("cookie-config", &[]);
                x.leaf("domain", "");
                x.leaf("secure", "false");
                x.leaf("name", COOKIE_NAME);
                x.close("cookie-config");
                x.into_bytes()
            }
        }
    }
}

/// The SSO cookie name Crowd announces by default.
pub const COOKIE_NAME: &str = "crowd.token_key";

/// Every membership in one answer, XML only as Crowd serves it:
/// `<memberships><membership group="g"><users><user name="u"/></users><groups><group name="c"/></groups></membership>...</memberships>`.
pub fn memberships(dir: &Directory) -> Vec<u8> {
    let mut x = XmlOut::new();
    x.buf
        .reserve(64 * dir.groups().len() + 24 * dir.membership_count());
    x.open("memberships", &[]);
    for (group, users, children) in dir.memberships() {
        x.open("membership", &[("group", &group.name)]);
        x.open("users", &[]);
        for u in users {
            x.empty("user", &[("name", &u.name)]);
        }
        x.close("users");
        x.open("groups", &[]);
        for g in children {
            x.empty("group", &[("name", &g.name)]);
        }
        x.close("groups");
        x.close("membership");
    }
    x.close("memberships");
    x.into_bytes()
}

/// `GET event`: `<events newEventToken="T" incrementalSynchronisationAvailable="true"/>`.
pub fn current_token(format: Format, token: &str) -> Vec<u8> {
    match format {
        Format::Json => {
            json!({"newEventToken": token, "incrementalSynchronisationAvailable": true})
                .to_string()
                .into_bytes()
        }
        Format::Xml => {
            let mut x = XmlOut::new();
            x.empty(
                "events",
                &[
                    ("newEventToken", token),
                    ("incrementalSynchronisationAvailable", "true"),
                ],
            );
            x.into_bytes()
        }
    }
}

/// The Crowd operation of an event.
fn operation(e: &Event) -> &'static str {
    match e {
        Event::UserCreated { .. }
        | Event::GroupCreated { .. }
        | Event::MembershipCreated { .. }
        | Event::ChildGroupCreated { .. } => "CREATED",
        Event::UserUpdated { .. } | Event::GroupUpdated { .. } => "UPDATED",
        Event::UserDeleted { .. }
        | Event::GroupDeleted { .. }
        | Event::MembershipDeleted { .. }
        | Event::ChildGroupDeleted { .. } => "DELETED",
    }
}

fn deleted_user(name: &str, key: &str) -> CrowdUser {
    CrowdUser {
        name: name.to_string(),
        key: key.to_string(),
        active: false,
        first_name: String::new(),
        last_name: String::new(),
        display_name: String::new(),
        email: String::new(),
        attributes: Attributes::new(),
    }
}

fn deleted_group(name: &str) -> CrowdGroup {
    CrowdGroup {
        name: name.to_string(),
        description: String::new(),
        active: true,
        attributes: Attributes::new(),
    }
}

/// The user an event carries, its manager attribute naming the manager's user name when the
/// directory serves the manager (the event stored the manager's key).
fn with_manager_name(dir: &Directory, user: &CrowdUser) -> CrowdUser {
    let mut user = user.clone();
    if let Some(values) = user.attributes.get_mut(crate::model::attr::MANAGER) {
        for v in values.iter_mut() {
            if let Some(m) = dir.user_by_key(v) {
                *v = m.name.clone();
            }
        }
    }
    user
}

impl Out<'_> {
    /// `GET event/{token}`: the events and the token to ask with next. User and group events
    /// carry the entity and its stored (and deleted) attributes; membership events the child and
    /// its parent group.
    pub fn events(&self, dir: &Directory, new_token: &str, events: &[(i64, Event)]) -> Vec<u8> {
        match self.format {
            Format::Json => {
                let list: Vec<Value> = events
                    .iter()
                    .map(|(_, e)| self.json_event(dir, e))
                    .collect();
                json!({"newEventToken": new_token, "events": list})
                    .to_string()
                    .into_bytes()
            }
            Format::Xml => {
                let mut x = XmlOut::new();
                x.open("events", &[("newEventToken", new_token)]);
                for (_, e) in events {
                    self.xml_event(&mut x, dir, e);
                }
                x.close("events");
                x.into_bytes()
            }
        }
    }

    fn xml_event(&self, x: &mut XmlOut, dir: &Directory, e: &Event) {
        let op = operation(e);
        match e {
            Event::UserCreated { user } | Event::UserUpdated { user, .. } => {
                let user = with_manager_name(dir, user);
                x.open("userEvent", &[]);
                x.leaf("operation", op);
                self.xml_user(x, "user", &user, Detail::Full);
                self.xml_attributes(x, "storedAttributes", None, Some(&user.attributes));
                if let Event::UserUpdated {
                    deleted_attributes, ..
                } = e
                {
                    if !deleted_attributes.is_empty() {
                        let deleted: Attributes = deleted_attributes
                            .iter()
                            .map(|a| (a.clone(), Vec::new()))
                            .collect();
                        self.xml_attributes(x, "deletedAttributes", None, Some(&deleted));
                    }
                }
                x.close("userEvent");
            }
            Event::UserDeleted { name, key } => {
                x.open("userEvent", &[]);
                x.leaf("operation", op);
                self.xml_user(x, "user", &deleted_user(name, key), Detail::Minimal);
                x.close("userEvent");
            }
            Event::GroupCreated { group } | Event::GroupUpdated { group, .. } => {
                x.open("groupEvent", &[]);
                x.leaf("operation", op);
                self.xml_group(x, "group", group, Detail::Full);
                self.xml_attributes(x, "storedAttributes", None, Some(&group.attributes));
                x.close("groupEvent");
            }
            Event::GroupDeleted { name } => {
                x.open("groupEvent", &[]);
                x.leaf("operation", op);
                self.xml_group(x, "group", &deleted_group(name), Detail::Minimal);
                x.close("groupEvent");
            }
            Event::MembershipCreated { group, user } | Event::MembershipDeleted { group, user } => {
                x.open("userMembershipEvent", &[]);
                x.leaf("operation", op);
                self.xml_user(x, "childUser", &deleted_user(user, ""), Detail::Minimal);
                x.open("parentGroups", &[("expand", "group")]);
                self.xml_group(x, "group", &deleted_group(group), Detail::Minimal);
                x.close("parentGroups");
                x.close("userMembershipEvent");
            }
            Event::ChildGroupCreated { parent, child }
            | Event::ChildGroupDeleted { parent, child } => {
                x.open("groupMembershipEvent", &[]);
                x.leaf("operation", op);
                self.xml_group(x, "group", &deleted_group(child), Detail::Minimal);
                x.open("parentGroups", &[("expand", "group")]);
                self.xml_group(x, "group", &deleted_group(parent), Detail::Minimal);
                x.close("parentGroups");
                x.empty("childGroups", &[("expand", "group")]);
                x.close("groupMembershipEvent");
            }
        }
    }

    fn json_stored(attributes: &Attributes) -> Value {
        let list: Vec<Value> = attributes
            .iter()
            .map(|(name, values)| json!({"name": name, "values": values}))
            .collect();
        json!({ "attributes": list })
    }

    /// JSON events are wrapped in an object naming their kind, as Crowd's JAXB-driven JSON
    /// writes a list of `@XmlElements`: `{"userEvent": {...}}`.
    fn json_event(&self, dir: &Directory, e: &Event) -> Value {
        let op = operation(e);
        match e {
            Event::UserCreated { user } | Event::UserUpdated { user, .. } => {
                let user = with_manager_name(dir, user);
                let mut inner = json!({
                    "operation": op,
                    "user": self.json_user(&user, Detail::Full),
                    "storedAttributes": Self::json_stored(&user.attributes),
                });
                if let Event::UserUpdated {
                    deleted_attributes, ..
                } = e
                {
                    if !deleted_attributes.is_empty() {
                        let list: Vec<Value> = deleted_attributes
                            .iter()
                            .map(|a| json!({"name": a, "values": []}))
                            .collect();
                        inner["deletedAttributes"] = json!({ "attributes": list });
                    }
                }
                json!({ "userEvent": inner })
            }
            Event::UserDeleted { name, key } => json!({"userEvent": {
                "operation": op,
                "user": self.json_user(&deleted_user(name, key), Detail::Minimal),
            }}),
            Event::GroupCreated { group } | Event::GroupUpdated { group, .. } => {
                json!({"groupEvent": {
                    "operation": op,
                    "group": self.json_group(group, Detail::Full),
                    "storedAttributes": Self::json_stored(&group.attributes),
                }})
            }
            Event::GroupDeleted { name } => json!({"groupEvent": {
                "operation": op,
                "group": self.json_group(&deleted_group(name), Detail::Minimal),
            }}),
            Event::MembershipCreated { group, user } | Event::MembershipDeleted { group, user } => {
                json!({"userMembershipEvent": {
                    "operation": op,
                    "childUser": self.json_user(&deleted_user(user, ""), Detail::Minimal),
                    "parentGroups": {"expand": "group", "groups": [self.json_group(&deleted_group(group), Detail::Minimal)]},
                }})
            }
            Event::ChildGroupCreated { parent, child }
            | Event::ChildGroupDeleted { parent, child } => {
                json!({"groupMembershipEvent": {
                    "operation": op,
                    "group": self.json_group(&deleted_group(child), Detail::Minimal),
                    "parentGroups": {"expand": "group", "groups": [self.json_group(&deleted_group(parent), Detail::Minimal)]},
                    "childGroups": {"expand": "group", "groups": []},
                }})
            }
        }
    }
}
