//! Every attribute of RFC 7643 §4.1 and §4.2, and strict typing (issue 15, items 1 and 6).

use idsync_scim::patch::{apply, parse_request};
use idsync_scim::resource::{user_from_scim, user_to_scim, Meta};
use idsync_scim::schema::{all_schemas, schema_json, USER_RESOURCE};
use idsync_scim::ScimType;
use serde_json::{json, Value};

/// A user with every attribute of the core schema and the enterprise extension set.
fn everything() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
                 "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": "t1meMa$heen",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                       "region": "CA", "postalCode": "91608", "country": "USA", "formatted": "100 Universal City Plaza", "primary": true}],
        "entitlements": [{"value": "Desk A", "display": "A desk"}],
        "roles": [{"value": "Tour guide", "type": "job", "primary": true}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
            "division": "Theme Park", "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    })
}

#[test]
fn every_user_attribute_is_kept_and_served_but_the_password() {
    let u = user_from_scim(&everything(), "s-1").unwrap();
    let served = user_to_scim(&u, "https://idsync/scim/v2/hr", &[], &Meta::default());
    let sent = everything();
    for (k, v) in sent.as_object().unwrap() {
        if k == "password" || k == "schemas" {
            continue;
        }
        if k.starts_with("urn:") {
            for (k2, v2) in v.as_object().unwrap() {
                let got = &served[k][k2];
                if k2 == "manager" {
                    // displayName is read-only: the server fills it, the client's is ignored.
                    assert_eq!(got["value"], v2["value"], "{k2}");
                } else {
                    assert_eq!(got, v2, "{k2}");
                }
            }
            continue;
        }
        match v {
            // Multi-valued: each element as sent (primary false where it was not given).
            Value::Array(items) => {
                for (n, item) in items.iter().enumerate() {
                    for (sk, sv) in item.as_object().unwrap() {
                        assert_eq!(&served[k][n][sk], sv, "{k}[{n}].{sk}");
                    }
                }
            }
            _ => assert_eq!(&served[k], v, "{k}"),
        }
    }
    assert!(
        served.get("password").is_none(),
        "the password is never served"
    );
    assert!(
        !serde_json::to_string(&u).unwrap().contains("t1meMa$heen"),
        "the password is not kept"
    );
    // What is served reads back the same.
    assert_eq!(user_from_scim(&served, "s-1").unwrap(), u);
}

#[test]
fn the_schemas_list_every_attribute_of_rfc_7643() {
    let names = |id: &str| -> Vec<String> {
        let s = all_schemas().into_iter().find(|s| s.id == id).unwrap();
        let v = schema_json(s, "https://idsync");
        v["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let core = names(idsync_scim::USER_SCHEMA);
    for a in [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ] {
        assert!(core.contains(&a.to_string()), "{a} missing from {core:?}");
    }
    let ent = names(idsync_scim::ENTERPRISE_SCHEMA);
    for a in [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    ] {
        assert!(ent.contains(&a.to_string()), "{a} missing from {ent:?}");
    }
    let s = all_schemas()
        .into_iter()
        .find(|s| s.id == idsync_scim::USER_SCHEMA)
        .unwrap();
    let v = schema_json(s, "");
    let pw = v["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(
        (pw["mutability"].as_str(), pw["returned"].as_str()),
        (Some("writeOnly"), Some("never"))
    );
}

fn patch(resource: &mut Value, ops: Value) -> Result<(), idsync_scim::ScimError> {
    let body =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    apply(resource, &parse_request(&body)?, &USER_RESOURCE)
}

#[test]
fn patch_reaches_the_new_attributes() {
    let u = user_from_scim(&json!({"userName": "ada"}), "s").unwrap();
    let mut v = user_to_scim(&u, "", &[], &Meta::default());
    patch(
        &mut v,
        json!([
            {"op": "add", "path": "roles", "value": [{"value": "admin", "primary": "True"}]},
            {"op": "replace", "path": "profileUrl", "value": "https://example.com/ada"},
            {"op": "add", "path": "entitlements[type eq \"licence\"].value", "value": "E5"},
            {"op": "Add", "value": {"nickName": "Countess", "ims[type eq \"xmpp\"].value": "ada@jabber.example"}},
            {"op": "replace", "path": "password", "value": "s3cret"}
        ]),
    )
    .unwrap();
    let u = user_from_scim(&v, "s").unwrap();
    assert_eq!(
        (u.roles[0].value.as_str(), u.roles[0].primary),
        ("admin", true)
    );
    assert_eq!(u.profile_url.as_deref(), Some("https://example.com/ada"));
    assert_eq!(
        (
            u.entitlements[0].value.as_str(),
            u.entitlements[0].kind.as_deref()
        ),
        ("E5", Some("licence"))
    );
    assert_eq!(u.nick_name.as_deref(), Some("Countess"));
    assert_eq!(u.ims[0].value, "ada@jabber.example");
    let mut v = user_to_scim(&u, "", &[], &Meta::default());
    assert!(v.get("password").is_none());
    patch(
        &mut v,
        json!([{"op": "remove", "path": "roles[value eq \"admin\"]"}]),
    )
    .unwrap();
    assert!(user_from_scim(&v, "s").unwrap().roles.is_empty());
    // Filters see the new attributes as served.
    let f = idsync_scim::filter::Filter::parse("ims.type eq \"xmpp\" and profileUrl pr").unwrap();
    let v = user_to_scim(&u, "", &[], &Meta::default());
    assert!(f.matches(&v, &|p| USER_RESOURCE.case_exact(p)));
}

#[test]
fn values_of_the_wrong_type_are_invalid_values() {
    let bad = |body: Value| {
        let e = user_from_scim(&body, "s").unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(ScimType::InvalidValue)),
            "{body}: {e}"
        );
        e
    };
    bad(json!({"userName": 12345}));
    bad(json!({"userName": true}));
    bad(json!({"userName": {"value": "x"}}));
    bad(json!({"userName": "ada", "emails": "a@b.c"}));
    bad(json!({"userName": "ada", "emails": ["a@b.c"]}));
    bad(json!({"userName": "ada", "active": "yes"}));
    bad(json!({"userName": "ada", "active": 1}));
    bad(json!({"userName": "ada", "displayName": ["x"]}));
    bad(json!({"userName": "ada", "name": "Ada Lovelace"}));
    bad(json!({"userName": "ada", "emails": [{"value": "a@b.c", "primary": "maybe"}]}));
    bad(json!({"userName": "ada", "roles": [{"display": "no value"}]}));
    bad(
        json!({"userName": "ada", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": 7}}),
    );
    bad(json!({"schemas": "urn:ietf:params:scim:schemas:core:2.0:User", "userName": "ada"}));
    bad(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "ada"}));
    // A wrong password is refused without being repeated.
    let e = bad(json!({"userName": "ada", "password": 123456}));
    assert!(!e.detail.contains("123456"), "{e}");
    // The same in PATCH values.
    let mut v = user_to_scim(
        &user_from_scim(&json!({"userName": "ada"}), "s").unwrap(),
        "",
        &[],
        &Meta::default(),
    );
    for ops in [
        json!([{"op": "replace", "path": "userName", "value": 12345}]),
        json!([{"op": "replace", "path": "active", "value": "yes"}]),
        json!([{"op": "add", "path": "emails", "value": "a@b.c"}]),
        json!([{"op": "replace", "value": {"title": {"x": 1}}}]),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "sometimes"}]),
    ] {
        let e = patch(&mut v, ops.clone()).unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(ScimType::InvalidValue)),
            "{ops}: {e}"
        );
    }
}

