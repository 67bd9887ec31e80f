//! The handler, request by request, in JSON and XML.

use crate::support::{call, get_json, get_xml, small, user, BASE};
use idsync_core::AttrValue;
use idsync_crowd::{Directory, Event, EventLog, Format};
use serde_json::json;

#[test]
fn handler_answers_a_user_as_crowd_writes_it_in_json() {
    let (_, mut ada) = user("k-ada", "ada");
    ada.department = Some("Engineering".into());
    ada.title = Some("Countess".into());
    ada.employee_id = Some("1815".into());
    ada.display_name = Some("Ada Lovelace".into());
    ada.custom
        .insert("costCentre".into(), AttrValue::String("CC-42".into()));
    let dir = Directory::build(vec![("k-ada".into(), ada)], vec![], vec![], vec![]);
    let (status, v) = get_json(
        &dir,
        "user",
        &[("username", "ADA"), ("expand", "attributes")],
    );
    assert_eq!(status, 200);
    assert_eq!(v["name"], "ada");
    assert_eq!(v["first-name"], "ada-first");
    assert_eq!(v["last-name"], "ada-last");
    assert_eq!(v["display-name"], "Ada Lovelace");
    assert_eq!(v["email"], "ada@example.com");
    assert_eq!(v["active"], true);
    assert_eq!(v["key"], "k-ada");
    assert_eq!(v["expand"], "attributes");
    assert_eq!(
        v["link"],
        json!({"href": format!("{BASE}/user?username=ada"), "rel": "self"})
    );
    assert_eq!(
        v["password"]["link"]["href"],
        format!("{BASE}/user/password?username=ada")
    );
    let attrs = v["attributes"]["attributes"].as_array().unwrap();
    let get = |n: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == n)
            .map(|a| a["values"].clone())
    };
    assert_eq!(get("department"), Some(json!(["Engineering"])));
    assert_eq!(get("title"), Some(json!(["Countess"])));
    assert_eq!(get("employeeNumber"), Some(json!(["1815"])));
    assert_eq!(get("costCentre"), Some(json!(["CC-42"])));
    // Without expand, the attributes are a link only.
    let (_, v) = get_json(&dir, "user", &[("username", "ada")]);
    assert_eq!(v["attributes"]["attributes"], json!([]));
    assert_eq!(
        v["attributes"]["link"]["href"],
        format!("{BASE}/user/attribute?username=ada")
    );
}

#[test]
fn handler_answers_a_user_in_xml_with_crowds_element_names() {
    let dir = small();
    let (status, body) = get_xml(
        &dir,
        "user",
        &[("username", "bob"), ("expand", "attributes")],
    );
    assert_eq!(status, 200);
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><user name=\"Bob\" expand=\"attributes\">"), "{body}");
    for part in [
        "<first-name>Bob-first</first-name>",
        "<last-name>Bob-last</last-name>",
        "<email>Bob@example.com</email>",
        "<key>k-bob</key>",
        "<active>false</active>",
        &format!("<link rel=\"self\" href=\"{BASE}/user?username=Bob\"/>"),
    ] {
        assert!(body.contains(part), "{part} missing from {body}");
    }
}

#[test]
fn handler_answers_unknown_users_and_groups_with_crowds_reasons() {
    let dir = small();
    let (status, v) = get_json(&dir, "user", &[("username", "nobody")]);
    assert_eq!(status, 404);
    assert_eq!(
        v,
        json!({"reason": "USER_NOT_FOUND", "message": "User <nobody> does not exist"})
    );
    let (status, body) = get_xml(&dir, "group", &[("groupname", "nogroup")]);
    assert_eq!(status, 404);
    assert!(body.ends_with("<error><reason>GROUP_NOT_FOUND</reason><message>Group &lt;nogroup&gt; does not exist</message></error>"), "{body}");
    let (status, v) = get_json(&dir, "user", &[]);
    assert_eq!(status, 400);
    assert_eq!(v["reason"], "ILLEGAL_ARGUMENT");
    let (status, v) = get_json(
        &dir,
        "group/user/direct",
        &[("groupname", "Admins"), ("username", "carol")],
    );
    assert_eq!(status, 404);
    assert_eq!(v["reason"], "MEMBERSHIP_NOT_FOUND");
}

