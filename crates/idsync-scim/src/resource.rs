//! idsync's model in SCIM JSON and back.

use crate::error::ScimError;
use crate::patch::normalize;
use crate::schema::{GROUP_RESOURCE, USER_RESOURCE};
use idsync_core::{
    Address, AttrValue, Email, Group, MemberKind, MemberRef, MultiValue, Name, Phone, User,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A member of a group as SCIM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member: MemberRef,
    pub display: Option<String>,
}

/// Resource metadata the store keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// RFC 3339 times.
    pub created: Option<String>,
    pub last_modified: Option<String>,
    /// The ETag, without W/ and quotes.
    pub version: Option<String>,
}

fn put(o: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.insert(k.to_string(), Value::String(v.clone()));
    }
}

fn meta_json(kind: &str, location: String, meta: &Meta) -> Value {
    let mut m = Map::new();
    m.insert("resourceType".into(), Value::String(kind.into()));
    put(&mut m, "created", &meta.created);
    put(&mut m, "lastModified", &meta.last_modified);
    m.insert("location".into(), Value::String(location));
    if let Some(v) = &meta.version {
        m.insert("version".into(), Value::String(format!("W/\"{v}\"")));
    }
    Value::Object(m)
}

/// A user as a SCIM resource. `id` is the user's source id; `groups` lists the groups it is a
/// direct member of (id, display name).
pub fn user_to_scim(u: &User, base: &str, groups: &[(String, String)], meta: &Meta) -> Value {
    let mut o = Map::new();
    let mut schemas = vec![Value::String(crate::USER_SCHEMA.into())];
    o.insert("id".into(), Value::String(u.source_id.clone()));
    put(&mut o, "externalId", &u.external_id);
    o.insert("userName".into(), Value::String(u.user_name.clone()));
    if !u.name.is_empty() {
        let mut n = Map::new();
        put(&mut n, "formatted", &u.name.formatted);
        put(&mut n, "familyName", &u.name.family_name);
        put(&mut n, "givenName", &u.name.given_name);
        put(&mut n, "middleName", &u.name.middle_name);
        put(&mut n, "honorificPrefix", &u.name.honorific_prefix);
        put(&mut n, "honorificSuffix", &u.name.honorific_suffix);
        o.insert("name".into(), Value::Object(n));
    }
    put(&mut o, "displayName", &u.display_name);
    put(&mut o, "nickName", &u.nick_name);
    put(&mut o, "profileUrl", &u.profile_url);
    put(&mut o, "title", &u.title);
    put(&mut o, "userType", &u.user_type);
    put(&mut o, "preferredLanguage", &u.preferred_language);
    put(&mut o, "locale", &u.locale);
    put(&mut o, "timezone", &u.timezone);
    o.insert("active".into(), Value::Bool(u.active));
    let typed = |value: &str, kind: &Option<String>, primary: bool, display: &Option<String>| {
        let mut e = Map::new();
        e.insert("value".into(), Value::String(value.into()));
        put(&mut e, "display", display);
        put(&mut e, "type", kind);
        e.insert("primary".into(), Value::Bool(primary));
        Value::Object(e)
    };
    if !u.emails.is_empty() {
        o.insert(
            "emails".into(),
            Value::Array(
                u.emails
                    .iter()
                    .map(|e| typed(&e.value, &e.kind, e.primary, &e.display))
                    .collect(),
            ),
        );
    }
    if !u.phone_numbers.is_empty() {
        o.insert(
            "phoneNumbers".into(),
            Value::Array(
                u.phone_numbers
                    .iter()
                    .map(|p| typed(&p.value, &p.kind, p.primary, &p.display))
                    .collect(),
            ),
        );
    }
    put_multi(&mut o, "ims", &u.ims);
    put_multi(&mut o, "photos", &u.photos);
    if !u.addresses.is_empty() {
        let list = u
            .addresses
            .iter()
            .map(|a| {
                let mut m = Map::new();
                put(&mut m, "formatted", &a.formatted);
                put(&mut m, "streetAddress", &a.street_address);
                put(&mut m, "locality", &a.locality);
                put(&mut m, "region", &a.region);
                put(&mut m, "postalCode", &a.postal_code);
                put(&mut m, "country", &a.country);
                put(&mut m, "type", &a.kind);
                m.insert("primary".into(), Value::Bool(a.primary));
                Value::Object(m)
            })
            .collect();
        o.insert("addresses".into(), Value::Array(list));
    }
    if !groups.is_empty() {
        let list = groups
            .iter()
            .map(|(id, display)| json!({"value": id, "$ref": format!("{base}/Groups/{id}"), "display": display, "type": "direct"}))
            .collect();
        o.insert("groups".into(), Value::Array(list));
    }
    put_multi(&mut o, "entitlements", &u.entitlements);
    put_multi(&mut o, "roles", &u.roles);
    put_multi(&mut o, "x509Certificates", &u.x509_certificates);
    let mut ent = Map::new();
    put(&mut ent, "employeeNumber", &u.employee_id);
    put(&mut ent, "costCenter", &u.cost_center);
    put(&mut ent, "organization", &u.organization);
    put(&mut ent, "division", &u.division);
    put(&mut ent, "department", &u.department);
    if let Some(m) = &u.manager {
        ent.insert(
            "manager".into(),
            json!({"value": m, "$ref": format!("{base}/Users/{m}")}),
        );
    }
    if !ent.is_empty() {
        schemas.push(Value::String(crate::ENTERPRISE_SCHEMA.into()));
        o.insert(crate::ENTERPRISE_SCHEMA.into(), Value::Object(ent));
    }
    // Extension attributes a flow maps (`urn:<schema>:<attribute>`), each under its schema.
    for (key, value) in &u.custom {
        let Some((schema, attr)) = key.rsplit_once(':') else {
            continue;
        };
        if !schema.starts_with("urn:") || attr.is_empty() || schema == crate::ENTERPRISE_SCHEMA {
            continue;
        }
        if !o.contains_key(schema) {
            schemas.push(Value::String(schema.to_string()));
            o.insert(schema.to_string(), Value::Object(Map::new()));
        }
        if let Some(Value::Object(ext)) = o.get_mut(schema) {
            ext.insert(attr.to_string(), attr_json(value));
        }
    }
    o.insert("schemas".into(), Value::Array(schemas));
    o.insert(
        "meta".into(),
        meta_json("User", format!("{base}/Users/{}", u.source_id), meta),
    );
    Value::Object(o)
}