#[test]
fn what_entra_really_sends_is_still_taken() {
    // Booleans as strings in any case, the manager as a bare id, one element given as itself.
    let u = user_from_scim(
        &json!({"userName": "ada", "active": "False", "emails": [{"value": "a@b.c", "primary": "True", "type": "work"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "m-1"}}),
        "s",
    )
    .unwrap();
    assert!(!u.active && u.emails[0].primary);
    assert_eq!(u.manager.as_deref(), Some("m-1"));
    let mut v = user_to_scim(&u, "", &[], &Meta::default());
    patch(
        &mut v,
        json!([
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "Add", "path": "phoneNumbers", "value": {"value": "+1 555", "type": "mobile"}},
            {"op": "Replace", "value": {"active": "False", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m-2"}}
        ]),
    )
    .unwrap();
    let u = user_from_scim(&v, "s").unwrap();
    assert!(!u.active);
    assert_eq!(u.phone_numbers[0].value, "+1 555");
    assert_eq!(u.manager.as_deref(), Some("m-2"));
}

#[test]
fn date_times_in_filters_compare_as_instants() {
    let g = json!({"meta": {"lastModified": "2026-12-04T20:09:56Z"}});
    let m = |f: &str| {
        idsync_scim::filter::Filter::parse(f)
            .unwrap()
            .matches(&g, &|_| false)
    };
    // As text, "...56Z" > "...56.5Z": as instants it is earlier.
    assert!(!m("meta.lastModified gt \"2026-12-04T20:09:56.5Z\""));
    assert!(m("meta.lastModified lt \"2026-12-04T20:09:56.5Z\""));
    assert!(m("meta.lastModified gt \"2026-12-04T21:09:55+01:00\""));
    assert!(m("meta.lastModified eq \"2026-12-04T20:09:56.000Z\""));
    assert!(m("meta.lastModified ge \"2026-12-04T20:09:56Z\""));
    assert!(m("meta.lastModified sw \"2026-12-04\""));
}

#[test]
fn what_a_scim_service_returns_is_read_leniently() {
    // idsync as a client: a service's loose types do not fail a read.
    let served = json!({
        "id": "t-1", "userName": "ada@example.com", "active": "true",
        "emails": [{"value": "ada@example.com", "primary": "yes", "display": "Ada"}, {"type": "home"}],
        "roles": [{"display": "no value"}, {"value": "admin"}],
        "phoneNumbers": {"value": 5551234},
        "title": 42,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": 701984, "manager": "m-1"},
        "somethingElse": {"x": 1}
    });
    let u = user_from_scim(
        &idsync_scim::resource::known_only(&served, &USER_RESOURCE),
        "t-1",
    )
    .unwrap();
    assert_eq!(u.emails.len(), 1);
    assert!(u.active && !u.emails[0].primary);
    assert_eq!(u.roles.len(), 1);
    assert_eq!(u.phone_numbers[0].value, "5551234");
    assert_eq!(u.title.as_deref(), Some("42"));
    assert_eq!(u.employee_id.as_deref(), Some("701984"));
    assert_eq!(u.manager.as_deref(), Some("m-1"));
}