#[test]
fn handler_lists_memberships_with_paging_and_expand() {
    let dir = small();
    let (status, v) = get_json(&dir, "group/user/direct", &[("groupname", "jira-users")]);
    assert_eq!(status, 200);
    assert_eq!(v["expand"], "user");
    let names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "Bob"]);
    // Not expanded: name and link only.
    assert!(v["users"][0].get("email").is_none());
    let (_, v) = get_json(
        &dir,
        "group/user/nested",
        &[
            ("groupname", "jira-users"),
            ("expand", "user"),
            ("start-index", "1"),
            ("max-results", "5"),
        ],
    );
    assert_eq!(v["users"].as_array().unwrap().len(), 1);
    assert_eq!(v["users"][0]["name"], "Bob");
    assert_eq!(v["users"][0]["active"], false);
    let (_, v) = get_json(&dir, "user/group/nested", &[("username", "alice")]);
    let names: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Admins", "jira-users"]);
    // One membership asked for: the entity, or MEMBERSHIP_NOT_FOUND.
    let (status, v) = get_json(
        &dir,
        "user/group/direct",
        &[("username", "alice"), ("groupname", "admins")],
    );
    assert_eq!(status, 200);
    assert_eq!(v["name"], "Admins");
    // A flat directory has no child or parent groups.
    let (status, v) = get_json(&dir, "group/child-group/nested", &[("groupname", "Admins")]);
    assert_eq!((status, v["groups"].clone()), (200, json!([])));
    let (status, v) = get_json(
        &dir,
        "group/parent-group/direct",
        &[("groupname", "Admins")],
    );
    assert_eq!((status, v["groups"].clone()), (200, json!([])));
    // Paging past the end is an empty page; a huge max-results is clamped, not refused.
    let (status, v) = get_json(
        &dir,
        "group/user/direct",
        &[("groupname", "jira-users"), ("start-index", "99")],
    );
    assert_eq!((status, v["users"].clone()), (200, json!([])));
    let (status, _) = get_json(
        &dir,
        "group/user/direct",
        &[("groupname", "jira-users"), ("max-results", "999999999999")],
    );
    assert_eq!(status, 200);
    let (status, v) = get_json(
        &dir,
        "group/user/direct",
        &[("groupname", "jira-users"), ("start-index", "-1")],
    );
    assert_eq!(
        (status, v["reason"].clone()),
        (400, json!("ILLEGAL_ARGUMENT"))
    );
    let (status, _) = get_json(
        &dir,
        "group/user/direct",
        &[("groupname", "jira-users"), ("max-results", "ten")],
    );
    assert_eq!(status, 400);
}

#[test]
fn handler_answers_every_membership_in_one_xml_body() {
    let dir = small();
    // Asked in JSON, answered in XML as Crowd does.
    let r = call(
        &dir,
        &EventLog::new("e".into(), 1),
        "GET",
        "group/membership",
        &[],
        Format::Json,
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.format, Format::Xml);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("<memberships><membership group=\"Admins\"><users><user name=\"alice\"/></users><groups></groups></membership>"), "{body}");
    assert!(
        body.contains("<membership group=\"empty\"><users></users><groups></groups></membership>"),
        "{body}"
    );
    assert!(body.contains("<membership group=\"jira-users\"><users><user name=\"alice\"/><user name=\"Bob\"/></users>"), "{body}");
}

