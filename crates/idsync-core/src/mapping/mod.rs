//! Attribute mappings: each target attribute of a user computed by an expression over the source
//! user's attributes, in Microsoft Entra's expression language ([`expr`], [`eval`]).
//!
//! A flow without mappings provisions users as the directory holds them (each source already
//! maps its own attributes onto idsync's SCIM-shaped model, and each target keeps what it can
//! hold). A mapping overrides single target attributes, applied always or only when the user is
//! created in the target.

pub mod eval;
pub mod expr;

use crate::model::{AttrValue, Email, Phone, User};
use crate::state::{DesiredState, LedgerState};
pub use eval::{EvalError, Value};
pub use expr::{Expr, ExprError};
use std::collections::{BTreeMap, BTreeSet};

/// When a mapped attribute is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Apply {
    /// On create and on every change.
    #[default]
    Always,
    /// Only when the user is created in the target; later changes leave it as it is.
    OnCreate,
}

/// One mapped target attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub target: String,
    pub expr: Expr,
    pub apply: Apply,
}

/// A flow's user mappings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    pub rules: Vec<Rule>,
}

/// Why a mapping does not compile: the attribute and what is wrong where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{attribute}: {error}")]
    Expression { attribute: String, error: ExprError },
    #[error("{0}: not a target attribute idsync can write (userName, displayName, name.givenName, name.familyName, emails[type eq \"work\"].value, active, title, department, externalId, employeeNumber, ... or an extension attribute urn:...:<name>)")]
    UnknownTarget(String),
}

/// Target attributes a mapping may set, besides extension attributes (`urn:...:name`).
const TARGETS: &[&str] = &[
    "userName",
    "displayName",
    "name.givenName",
    "name.familyName",
    "name.middleName",
    "name.formatted",
    "name.honorificPrefix",
    "name.honorificSuffix",
    "nickName",
    "userType",
    "title",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "externalId",
    "emails[type eq \"work\"].value",
    "emails[type eq \"home\"].value",
    "emails[type eq \"other\"].value",
    "phoneNumbers[type eq \"work\"].value",
    "phoneNumbers[type eq \"mobile\"].value",
    "phoneNumbers[type eq \"fax\"].value",
    "department",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "manager",
];

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:";

/// The canonical name of a target attribute, or None when idsync cannot write it.
pub fn target_attribute(name: &str) -> Option<String> {
    let plain = name.strip_prefix(ENTERPRISE).map_or(name, |rest| {
        if rest == "manager.value" {
            "manager"
        } else {
            rest
        }
    });
    if let Some(t) = TARGETS.iter().find(|t| t.eq_ignore_ascii_case(plain)) {
        return Some((*t).to_string());
    }
    // An extension attribute: urn:...:<attribute>, kept under its full name.
    if name.starts_with("urn:") && name.rsplit(':').next().is_some_and(|a| !a.is_empty()) {
        return Some(name.to_string());
    }
    None
}

