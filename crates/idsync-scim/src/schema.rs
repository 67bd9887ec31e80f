//! The schemas idsync serves and understands: core User, core Group and the enterprise User
//! extension (RFC 7643 §4, §8.7), every attribute of each. `password` is write-only: accepted,
//! never returned, never stored.

use crate::filter::AttrPath;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi: bool,
    pub case_exact: bool,
    pub required: bool,
    /// readOnly, readWrite, immutable, writeOnly
    pub mutability: &'static str,
    /// always, never, default, request
    pub returned: &'static str,
    /// none, server, global
    pub uniqueness: &'static str,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: &'static [Attr],
}

const fn attr(name: &'static str, ty: AttrType) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        case_exact: false,
        required: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        canonical: &[],
        reference_types: &[],
        sub: &[],
    }
}

const fn s(name: &'static str) -> Attr {
    attr(name, AttrType::String)
}

const fn complex(name: &'static str, sub: &'static [Attr]) -> Attr {
    Attr {
        sub,
        ..attr(name, AttrType::Complex)
    }
}

const fn multi(a: Attr) -> Attr {
    Attr { multi: true, ..a }
}

const fn read_only(a: Attr) -> Attr {
    Attr {
        mutability: "readOnly",
        ..a
    }
}

const TYPE_PRIMARY_VALUE: [Attr; 4] = [
    s("value"),
    s("display"),
    Attr {
        canonical: &["work", "home", "other"],
        ..s("type")
    },
    attr("primary", AttrType::Boolean),
];

const PHONE_SUB: [Attr; 4] = [
    s("value"),
    s("display"),
    Attr {
        canonical: &["work", "home", "mobile", "fax", "pager", "other"],
        ..s("type")
    },
    attr("primary", AttrType::Boolean),
];

/// The sub-attributes of a multi-valued attribute (RFC 7643 §2.4) with a string value and
/// these canonical types.
const fn generic_sub(canonical: &'static [&'static str]) -> [Attr; 4] {
    [
        s("value"),
        s("display"),
        Attr {
            canonical,
            ..s("type")
        },
        attr("primary", AttrType::Boolean),
    ]
}

const IMS_SUB: [Attr; 4] =
    generic_sub(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]);

const PHOTOS_SUB: [Attr; 4] = [
    Attr {
        reference_types: &["external"],
        ..attr("value", AttrType::Reference)
    },
    s("display"),
    Attr {
        canonical: &["photo", "thumbnail"],
        ..s("type")
    },
    attr("primary", AttrType::Boolean),
];

const ENTITLEMENTS_SUB: [Attr; 4] = generic_sub(&[]);

const ROLES_SUB: [Attr; 4] = generic_sub(&[]);

const X509_SUB: [Attr; 4] = [
    attr("value", AttrType::Binary),
    s("display"),
    s("type"),
    attr("primary", AttrType::Boolean),
];

const ADDRESS_SUB: [Attr; 8] = [
    s("formatted"),
    s("streetAddress"),
    s("locality"),
    s("region"),
    s("postalCode"),
    s("country"),
    Attr {
        canonical: &["work", "home", "other"],
        ..s("type")
    },
    attr("primary", AttrType::Boolean),
];

const NAME_SUB: [Attr; 6] = [
    s("formatted"),
    s("familyName"),
    s("givenName"),
    s("middleName"),
    s("honorificPrefix"),
    s("honorificSuffix"),
];

const USER_GROUPS_SUB: [Attr; 4] = [
    read_only(s("value")),
    read_only(Attr {
        reference_types: &["Group"],
        ..attr("$ref", AttrType::Reference)
    }),
    read_only(s("display")),
    read_only(Attr {
        canonical: &["direct", "indirect"],
        ..s("type")
    }),
];

const MEMBERS_SUB: [Attr; 4] = [
    Attr {
        mutability: "immutable",
        case_exact: true,
        ..s("value")
    },
    Attr {
        mutability: "immutable",
        reference_types: &["User", "Group"],
        ..attr("$ref", AttrType::Reference)
    },
    read_only(s("display")),
    Attr {
        mutability: "immutable",
        canonical: &["User", "Group"],
        ..s("type")
    },
];

const MANAGER_SUB: [Attr; 3] = [
    Attr {
        case_exact: true,
        ..s("value")
    },
    Attr {
        reference_types: &["User"],
        ..attr("$ref", AttrType::Reference)
    },
    read_only(s("displayName")),
];

pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attrs: &'static [Attr],
}