#[test]
fn handler_searches_with_cql_and_posted_restrictions() {
    let dir = small();
    let names = |v: &serde_json::Value, list: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, v) = get_json(
        &dir,
        "search",
        &[
            ("entity-type", "user"),
            ("restriction", "email = \"*@EXAMPLE.com\" and active = true"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(names(&v, "users"), ["alice", "carol"]);
    let (_, v) = get_json(
        &dir,
        "search",
        &[
            ("entity-type", "group"),
            ("restriction", "name = \"jira*\" or name = admins"),
            ("expand", "group"),
        ],
    );
    assert_eq!(names(&v, "groups"), ["Admins", "jira-users"]);
    assert_eq!(v["groups"][0]["type"], "GROUP");
    let (_, v) = get_json(&dir, "search", &[("entity-type", "user")]);
    assert_eq!(names(&v, "users"), ["alice", "Bob", "carol"]);
    // python-crowd's body: XML in, JSON out.
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<property-search-restriction><property><name>email</name><type>STRING</type></property><match-mode>CONTAINS</match-mode><value>bob</value></property-search-restriction>"#;
    let r = call(
        &dir,
        &EventLog::new("e".into(), 1),
        "POST",
        "search",
        &[("entity-type", "user"), ("expand", "user")],
        Format::Json,
        body,
    );
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(names(&v, "users"), ["Bob"]);
    assert_eq!(v["users"][0]["email"], "Bob@example.com");
    // The connector's test connection: `name` IS NULL, one result at most.
    let body = br#"<property-search-restriction><property><name>name</name><type>STRING</type></property><match-mode>NULL</match-mode></property-search-restriction>"#;
    let r = call(
        &dir,
        &EventLog::new("e".into(), 1),
        "POST",
        "search",
        &[
            ("entity-type", "user"),
            ("start-index", "0"),
            ("max-results", "1"),
        ],
        Format::Xml,
        body,
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .ends_with("<users expand=\"user\"></users>"));
    // A JSON boolean restriction.
    let body = br#"{"restriction-type":"boolean-search-restriction","boolean-logic":"or","restrictions":[{"restriction-type":"property-search-restriction","property":{"name":"name","type":"STRING"},"match-mode":"STARTS_WITH","value":"CA"},{"restriction-type":"property-search-restriction","property":{"name":"active","type":"BOOLEAN"},"match-mode":"EXACTLY_MATCHES","value":"false"}]}"#;
    let r = call(
        &dir,
        &EventLog::new("e".into(), 1),
        "POST",
        "search",
        &[("entity-type", "user")],
        Format::Json,
        body,
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(names(&v, "users"), ["Bob", "carol"]);
    // Malformed restrictions and entity types: 400 ILLEGAL_ARGUMENT.
    for (q, b) in [
        (
            vec![("entity-type", "user"), ("restriction", "name = ")],
            &b""[..],
        ),
        (
            vec![("entity-type", "user"), ("restriction", "(name = x")],
            b"",
        ),
        (vec![("entity-type", "robot")], b""),
        (vec![], b""),
    ] {
        let r = call(
            &dir,
            &EventLog::new("e".into(), 1),
            "GET",
            "search",
            &q,
            Format::Json,
            b,
        );
        assert_eq!(r.status, 400, "{q:?}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["reason"], "ILLEGAL_ARGUMENT");
    }
    let r = call(
        &dir,
        &EventLog::new("e".into(), 1),
        "POST",
        "search",
        &[("entity-type", "user")],
        Format::Json,
        b"<property-search-restriction><match-mode>MAYBE</match-mode>",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn handler_refuses_every_write_as_a_read_only_directory() {
    let dir = small();
    let log = EventLog::new("e".into(), 1);
    for (method, path, query) in [
        ("POST", "user", vec![]),
        ("PUT", "user", vec![("username", "alice")]),
        ("DELETE", "user", vec![("username", "alice")]),
        ("PUT", "user/password", vec![("username", "alice")]),
        ("POST", "user/attribute", vec![("username", "alice")]),
        ("POST", "user/rename", vec![("username", "alice")]),
        ("POST", "user/group/direct", vec![("username", "alice")]),
        ("POST", "group", vec![]),
        ("DELETE", "group", vec![("groupname", "Admins")]),
        ("POST", "group/user/direct", vec![("groupname", "Admins")]),
        (
            "DELETE",
            "group/user/direct",
            vec![("groupname", "Admins"), ("username", "alice")],
        ),
        (
            "POST",
            "group/child-group/direct",
            vec![("groupname", "Admins")],
        ),
        ("POST", "user/mail/password", vec![("username", "alice")]),
    ] {
        let r = call(
            &dir,
            &log,
            method,
            path,
            &query,
            Format::Json,
            br#"{"name":"x","password":{"value":"p"}}"#,
        );
        assert_eq!(r.status, 403, "{method} {path}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["reason"], "APPLICATION_PERMISSION_DENIED",
            "{method} {path}"
        );
    }
}

#[test]
fn handler_refuses_passwords_and_sso_sessions_as_crowd_does() {
    let dir = small();
    let log = EventLog::new("e".into(), 1);
    let r = call(
        &dir,
        &log,
        "POST",
        "authentication",
        &[("username", "alice")],
        Format::Json,
        br#"{"value":"secret"}"#,
    );
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["reason"], "INVALID_USER_AUTHENTICATION");
    let r = call(
        &dir,
        &log,
        "POST",
        "authentication",
        &[("username", "nobody")],
        Format::Json,
        br#"{"value":"secret"}"#,
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, v["reason"].clone()),
        (400, json!("USER_NOT_FOUND"))
    );
    // After the product's own SSO login: the user, or INACTIVE_ACCOUNT.
    let r = call(
        &dir,
        &log,
        "POST",
        "authentication/notify",
        &[("username", "alice")],
        Format::Json,
        b"",
    );
    assert_eq!(r.status, 200);
    let r = call(
        &dir,
        &log,
        "POST",
        "authentication/notify",
        &[("username", "bob")],
        Format::Json,
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, v["reason"].clone()),
        (400, json!("INACTIVE_ACCOUNT"))
    );
    let r = call(
        &dir,
        &log,
        "POST",
        "session",
        &[],
        Format::Json,
        br#"{"username":"alice","password":"x"}"#,
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, v["reason"].clone()),
        (400, json!("INVALID_USER_AUTHENTICATION"))
    );
    let r = call(&dir, &log, "GET", "session/abc123", &[], Format::Json, b"");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, v["reason"].clone()),
        (404, json!("INVALID_SSO_TOKEN"))
    );
    let r = call(
        &dir,
        &log,
        "DELETE",
        "session/abc123",
        &[],
        Format::Json,
        b"",
    );
    assert_eq!(r.status, 204);
    let (status, v) = get_json(&dir, "config/cookie", &[]);
    assert_eq!(
        (status, v),
        (
            200,
            json!({"domain": "", "name": "crowd.token_key", "secure": false})
        )
    );
    let (_, body) = get_xml(&dir, "config/cookie", &[]);
    assert!(body.ends_with("<cookie-config><domain></domain><secure>false</secure><name>crowd.token_key</name></cookie-config>"));
}