impl Mapping {
    /// Compile `(target attribute, expression, apply)` triples; every error is reported.
    pub fn compile(rules: &[(String, String, Apply)]) -> Result<Mapping, Vec<MappingError>> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (target, text, apply) in rules {
            let Some(canonical) = target_attribute(target) else {
                errors.push(MappingError::UnknownTarget(target.clone()));
                continue;
            };
            match expr::parse(text).and_then(|e| eval::check(&e, true).map(|()| e)) {
                Ok(expr) => out.push(Rule {
                    target: canonical,
                    expr,
                    apply: *apply,
                }),
                Err(error) => errors.push(MappingError::Expression {
                    attribute: target.clone(),
                    error,
                }),
            }
        }
        if errors.is_empty() {
            Ok(Mapping { rules: out })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Map one user. `taken(attribute, value)` says whether a value is held by another user
    /// in the target (for SelectUniqueValue). Returns the mapped user and, per attribute, the
    /// value each rule gave (for provision-on-demand and plan explanations).
    pub fn map_user(
        &self,
        source: &User,
        taken: &mut dyn FnMut(&str, &str) -> bool,
    ) -> Result<Mapped, (String, EvalError)> {
        let mut out = source.clone();
        let mut values = Vec::new();
        for rule in &self.rules {
            let mut cx = UserContext {
                user: source,
                attribute: &rule.target,
                taken: &mut *taken,
            };
            let v = eval::eval(&rule.expr, &mut cx).map_err(|e| (rule.target.clone(), e))?;
            set(&mut out, &rule.target, &v);
            values.push((rule.target.clone(), v));
        }
        Ok((out, values))
    }

    /// For each rule that is a SelectUniqueValue, its target attribute and the candidates it
    /// would try for this user, in order (candidates that fail to evaluate are skipped).
    pub fn unique_candidates(&self, source: &User) -> Vec<(String, Vec<String>)> {
        struct Cx<'a>(&'a User);
        impl eval::Context for Cx<'_> {
            fn attribute(&self, name: &str) -> Value {
                get(self.0, name)
            }
            fn is_free(&mut self, _value: &str) -> bool {
                true
            }
        }
        let mut out = Vec::new();
        for rule in &self.rules {
            let Expr::Call { name, args, .. } = &rule.expr else {
                continue;
            };
            if !name.eq_ignore_ascii_case("SelectUniqueValue") {
                continue;
            }
            let candidates = args
                .iter()
                .flatten()
                .filter_map(|a| eval::eval(a, &mut Cx(source)).ok()?.text())
                .filter(|c| !c.is_empty())
                .collect();
            out.push((rule.target.clone(), candidates));
        }
        out
    }

    /// The attributes written only on create.
    pub fn on_create(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|r| r.apply == Apply::OnCreate)
            .map(|r| r.target.as_str())
    }
}

/// A mapped user, and the value each rule gave, in rule order.
pub type Mapped = (User, Vec<(String, Value)>);

struct UserContext<'a> {
    user: &'a User,
    attribute: &'a str,
    taken: &'a mut dyn FnMut(&str, &str) -> bool,
}

impl eval::Context for UserContext<'_> {
    fn attribute(&self, name: &str) -> Value {
        get(self.user, name)
    }
    fn is_free(&mut self, value: &str) -> bool {
        !(self.taken)(self.attribute, value)
    }
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::Str(s.clone()))
}

fn attr_value(v: &AttrValue) -> Value {
    match v {
        AttrValue::String(s) | AttrValue::DateTime(s) | AttrValue::Reference(s) => {
            Value::Str(s.clone())
        }
        AttrValue::Integer(i) => Value::Str(i.to_string()),
        AttrValue::Decimal(d) => Value::Str(d.to_string()),
        AttrValue::Boolean(b) => Value::Bool(*b),
        AttrValue::Multi(v) => Value::List(v.iter().filter_map(|x| attr_value(x).text()).collect()),
    }
}