/// A multi-valued attribute with the generic sub-attributes, unless it is empty.
fn put_multi(o: &mut Map<String, Value>, k: &str, list: &[MultiValue]) {
    if list.is_empty() {
        return;
    }
    let items = list
        .iter()
        .map(|m| {
            let mut e = Map::new();
            e.insert("value".into(), Value::String(m.value.clone()));
            put(&mut e, "display", &m.display);
            put(&mut e, "type", &m.kind);
            e.insert("primary".into(), Value::Bool(m.primary));
            Value::Object(e)
        })
        .collect();
    o.insert(k.to_string(), Value::Array(items));
}

/// The elements of a multi-valued attribute with the generic sub-attributes; each must have
/// a value.
fn multi_values(o: &Map<String, Value>, k: &str) -> Result<Vec<MultiValue>, ScimError> {
    objects(o, k)
        .map(|e| {
            Ok(MultiValue {
                value: text(e, "value").ok_or_else(|| {
                    ScimError::invalid_value(format!("{k}: every element needs a value"))
                })?,
                display: text(e, "display"),
                kind: text(e, "type"),
                primary: flag(e, "primary"),
            })
        })
        .collect()
}

fn attr_json(v: &AttrValue) -> Value {
    match v {
        AttrValue::String(s) | AttrValue::DateTime(s) | AttrValue::Reference(s) => {
            Value::String(s.clone())
        }
        AttrValue::Integer(i) => json!(i),
        AttrValue::Decimal(d) => json!(d),
        AttrValue::Boolean(b) => Value::Bool(*b),
        AttrValue::Multi(items) => Value::Array(items.iter().map(attr_json).collect()),
    }
}

fn json_attr(v: &Value) -> Option<AttrValue> {
    Some(match v {
        Value::String(s) => AttrValue::String(s.clone()),
        Value::Bool(b) => AttrValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AttrValue::Integer(i),
            None => AttrValue::Decimal(n.as_f64()?),
        },
        Value::Array(items) => AttrValue::Multi(items.iter().filter_map(json_attr).collect()),
        Value::Null | Value::Object(_) => return None,
    })
}