#[test]
fn handler_answers_unknown_paths_404_and_wrong_methods_405() {
    let dir = small();
    let log = EventLog::new("e".into(), 1);
    // python-crowd's auth_ping relies on an authenticated application getting 404 here.
    let r = call(
        &dir,
        &log,
        "GET",
        "non-existent/location",
        &[],
        Format::Json,
        b"",
    );
    assert_eq!(r.status, 404);
    let r = call(
        &dir,
        &log,
        "PATCH",
        "user",
        &[("username", "alice")],
        Format::Json,
        b"",
    );
    assert_eq!(r.status, 405);
    let r = call(&dir, &log, "GET", "authentication", &[], Format::Json, b"");
    assert_eq!(r.status, 405);
    // No web hooks: RestCrowdClient takes a 404 for "not offered" and keeps to the event feed.
    let r = call(
        &dir,
        &log,
        "POST",
        "webhook",
        &[],
        Format::Xml,
        b"<webhook/>",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn handler_serves_the_event_feed_and_expires_tokens_as_crowd() {
    let dir = small();
    let mut log = EventLog::new("epoch1".into(), 1);
    let r = call(&dir, &log, "GET", "event", &[], Format::Xml, b"");
    let body = String::from_utf8(r.body).unwrap();
    assert!(
        body.ends_with(
            "<events newEventToken=\"epoch1:0\" incrementalSynchronisationAvailable=\"true\"/>"
        ),
        "{body}"
    );
    let (_, alice) = user("k-alice", "alice");
    let (_, admins) = crate::support::group("g-admins", "Admins");
    log.push(1, Event::user_created("k-alice", &alice));
    log.push(2, Event::membership_created(&admins, &alice));
    let r = call(&dir, &log, "GET", "event/epoch1%3A0", &[], Format::Xml, b"");
    assert_eq!(r.status, 200);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("<events newEventToken=\"epoch1:2\"><userEvent><operation>CREATED</operation><user name=\"alice\" expand=\"attributes\">"), "{body}");
    assert!(
        body.contains(
            "<userMembershipEvent><operation>CREATED</operation><childUser name=\"alice\">"
        ),
        "{body}"
    );
    assert!(
        body.contains("<parentGroups expand=\"group\"><group name=\"Admins\">"),
        "{body}"
    );
    let r = call(&dir, &log, "GET", "event/epoch1:2", &[], Format::Json, b"");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, json!({"newEventToken": "epoch1:2", "events": []}));
    let r = call(&dir, &log, "GET", "event/epoch0:2", &[], Format::Json, b"");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, v["reason"].clone()),
        (410, json!("EVENT_TOKEN_EXPIRED"))
    );
    // A rename after a token makes it expire: the product synchronises in full.
    let mut renamed = alice.clone();
    renamed.user_name = "alice2".into();
    for e in Event::user_updated("k-alice", &alice, &renamed) {
        log.push(3, e);
    }
    let r = call(&dir, &log, "GET", "event/epoch1:2", &[], Format::Json, b"");
    assert_eq!(r.status, 410);
    let r = call(&dir, &log, "GET", "event/epoch1:3", &[], Format::Json, b"");
    assert_eq!(r.status, 200);
}