pub static USER: Schema = Schema {
    id: crate::USER_SCHEMA,
    name: "User",
    description: "User Account",
    attrs: &[
        Attr {
            required: true,
            uniqueness: "server",
            ..s("userName")
        },
        complex("name", &NAME_SUB),
        s("displayName"),
        s("nickName"),
        Attr {
            reference_types: &["external"],
            ..attr("profileUrl", AttrType::Reference)
        },
        s("title"),
        s("userType"),
        s("preferredLanguage"),
        s("locale"),
        s("timezone"),
        // idsync keeps an active state for every user (absent on create means true), so the
        // attribute cannot be removed.
        Attr {
            required: true,
            ..attr("active", AttrType::Boolean)
        },
        // Write-only and never returned (RFC 7643 §4.1.1); idsync keeps no password (no target
        // takes one), so a password given is dropped once the request is checked.
        Attr {
            mutability: "writeOnly",
            returned: "never",
            ..s("password")
        },
        multi(complex("emails", &TYPE_PRIMARY_VALUE)),
        multi(complex("phoneNumbers", &PHONE_SUB)),
        multi(complex("ims", &IMS_SUB)),
        multi(complex("photos", &PHOTOS_SUB)),
        multi(complex("addresses", &ADDRESS_SUB)),
        read_only(multi(complex("groups", &USER_GROUPS_SUB))),
        multi(complex("entitlements", &ENTITLEMENTS_SUB)),
        multi(complex("roles", &ROLES_SUB)),
        multi(complex("x509Certificates", &X509_SUB)),
    ],
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: crate::ENTERPRISE_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attrs: &[
        s("employeeNumber"),
        s("costCenter"),
        s("organization"),
        s("division"),
        s("department"),
        complex("manager", &MANAGER_SUB),
    ],
};

pub static GROUP: Schema = Schema {
    id: crate::GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attrs: &[
        Attr {
            required: true,
            ..s("displayName")
        },
        multi(complex("members", &MEMBERS_SUB)),
    ],
};

/// Attributes every resource has (RFC 7643 §3.1).
pub static COMMON: [Attr; 2] = [
    Attr {
        case_exact: true,
        mutability: "readOnly",
        returned: "always",
        uniqueness: "server",
        ..s("id")
    },
    Attr {
        case_exact: true,
        ..s("externalId")
    },
];

const META_SUB: [Attr; 5] = [
    read_only(Attr {
        case_exact: true,
        ..s("resourceType")
    }),
    read_only(attr("created", AttrType::DateTime)),
    read_only(attr("lastModified", AttrType::DateTime)),
    read_only(Attr {
        case_exact: true,
        ..attr("location", AttrType::Reference)
    }),
    read_only(Attr {
        case_exact: true,
        ..s("version")
    }),
];
pub(crate) static META: Attr = read_only(complex("meta", &META_SUB));

/// A resource type: its core schema and its extensions.
pub struct ResourceSchema {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

pub static USER_RESOURCE: ResourceSchema = ResourceSchema {
    name: "User",
    endpoint: "/Users",
    core: &USER,
    extensions: &[&ENTERPRISE_USER],
};

pub static GROUP_RESOURCE: ResourceSchema = ResourceSchema {
    name: "Group",
    endpoint: "/Groups",
    core: &GROUP,
    extensions: &[],
};

/// Where an attribute path leads.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// The schema URN whose object holds the attribute (`None`: the core schema, top level).
    pub extension: Option<&'static str>,
    pub attr: &'static Attr,
    pub sub: Option<&'static Attr>,
}

impl ResourceSchema {
    /// Resolve an attribute path (names case-insensitive, optional schema URN).
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved> {
        let (extension, attrs): (Option<&'static str>, &'static [Attr]) = match &path.urn {
            None => (None, self.core.attrs),
            Some(urn) if urn.eq_ignore_ascii_case(self.core.id) => (None, self.core.attrs),
            Some(urn) => {
                let ext = self
                    .extensions
                    .iter()
                    .find(|e| e.id.eq_ignore_ascii_case(urn))?;
                (Some(ext.id), ext.attrs)
            }
        };
        let find = |list: &'static [Attr]| {
            list.iter()
                .find(|a| a.name.eq_ignore_ascii_case(&path.name))
        };
        let attr = match extension {
            Some(_) => find(attrs)?,
            None => find(attrs)
                .or_else(|| find(&COMMON))
                .or_else(|| META.name.eq_ignore_ascii_case(&path.name).then_some(&META))?,
        };
        let sub = match &path.sub {
            None => None,
            Some(sub) => Some(attr.sub.iter().find(|a| a.name.eq_ignore_ascii_case(sub))?),
        };
        Some(Resolved {
            extension,
            attr,
            sub,
        })
    }

    /// Is this attribute compared case-sensitively?
    pub fn case_exact(&self, path: &AttrPath) -> bool {
        self.resolve(path)
            .map(|r| r.sub.unwrap_or(r.attr).case_exact)
            .unwrap_or(false)
    }

    /// The `/ResourceTypes` entry.
    pub fn resource_type_json(&self, base: &str) -> Value {
        json!({
            "schemas": [crate::RESOURCE_TYPE_SCHEMA],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.core.description,
            "schema": self.core.id,
            "schemaExtensions": self.extensions.iter().map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", self.name)},
        })
    }
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": a.name,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability,
        "returned": a.returned,
        "uniqueness": a.uniqueness,
    });
    if let Some(o) = v.as_object_mut() {
        if !a.canonical.is_empty() {
            o.insert("canonicalValues".into(), json!(a.canonical));
        }
        if !a.reference_types.is_empty() {
            o.insert("referenceTypes".into(), json!(a.reference_types));
        }
        if !a.sub.is_empty() {
            o.insert(
                "subAttributes".into(),
                Value::Array(a.sub.iter().map(attr_json).collect()),
            );
        }
    }
    v
}

/// A `/Schemas` entry.
pub fn schema_json(schema: &Schema, base: &str) -> Value {
    json!({
        "schemas": [crate::SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", schema.id)},
    })
}

/// Every schema served.
pub fn all_schemas() -> [&'static Schema; 3] {
    [&USER, &GROUP, &ENTERPRISE_USER]
}