/// A source attribute by its Microsoft Graph name or its SCIM name; anything else is looked up
/// among the user's custom attributes (extension attributes keep their source names).
pub fn get(u: &User, name: &str) -> Value {
    let typed = |emails: bool, kind: &str| -> Value {
        let v = if emails {
            u.emails
                .iter()
                .find(|e| e.kind.as_deref() == Some(kind))
                .map(|e| e.value.clone())
        } else {
            u.phone_numbers
                .iter()
                .find(|p| p.kind.as_deref() == Some(kind))
                .map(|p| p.value.clone())
        };
        v.map_or(Value::Null, Value::Str)
    };
    let key = name.strip_prefix(ENTERPRISE).unwrap_or(name);
    match key.to_ascii_lowercase().as_str() {
        "username" | "userprincipalname" => Value::Str(u.user_name.clone()),
        "objectid" | "sourceid" | "id" => Value::Str(u.source_id.clone()),
        "displayname" => opt(&u.display_name),
        "givenname" | "name.givenname" => opt(&u.name.given_name),
        "surname" | "familyname" | "name.familyname" => opt(&u.name.family_name),
        "middlename" | "name.middlename" => opt(&u.name.middle_name),
        "name.formatted" => opt(&u.name.formatted),
        "mail" | "email" => u
            .primary_email()
            .map_or(Value::Null, |e| Value::Str(e.to_string())),
        "emails" => Value::List(u.emails.iter().map(|e| e.value.clone()).collect()),
        "emails[type eq \"work\"].value" => typed(true, "work"),
        "emails[type eq \"home\"].value" => typed(true, "home"),
        "othermails" => Value::List(
            u.emails
                .iter()
                .filter(|e| !e.primary)
                .map(|e| e.value.clone())
                .collect(),
        ),
        "active" | "accountenabled" => Value::Bool(u.active),
        "issoftdeleted" => Value::Bool(!u.active),
        "jobtitle" | "title" => opt(&u.title),
        "department" => opt(&u.department),
        "employeeid" | "employeenumber" => opt(&u.employee_id),
        "companyname" | "organization" => opt(&u.organization),
        "division" => opt(&u.division),
        "costcenter" => opt(&u.cost_center),
        "manager" | "manager.value" => opt(&u.manager),
        "externalid" => opt(&u.external_id),
        "nickname" | "mailnickname" => opt(&u.nick_name),
        "usertype" => opt(&u.user_type),
        "preferredlanguage" => opt(&u.preferred_language),
        "locale" | "usagelocation" => opt(&u.locale),
        "timezone" => opt(&u.timezone),
        "mobile" | "mobilephone" | "phonenumbers[type eq \"mobile\"].value" => {
            typed(false, "mobile")
        }
        "telephonenumber" | "businessphones" | "phonenumbers[type eq \"work\"].value" => {
            typed(false, "work")
        }
        _ => u
            .custom
            .get(name)
            .or_else(|| {
                u.custom
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .map_or(Value::Null, attr_value),
    }
}

fn set_typed_email(u: &mut User, kind: &str, value: Option<String>) {
    let primary_before = u.emails.iter().any(|e| e.primary);
    u.emails.retain(|e| e.kind.as_deref() != Some(kind));
    if let Some(v) = value {
        u.emails.insert(
            0,
            Email {
                value: v,
                kind: Some(kind.to_string()),
                primary: kind == "work" || !primary_before,
                display: None,
            },
        );
        if kind == "work" {
            for e in u.emails.iter_mut().skip(1) {
                e.primary = false;
            }
        }
    }
}

fn set_typed_phone(u: &mut User, kind: &str, value: Option<String>) {
    u.phone_numbers.retain(|p| p.kind.as_deref() != Some(kind));
    if let Some(v) = value {
        u.phone_numbers.push(Phone {
            value: v,
            kind: Some(kind.to_string()),
            primary: false,
            display: None,
        });
    }
}

/// Write a value into a target attribute (canonical name from [`target_attribute`]); null
/// clears it.
pub fn set(u: &mut User, target: &str, v: &Value) {
    let s = match v {
        Value::List(l) => l.first().cloned(),
        other => other.text(),
    }
    .filter(|s| !s.is_empty());
    match target {
        "userName" => u.user_name = s.unwrap_or_default(),
        "displayName" => u.display_name = s,
        "name.givenName" => u.name.given_name = s,
        "name.familyName" => u.name.family_name = s,
        "name.middleName" => u.name.middle_name = s,
        "name.formatted" => u.name.formatted = s,
        "name.honorificPrefix" => u.name.honorific_prefix = s,
        "name.honorificSuffix" => u.name.honorific_suffix = s,
        "nickName" => u.nick_name = s,
        "userType" => u.user_type = s,
        "title" => u.title = s,
        "preferredLanguage" => u.preferred_language = s,
        "locale" => u.locale = s,
        "timezone" => u.timezone = s,
        "active" => u.active = v.truth().unwrap_or(false),
        "externalId" => u.external_id = s,
        "emails[type eq \"work\"].value" => set_typed_email(u, "work", s),
        "emails[type eq \"home\"].value" => set_typed_email(u, "home", s),
        "emails[type eq \"other\"].value" => set_typed_email(u, "other", s),
        "phoneNumbers[type eq \"work\"].value" => set_typed_phone(u, "work", s),
        "phoneNumbers[type eq \"mobile\"].value" => set_typed_phone(u, "mobile", s),
        "phoneNumbers[type eq \"fax\"].value" => set_typed_phone(u, "fax", s),
        "department" => u.department = s,
        "employeeNumber" => u.employee_id = s,
        "costCenter" => u.cost_center = s,
        "organization" => u.organization = s,
        "division" => u.division = s,
        "manager" => u.manager = s,
        extension => {
            let value = match v {
                Value::Null => None,
                Value::Bool(b) => Some(AttrValue::Boolean(*b)),
                Value::List(l) => Some(AttrValue::Multi(
                    l.iter().map(|x| AttrValue::String(x.clone())).collect(),
                )),
                Value::Str(x) if x.is_empty() => None,
                Value::Str(x) => Some(AttrValue::String(x.clone())),
            };
            match value {
                Some(val) => {
                    u.custom.insert(extension.to_string(), val);
                }
                None => {
                    u.custom.remove(extension);
                }
            }
        }
    }
}

/// A user the mapping could not map, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmapped {
    pub key: String,
    pub attribute: String,
    pub error: EvalError,
}

/// Apply a flow's mapping to its desired users. Attributes mapped `OnCreate` keep the value
/// the target got at creation (from the ledger) for users already there. SelectUniqueValue
/// treats a value as taken when another user holds it in the ledger, was given it earlier in
/// this mapping, or (for a user the target does not have yet) is in `taken_in_target`: the
/// `(attribute, lower-case value)` pairs the target said it holds. A user that cannot be mapped keeps what the ledger has (no change is sent) or,
/// when new, is left out of this run; each is returned with the reason.
pub fn apply_mapping(
    desired: &mut DesiredState,
    ledger: &LedgerState,
    mapping: &Mapping,
    taken_in_target: &BTreeSet<(String, String)>,
) -> Vec<Unmapped> {
    if mapping.is_empty() {
        return Vec::new();
    }
    let unique_attrs: BTreeSet<&str> = mapping
        .rules
        .iter()
        .filter(|r| matches!(&r.expr, Expr::Call { name, .. } if name.eq_ignore_ascii_case("SelectUniqueValue")))
        .map(|r| r.target.as_str())
        .collect();
    // Values held per unique attribute, and by whom.
    let mut held: BTreeMap<(String, String), String> = BTreeMap::new();
    for attr in &unique_attrs {
        for (key, l) in &ledger.users {
            if let Some(v) = get_target(&l.user, attr) {
                held.insert((attr.to_string(), v.to_lowercase()), key.clone());
            }
        }
    }
    let on_create: Vec<String> = mapping.on_create().map(str::to_string).collect();
    let mut failed = Vec::new();
    let keys: Vec<String> = desired.users.keys().cloned().collect();
    for key in keys {
        let Some(source) = desired.users.get(&key) else {
            continue;
        };
        let known = ledger.users.contains_key(&key);
        let mut taken = |attr: &str, value: &str| {
            let probe = (attr.to_string(), value.to_lowercase());
            held.get(&probe).is_some_and(|holder| *holder != key)
                || (!known && taken_in_target.contains(&probe))
        };
        match mapping.map_user(source, &mut taken) {
            Ok((mut mapped, _)) => {
                if let Some(l) = ledger.users.get(&key) {
                    for attr in &on_create {
                        copy_attribute(&l.user, &mut mapped, attr);
                    }
                }
                for attr in &unique_attrs {
                    if let Some(v) = get_target(&mapped, attr) {
                        held.insert((attr.to_string(), v.to_lowercase()), key.clone());
                    }
                }
                desired.users.insert(key, mapped);
            }
            Err((attribute, error)) => {
                match ledger.users.get(&key) {
                    Some(l) => {
                        desired.users.insert(key.clone(), l.user.clone());
                    }
                    None => {
                        desired.users.remove(&key);
                        for members in desired.members.values_mut() {
                            members.remove(key.as_str());
                        }
                    }
                }
                failed.push(Unmapped {
                    key,
                    attribute,
                    error,
                });
            }
        }
    }
    failed
}

/// The value of a target attribute as the target got it.
fn get_target(u: &User, attr: &str) -> Option<String> {
    get(u, attr).text()
}

fn copy_attribute(from: &User, to: &mut User, attr: &str) {
    set(to, attr, &get(from, attr));
}