#[test]
fn formats_follow_accept_and_content_type_as_crowd_negotiates() {
    assert_eq!(Format::from_accept(None), Format::Xml);
    assert_eq!(Format::from_accept(Some("*/*")), Format::Xml);
    assert_eq!(Format::from_accept(Some("application/json")), Format::Json);
    assert_eq!(
        Format::from_accept(Some("application/json, text/plain, */*")),
        Format::Json
    );
    assert_eq!(
        Format::from_accept(Some("application/xml;q=0.9, application/json")),
        Format::Xml
    );
    assert_eq!(Format::from_accept(Some("text/html")), Format::Xml);
    assert_eq!(
        Format::from_content_type(Some("application/json; charset=utf-8")),
        Format::Json
    );
    assert_eq!(
        Format::from_content_type(Some("application/xml")),
        Format::Xml
    );
    assert_eq!(Format::from_content_type(None), Format::Xml);
    assert_eq!(
        (Format::Json.mime(), Format::Xml.mime()),
        ("application/json", "application/xml")
    );
}

#[test]
fn a_user_in_json_has_the_fields_of_atlassians_sample() {
    // Crowd's RepresentationTest sample of `GET /user?username=admin` (crowd-rest-test 2.8).
    let sample = json!({
        "link": {"rel": "self", "href": "http://localhost:8095/crowd/rest/usermanagement/1/user?username=admin"},
        "active": true, "name": "admin", "last-name": "the builder", "display-name": "bob the builder",
        "email": "bob@example.net", "key": "1:{0000-0000}",
        "password": {"link": {"rel": "edit", "href": "http://localhost:8095/crowd/rest/usermanagement/1/user/password?username=admin"}},
        "first-name": "bob", "expand": "attributes",
        "attributes": {"link": {"rel": "self", "href": "http://localhost:8095/crowd/rest/usermanagement/1/user/attribute?username=admin"}, "attributes": []}
    });
    let dir = small();
    let (_, ours) = get_json(&dir, "user", &[("username", "alice")]);
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&sample));
    assert_eq!(keys(&ours["attributes"]), keys(&sample["attributes"]));
    assert_eq!(keys(&ours["link"]), keys(&sample["link"]));
    assert_eq!(
        ours["password"]["link"]["rel"],
        sample["password"]["link"]["rel"]
    );
    // And a group, after the sample of `GET /group?groupname=crowd-administrators`.
    let sample = json!({
        "link": {"rel": "self", "href": "x"}, "expand": "attributes", "active": true,
        "name": "crowd-administrators", "type": "GROUP",
        "attributes": {"link": {"rel": "self", "href": "x"}, "attributes": []}, "description": ""
    });
    let (_, ours) = get_json(&dir, "group", &[("groupname", "admins")]);
    assert_eq!(keys(&ours), keys(&sample));
    assert_eq!(ours["description"], "");
}

