//! The SCIM protocol crate: filters, PATCH, resources.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_scim::filter::{AttrPath, Filter};
use idsync_scim::patch::{apply, parse_request};
use idsync_scim::resource::{user_from_scim, user_to_scim, Meta};
use idsync_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use idsync_scim::ScimType;
use proptest::prelude::*;

#[path = "scim/attributes.rs"]
mod attributes;
#[path = "scim/patch_work.rs"]
mod patch_work;
use serde_json::{json, Value};

fn ada() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223",
        "externalId": "AdaExt",
        "userName": "Ada@Example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "title": "Countess",
        "active": true,
        "emails": [
            {"value": "ada@example.com", "type": "work", "primary": true},
            {"value": "ada@home.org", "type": "home"}
        ],
        "meta": {"lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "manager": {"value": "26118915"}}
    })
}

fn m(f: &str) -> bool {
    Filter::parse(f)
        .unwrap()
        .matches(&ada(), &|p| USER_RESOURCE.case_exact(p))
}

#[test]
fn filters_of_rfc_7644_evaluate() {
    let cases = [
        (r#"userName eq "ada@example.com""#, true), // userName is caseExact false
        (r#"USERNAME EQ "ADA@EXAMPLE.COM""#, true),
        (r#"externalId eq "adaext""#, false), // externalId is caseExact
        (r#"externalId eq "AdaExt""#, true),
        (r#"name.familyName co "love""#, true),
        (r#"userName sw "ada""#, true),
        (r#"userName ew ".com""#, true),
        (r#"title pr"#, true),
        (r#"nickName pr"#, false),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true),
        (r#"title pr and userType eq "Employee""#, false),
        (r#"title pr or userType eq "Intern""#, true),
        (
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            false,
        ),
        (
            r#"emails co "example.com" or emails.value co "example.org""#,
            true,
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"]"#,
            true,
        ),
        (
            r#"emails[type eq "home" and value co "@example.com"]"#,
            false,
        ),
        (
            r#"emails[type eq "work" and value co "@example.com"] or emails[type eq "xmpp" and value co "@foo.com"]"#,
            true,
        ),
        (r#"not (userName eq "ada@example.com")"#, false),
        (r#"not(title pr) or active eq true"#, true),
        (r#"active eq "True""#, true),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
            true,
        ),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "ada""#,
            true,
        ),
        (r#"title ne "Countess""#, false),
        (r#"nickName eq null"#, true),
        // and binds tighter than or
        (r#"title eq "x" and title eq "y" or active eq true"#, true),
        (r#"active eq true or title eq "x" and title eq "y""#, true),
    ];
    for (f, want) in cases {
        assert_eq!(m(f), want, "{f}");
    }
}

#[test]
fn bad_filters_are_invalid_filter_errors() {
    for f in [
        "",
        "userName",
        r#"userName eq"#,
        r#"userName zz "x""#,
        r#"userName eq "unterminated"#,
        r#"(userName eq "x""#,
        r#"emails[type eq "work""#,
        r#"userName eq x"#,
        r#"userName eq "a" and"#,
        r#"userName eq "a" )"#,
        &"(".repeat(100),
        &"not(".repeat(100),
    ] {
        let e = Filter::parse(f).unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(ScimType::InvalidFilter)),
            "{f}: {e}"
        );
    }
}

proptest! {
    #[test]
    fn the_filter_parser_never_panics(s in ".{0,200}") {
        let _ = Filter::parse(&s);
    }

    #[test]
    fn the_patch_parser_never_panics(path in ".{0,80}", op in "(add|Remove|REPLACE|x)") {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": op, "path": path, "value": "v"}]});
        if let Ok(ops) = parse_request(&body) {
            let mut r = ada();
            let _ = apply(&mut r, &ops, &USER_RESOURCE);
        }
    }
}

fn patch(resource: &mut Value, ops: Value) -> Result<(), idsync_scim::ScimError> {
    let body =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let ops = parse_request(&body)?;
    apply(resource, &ops, &USER_RESOURCE)
}

#[test]
fn entra_patch_forms() {
    let mut r = ada();
    // Op names in any case, booleans as strings, a path-less value keyed by attribute paths.
    patch(&mut r, json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "replace", "value": {
            "displayName": "Ada King",
            "name.givenName": "Augusta",
            "emails[type eq \"work\"].value": "augusta@example.com",
            "phoneNumbers[type eq \"mobile\"].value": "+44 7700 900000",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Analytical Engines",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "babbage-1"}
        }},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "London"}
    ])).unwrap();
    assert_eq!(r["active"], json!(false));
    assert_eq!(r["displayName"], "Ada King");
    assert_eq!(r["name"]["givenName"], "Augusta");
    assert_eq!(r["name"]["familyName"], "Lovelace");
    assert_eq!(
        r["emails"][0],
        json!({"value": "augusta@example.com", "type": "work", "primary": true})
    );
    assert_eq!(r["emails"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["phoneNumbers"],
        json!([{"type": "mobile", "value": "+44 7700 900000"}])
    );
    assert_eq!(
        r["addresses"],
        json!([{"type": "work", "locality": "London"}])
    );
    let ent = &r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(ent["department"], "Analytical Engines");
    assert_eq!(ent["manager"]["value"], "babbage-1");
    assert_eq!(ent["employeeNumber"], "701984");

    // Remove by value filter, and remove a sub-attribute.
    patch(&mut r, json!([
        {"op": "remove", "path": "emails[type eq \"home\"]"},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}
    ])).unwrap();
    assert_eq!(r["emails"].as_array().unwrap().len(), 1);
    assert!(r["name"].get("givenName").is_none());
    assert!(
        r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
            .get("manager")
            .is_none()
    );
}

#[test]
fn group_member_patches_both_ways() {
    let mut g = json!({"id": "g1", "displayName": "eng", "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]});
    let run = |g: &mut Value, ops: Value| {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        apply(g, &parse_request(&body).unwrap(), &GROUP_RESOURCE)
    };
    run(
        &mut g,
        json!([{"op": "Add", "path": "members", "value": [{"value": "u4"}, {"value": "u1"}]}]),
    )
    .unwrap();
    assert_eq!(
        g["members"].as_array().unwrap().len(),
        4,
        "adding an existing member adds nothing"
    );
    run(
        &mut g,
        json!([{"op": "Remove", "path": "members[value eq \"u2\"]"}]),
    )
    .unwrap();
    run(
        &mut g,
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u3"}]}]),
    )
    .unwrap();
    let ids: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["u1", "u4"]);
    run(
        &mut g,
        json!([{"op": "replace", "path": "members", "value": []}]),
    )
    .unwrap();
    assert!(g.get("members").is_none());
}

#[test]
fn patch_errors_carry_the_right_scim_type() {
    let mut r = ada();
    let before = r.clone();
    let cases = [
        (json!([{"op": "remove"}]), ScimType::NoTarget),
        (
            json!([{"op": "jump", "path": "title", "value": "x"}]),
            ScimType::InvalidSyntax,
        ),
        (
            json!([{"op": "replace", "path": "shoeSize", "value": 44}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "other"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "perhaps"}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "emails[type eq", "value": 1}]),
            ScimType::InvalidPath,
        ),
    ];
    for (ops, want) in cases {
        let e = patch(&mut r, ops.clone()).unwrap_err();
        assert_eq!(e.scim_type, Some(want), "{ops}: {e}");
        assert_eq!(r, before, "a failed PATCH changes nothing");
    }
    let e = parse_request(&json!({"Operations": []})).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
}

#[test]
fn users_round_trip_through_scim_json() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "ada",
        "UserName": "ada@example.com",
        "active": "True",
        "name": {"givenName": "Ada", "FamilyName": "Lovelace", "formatted": "Ada Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": "true"}],
        "phoneNumbers": [{"value": "+44 1", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "12 St James's Square", "locality": "London", "country": "GB"}],
        "id": "ignored: read-only",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "1", "department": "Maths", "manager": {"value": "m-1"}}
    });
    let u = user_from_scim(&body, "src-1").unwrap();
    assert_eq!(u.source_id, "src-1");
    assert_eq!(u.user_name, "ada@example.com");
    assert!(u.active && u.emails[0].primary);
    assert_eq!(u.name.family_name.as_deref(), Some("Lovelace"));
    assert_eq!(u.addresses[0].locality.as_deref(), Some("London"));
    assert_eq!(
        (
            u.employee_id.as_deref(),
            u.department.as_deref(),
            u.manager.as_deref()
        ),
        (Some("1"), Some("Maths"), Some("m-1"))
    );
    let back = user_to_scim(
        &u,
        "https://idsync/scim/v2/hr",
        &[("g1".into(), "eng".into())],
        &Meta::default(),
    );
    assert_eq!(back["id"], "src-1");
    assert_eq!(back["groups"][0]["value"], "g1");
    assert_eq!(
        back["meta"]["location"],
        "https://idsync/scim/v2/hr/Users/src-1"
    );
    assert_eq!(
        user_from_scim(&back, "src-1").unwrap(),
        u,
        "what we serve reads back the same"
    );
    let e = user_from_scim(&json!({"userName": "x", "favouriteColour": "red"}), "s").unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    let e = user_from_scim(&json!({"displayName": "x"}), "s").unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn attribute_paths_with_urns() {
    let p =
        AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
            .unwrap();
    assert_eq!(
        p.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(
        (p.name.as_str(), p.sub.as_deref()),
        ("manager", Some("value"))
    );
    assert!(USER_RESOURCE.resolve(&p).is_some());
    assert!(AttrPath::parse("9lives").is_err());
}

#[test]
fn member_only_patches_are_recognised_and_nothing_else() {
    use idsync_scim::patch::member_changes;
    let ops = |v: serde_json::Value| {
        idsync_scim::patch::parse_request(&serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": v
        }))
        .unwrap()
    };
    let got = member_changes(&ops(serde_json::json!([
        {"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]},
        {"op": "Remove", "path": "members[value eq \"u1\"]"},
        {"op": "remove", "path": "members", "value": [{"value": "g9"}]}
    ])));
    assert_eq!(
        got,
        Some(vec![
            (true, "u1".to_string()),
            (true, "u2".to_string()),
            (false, "u1".to_string()),
            (false, "g9".to_string())
        ])
    );
    for other in [
        serde_json::json!([{"op": "replace", "path": "displayName", "value": "x"}]),
        serde_json::json!([{"op": "remove", "path": "members"}]),
        serde_json::json!([{"op": "replace", "path": "members", "value": [{"value": "u1"}]}]),
        serde_json::json!([{"op": "add", "value": {"members": [{"value": "u1"}]}}]),
        serde_json::json!([{"op": "remove", "path": "members[display eq \"x\"]"}]),
    ] {
        assert_eq!(member_changes(&ops(other.clone())), None, "{other}");
    }
}

#[test]
fn extension_attributes_a_flow_maps_travel_under_their_schema() {
    use idsync_core::{AttrValue, User};
    use idsync_scim::resource::{extension_attributes, user_body, user_patch_ops};
    const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
    let mut u = User::new("s1", "ada@example.com");
    u.custom.insert(
        format!("{ACME}:costCenterCode"),
        AttrValue::String("CC-42".into()),
    );
    u.custom.insert(
        format!("{ACME}:badges"),
        AttrValue::Multi(vec![AttrValue::String("a".into())]),
    );
    // A source's own custom attribute (no schema) is not sent.
    u.custom
        .insert("extension_abc_x".into(), AttrValue::String("no".into()));
    let body = user_body(&u);
    assert_eq!(body[ACME]["costCenterCode"], "CC-42");
    assert_eq!(body[ACME]["badges"], json!(["a"]));
    assert!(body["schemas"].as_array().unwrap().contains(&json!(ACME)));
    assert!(body.get("extension_abc_x").is_none());
    let back = extension_attributes(&body);
    assert_eq!(back.len(), 2);
    assert_eq!(
        back[&format!("{ACME}:costCenterCode")],
        AttrValue::String("CC-42".into())
    );
    let mut after = u.clone();
    after.custom.insert(
        format!("{ACME}:costCenterCode"),
        AttrValue::String("CC-7".into()),
    );
    let ops = user_patch_ops(&u, &after);
    assert_eq!(
        ops,
        vec![json!({"op": "replace", "path": format!("{ACME}:costCenterCode"), "value": "CC-7"})]
    );
}

/// A name change goes out by its sub-attributes (`name.givenName`), as Entra sends it: some
/// services (django-scim2) fail on a PATCH of the whole `name` but take its sub-attributes.
#[test]
fn a_name_change_is_patched_by_its_sub_attributes() {
    use idsync_core::User;
    use idsync_scim::resource::user_patch_ops;
    let mut u = User::new("s1", "ada@example.com");
    u.name.given_name = Some("Ada".into());
    u.name.family_name = Some("Lovelace".into());
    let mut after = u.clone();
    after.name.given_name = Some("Augusta".into());
    after.name.family_name = None;
    assert_eq!(
        user_patch_ops(&u, &after),
        vec![
            json!({"op": "remove", "path": "name.familyName"}),
            json!({"op": "replace", "path": "name.givenName", "value": "Augusta"}),
        ]
    );
}