/// The extension attributes of a SCIM resource (every `urn:` schema object but the core and
/// enterprise ones), as `urn:<schema>:<attribute>` keys: what [`user_to_scim`] writes from a
/// user's custom attributes.
pub fn extension_attributes(body: &Value) -> BTreeMap<String, AttrValue> {
    let mut out = BTreeMap::new();
    let Some(o) = body.as_object() else {
        return out;
    };
    for (schema, v) in o {
        if !schema.starts_with("urn:")
            || schema == crate::ENTERPRISE_SCHEMA
            || schema == crate::USER_SCHEMA
        {
            continue;
        }
        if let Value::Object(attrs) = v {
            for (attr, value) in attrs {
                if let Some(a) = json_attr(value) {
                    out.insert(format!("{schema}:{attr}"), a);
                }
            }
        }
    }
    out
}

fn text(o: &Map<String, Value>, k: &str) -> Option<String> {
    o.get(k).and_then(Value::as_str).map(str::to_string)
}

fn flag(o: &Map<String, Value>, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn objects<'a>(o: &'a Map<String, Value>, k: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    o.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// A user from a SCIM body (POST, PUT) or a patched resource. Attribute names and values are
/// normalized against the schema first; `userName` is required.
pub fn user_from_scim(body: &Value, source_id: &str) -> Result<User, ScimError> {
    let o = normalize(body, &USER_RESOURCE)?;
    let user_name = text(&o, "userName")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    let mut u = User::new(source_id, user_name);
    u.external_id = text(&o, "externalId");
    if let Some(Value::Object(n)) = o.get("name") {
        u.name = Name {
            formatted: text(n, "formatted"),
            family_name: text(n, "familyName"),
            given_name: text(n, "givenName"),
            middle_name: text(n, "middleName"),
            honorific_prefix: text(n, "honorificPrefix"),
            honorific_suffix: text(n, "honorificSuffix"),
        };
    }
    u.display_name = text(&o, "displayName");
    u.nick_name = text(&o, "nickName");
    u.profile_url = text(&o, "profileUrl");
    u.title = text(&o, "title");
    u.user_type = text(&o, "userType");
    u.preferred_language = text(&o, "preferredLanguage");
    u.locale = text(&o, "locale");
    u.timezone = text(&o, "timezone");
    u.active = o.get("active").and_then(Value::as_bool).unwrap_or(true);
    u.emails = objects(&o, "emails")
        .filter_map(|e| {
            Some(Email {
                value: text(e, "value")?,
                kind: text(e, "type"),
                primary: flag(e, "primary"),
                display: text(e, "display"),
            })
        })
        .collect();
    u.phone_numbers = objects(&o, "phoneNumbers")
        .filter_map(|e| {
            Some(Phone {
                value: text(e, "value")?,
                kind: text(e, "type"),
                primary: flag(e, "primary"),
                display: text(e, "display"),
            })
        })
        .collect();
    u.addresses = objects(&o, "addresses")
        .map(|a| Address {
            formatted: text(a, "formatted"),
            street_address: text(a, "streetAddress"),
            locality: text(a, "locality"),
            region: text(a, "region"),
            postal_code: text(a, "postalCode"),
            country: text(a, "country"),
            kind: text(a, "type"),
            primary: flag(a, "primary"),
        })
        .collect();
    u.ims = multi_values(&o, "ims")?;
    u.photos = multi_values(&o, "photos")?;
    u.entitlements = multi_values(&o, "entitlements")?;
    u.roles = multi_values(&o, "roles")?;
    u.x509_certificates = multi_values(&o, "x509Certificates")?;
    // `password` was checked by `normalize` and is not kept (RFC 7643 §4.1.1: write-only).
    if let Some(Value::Object(e)) = o.get(crate::ENTERPRISE_SCHEMA) {
        u.employee_id = text(e, "employeeNumber");
        u.cost_center = text(e, "costCenter");
        u.organization = text(e, "organization");
        u.division = text(e, "division");
        u.department = text(e, "department");
        u.manager = match e.get("manager") {
            Some(Value::Object(m)) => text(m, "value").filter(|v| !v.is_empty()),
            // Entra sometimes sends the manager's id as a plain string.
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
    }
    Ok(u)
}

/// A group as a SCIM resource.
pub fn group_to_scim(g: &Group, base: &str, members: Option<&[MemberView]>, meta: &Meta) -> Value {
    let mut o = Map::new();
    o.insert("schemas".into(), json!([crate::GROUP_SCHEMA]));
    o.insert("id".into(), Value::String(g.source_id.clone()));
    put(&mut o, "externalId", &g.external_id);
    o.insert("displayName".into(), Value::String(g.display_name.clone()));
    if let Some(members) = members {
        if !members.is_empty() {
            let list = members
                .iter()
                .map(|m| {
                    let (kind, ep) = match m.member.kind {
                        MemberKind::User => ("User", "Users"),
                        MemberKind::Group => ("Group", "Groups"),
                    };
                    let mut v = json!({"value": m.member.id, "$ref": format!("{base}/{ep}/{}", m.member.id), "type": kind});
                    if let (Some(d), Some(obj)) = (&m.display, v.as_object_mut()) {
                        obj.insert("display".into(), Value::String(d.clone()));
                    }
                    v
                })
                .collect();
            o.insert("members".into(), Value::Array(list));
        }
    }
    o.insert(
        "meta".into(),
        meta_json("Group", format!("{base}/Groups/{}", g.source_id), meta),
    );
    Value::Object(o)
}

/// A member named in a request: its id, and its type when the client gave one.
pub type RequestedMember = (String, Option<MemberKind>);

/// A group and its members (ids with their type, when given) from a SCIM body.
pub fn group_from_scim(
    body: &Value,
    source_id: &str,
) -> Result<(Group, Vec<RequestedMember>), ScimError> {
    let o = normalize(body, &GROUP_RESOURCE)?;
    let name = text(&o, "displayName")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    let mut g = Group::new(source_id, name);
    g.external_id = text(&o, "externalId");
    let members = objects(&o, "members")
        .filter_map(|m| {
            let id = text(m, "value")?;
            let kind = match text(m, "type").map(|t| t.to_ascii_lowercase()).as_deref() {
                Some("user") => Some(MemberKind::User),
                Some("group") => Some(MemberKind::Group),
                _ => None,
            };
            Some((id, kind))
        })
        .collect();
    Ok((g, members))
}

/// Keep only the attributes asked for (`attributes`) or drop those refused
/// (`excludedAttributes`), per RFC 7644 §3.4.2.5. `id` and `schemas` always stay.
pub fn project(resource: &mut Value, attributes: &[String], excluded: &[String]) {
    let Some(o) = resource.as_object_mut() else {
        return;
    };
    let always = |k: &str| k == "id" || k == "schemas" || k == "meta";
    let top = |p: &str| -> String {
        let p = p.trim();
        let last = p.rsplit(':').next().unwrap_or(p);
        last.split('.').next().unwrap_or(last).to_ascii_lowercase()
    };
    if !attributes.is_empty() {
        let keep: Vec<String> = attributes.iter().map(|a| top(a)).collect();
        o.retain(|k, v| {
            if always(k) {
                return true;
            }
            if k.starts_with("urn:") {
                if let Value::Object(inner) = v {
                    inner.retain(|ik, _| keep.contains(&ik.to_ascii_lowercase()));
                    return !inner.is_empty();
                }
            }
            keep.contains(&k.to_ascii_lowercase())
        });
    }
    if !excluded.is_empty() {
        let drop: Vec<String> = excluded.iter().map(|a| top(a)).collect();
        o.retain(|k, v| {
            if always(k) {
                return true;
            }
            if k.starts_with("urn:") {
                if let Value::Object(inner) = v {
                    inner.retain(|ik, _| !drop.contains(&ik.to_ascii_lowercase()));
                    return !inner.is_empty();
                }
            }
            !drop.contains(&k.to_ascii_lowercase())
        });
    }
}

/// What a service returned, reduced to the attributes idsync's schemas know and to values of
/// their types (a client reading another server's resources must not fail on attributes it
/// does not keep, nor on a server's loose types: a number where a string belongs is taken as
/// its text, an element without a value is left out). Strict typing is for requests idsync
/// answers, not for what it reads.
pub fn known_only(body: &Value, schema: &crate::schema::ResourceSchema) -> Value {
    use crate::schema::{Attr, AttrType};
    fn object(attrs: &'static [Attr], o: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, val) in o {
            if let Some(a) = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(k)) {
                if let Some(v) = lenient(a, val) {
                    out.insert(k.clone(), v);
                }
            }
        }
        out
    }
    fn single(a: &'static Attr, v: &Value) -> Option<Value> {
        let has_value = a.sub.iter().any(|s| s.name == "value");
        match (a.ty, v) {
            (_, Value::Null) => None,
            (AttrType::Complex, Value::Object(o)) => {
                let o = object(a.sub, o);
                (!(a.multi && has_value) || o.contains_key("value")).then_some(Value::Object(o))
            }
            (AttrType::Complex, Value::String(_) | Value::Number(_)) if has_value => {
                let mut o = Map::new();
                o.insert("value".into(), Value::String(text_of(v)));
                Some(Value::Object(o))
            }
            (AttrType::Complex, _) => None,
            (AttrType::Boolean, Value::Bool(_)) => Some(v.clone()),
            (AttrType::Boolean, Value::String(b))
                if b.trim().eq_ignore_ascii_case("true")
                    || b.trim().eq_ignore_ascii_case("false") =>
            {
                Some(v.clone())
            }
            (AttrType::Integer | AttrType::Decimal, Value::Number(_) | Value::String(_)) => {
                Some(v.clone())
            }
            (
                AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary,
                Value::String(_) | Value::Number(_) | Value::Bool(_),
            ) => Some(Value::String(text_of(v))),
            _ => None,
        }
    }
    fn text_of(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    fn lenient(a: &'static Attr, v: &Value) -> Option<Value> {
        if !a.multi {
            return single(a, v);
        }
        let items: Vec<Value> = match v {
            Value::Array(items) => items.iter().filter_map(|i| single(a, i)).collect(),
            other => single(a, other).into_iter().collect(),
        };
        Some(Value::Array(items))
    }
    let Value::Object(o) = body else {
        return body.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        if let Some(ext) = schema
            .extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(k))
        {
            if let Value::Object(inner) = v {
                out.insert(k.clone(), Value::Object(object(ext.attrs, inner)));
            }
        } else if let Some(a) = schema
            .core
            .attrs
            .iter()
            .chain(crate::schema::COMMON.iter())
            .find(|a| a.name.eq_ignore_ascii_case(k))
        {
            if let Some(v) = lenient(a, v) {
                out.insert(k.clone(), v);
            }
        }
    }
    Value::Object(out)
}