/// The whole document parses as XML (quick-xml, end names checked).
fn well_formed(body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i64;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            quick_xml::events::Event::Start(_) => depth += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    if depth == 0 {
        Ok(())
    } else {
        Err(format!("unbalanced: {depth}"))
    }
}

#[test]
fn every_answer_is_well_formed_whatever_the_names_hold() {
    let odd = "a&b<\"c'>\u{1}\u{7f}é";
    let (_, mut u) = user("k&<>", odd);
    u.department = Some("R&D <core>".into());
    u.custom
        .insert("x<y".into(), AttrValue::String("\u{2}ctrl\"q\"".into()));
    let (_, g) = crate::support::group("g&", "Grp \"<&>\"");
    let dir = Directory::build(
        vec![("k&<>".into(), u.clone())],
        vec![("g&".into(), g.clone())],
        vec![("g&".into(), "k&<>".into())],
        vec![],
    );
    let mut log = EventLog::new("e:p".into(), 1);
    log.push(1, Event::user_created("k&<>", &u));
    log.push(2, Event::membership_created(&g, &u));
    log.push(3, Event::group_deleted(&g));
    let gname = "Grp \"<&>\"";
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8]);
    let requests: Vec<Case<'_>> = vec![
        (
            "GET",
            "user",
            vec![("username", odd), ("expand", "attributes")],
            b"",
        ),
        ("GET", "user/attribute", vec![("username", odd)], b""),
        (
            "GET",
            "user/group/direct",
            vec![("username", odd), ("expand", "group")],
            b"",
        ),
        (
            "GET",
            "group",
            vec![("groupname", gname), ("expand", "attributes")],
            b"",
        ),
        (
            "GET",
            "group/user/nested",
            vec![("groupname", gname), ("expand", "user,attributes")],
            b"",
        ),
        ("GET", "group/membership", vec![], b""),
        (
            "GET",
            "search",
            vec![("entity-type", "user"), ("expand", "user,attributes")],
            b"",
        ),
        (
            "POST",
            "search",
            vec![("entity-type", "group"), ("expand", "group")],
            b"<null-search-restriction/>",
        ),
        ("GET", "event", vec![], b""),
        ("GET", "event/e:p:0", vec![], b""),
        ("GET", "user", vec![("username", "<nobody & none>")], b""),
        ("GET", "config/cookie", vec![], b""),
        ("POST", "user", vec![], b""),
    ];
    for (method, path, query, body) in requests {
        for format in [Format::Xml, Format::Json] {
            let r = call(&dir, &log, method, path, &query, format, body);
            assert!(r.status < 500);
            match r.format {
                Format::Xml => well_formed(&r.body).unwrap_or_else(|e| {
                    panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&r.body))
                }),
                Format::Json => {
                    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap();
                }
            }
        }
    }
    // The name survives the round trip: the link names the user percent-encoded.
    let (_, v) = get_json(&dir, "user", &[("username", odd)]);
    assert_eq!(v["name"], odd);
    assert!(v["link"]["href"]
        .as_str()
        .unwrap()
        .ends_with("user?username=a%26b%3C%22c%27%3E%01%7F%C3%A9"));
}