/// The body idsync sends to create or replace a user in a SCIM service: the resource without
/// what the service owns (`id`, `meta`, `groups`).
pub fn user_body(u: &User) -> Value {
    let mut v = user_to_scim(u, "", &[], &Meta::default());
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "meta", "groups"] {
            o.remove(k);
        }
    }
    v
}

/// The PATCH operations that turn `before` into `after` (top-level attributes and extension
/// attributes, each replaced or removed as a whole; `name` by its sub-attributes, as Entra sends
/// it, since some services take `name.givenName` but fail on a whole `name`): the smallest
/// change a service will apply the same way whatever it does with multi-valued attributes.
pub fn user_patch_ops(before: &User, after: &User) -> Vec<Value> {
    let (b, a) = (user_body(before), user_body(after));
    let (Some(b), Some(a)) = (b.as_object(), a.as_object()) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    let mut diff = |path: String, old: Option<&Value>, new: Option<&Value>| match (old, new) {
        (_, Some(n)) if old != Some(n) => {
            ops.push(json!({"op": "replace", "path": path, "value": n}))
        }
        (Some(_), None) => ops.push(json!({"op": "remove", "path": path})),
        _ => {}
    };
    let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    for k in keys {
        if k == "schemas" {
            continue;
        }
        if k.starts_with("urn:") || k == "name" {
            let empty = Map::new();
            let bo = b.get(k).and_then(Value::as_object).unwrap_or(&empty);
            let ao = a.get(k).and_then(Value::as_object).unwrap_or(&empty);
            let sub: std::collections::BTreeSet<&String> = bo.keys().chain(ao.keys()).collect();
            let sep = if k == "name" { '.' } else { ':' };
            for s in sub {
                diff(format!("{k}{sep}{s}"), bo.get(s), ao.get(s));
            }
        } else {
            diff(k.clone(), b.get(k), a.get(k));
        }
    }
    ops
}
