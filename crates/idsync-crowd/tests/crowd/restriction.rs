//! The restriction language: CQL, the POSTed bodies, evaluation.

use crate::support::small;
use idsync_crowd::restriction::{
    parse_body, parse_query, MatchMode, PropertyType, Restriction, MAX_DEPTH, MAX_TERMS,
};
use idsync_crowd::{ErrorReason, Format};

fn prop(p: &str, kind: PropertyType, mode: MatchMode, v: &str) -> Restriction {
    Restriction::Property {
        property: p.into(),
        kind,
        mode,
        value: v.into(),
    }
}

fn s(p: &str, mode: MatchMode, v: &str) -> Restriction {
    prop(p, PropertyType::String, mode, v)
}

#[test]
fn cql_parses_crowds_examples() {
    use MatchMode::*;
    assert_eq!(
        parse_query("email=bob@example.net").unwrap(),
        s("email", ExactlyMatches, "bob@example.net")
    );
    assert_eq!(parse_query("").unwrap(), Restriction::All);
    assert_eq!(parse_query("   ").unwrap(), Restriction::All);
    assert_eq!(
        parse_query("name = \"j*\"").unwrap(),
        s("name", StartsWith, "j")
    );
    assert_eq!(
        parse_query("email = '*@example.com'").unwrap(),
        s("email", EndsWith, "@example.com")
    );
    assert_eq!(
        parse_query("email=*bob*").unwrap(),
        s("email", Contains, "bob")
    );
    assert_eq!(
        parse_query("active = true").unwrap(),
        prop("active", PropertyType::Boolean, ExactlyMatches, "true")
    );
    assert_eq!(
        parse_query("createdDate > 2010-12-01").unwrap(),
        prop("createdDate", PropertyType::Date, GreaterThan, "2010-12-01")
    );
    assert_eq!(
        parse_query("lastName < M").unwrap(),
        s("lastName", LessThan, "M")
    );
    // AND binds tighter than OR; keywords in any case; parentheses group.
    assert_eq!(
        parse_query("name = a OR name = b AnD active = true").unwrap(),
        Restriction::Or(vec![
            s("name", ExactlyMatches, "a"),
            Restriction::And(vec![
                s("name", ExactlyMatches, "b"),
                prop("active", PropertyType::Boolean, ExactlyMatches, "true"),
            ]),
        ])
    );
    assert_eq!(
        parse_query("(name = \"fred*\" or email = \"*@example.com\") and active = true").unwrap(),
        Restriction::And(vec![
            Restriction::Or(vec![
                s("name", StartsWith, "fred"),
                s("email", EndsWith, "@example.com")
            ]),
            prop("active", PropertyType::Boolean, ExactlyMatches, "true"),
        ])
    );
    // Quoted values keep spaces, escapes and keywords; an unquoted word containing "and" is a term.
    assert_eq!(
        parse_query(r#"displayName = "Ada \"The\" Countess""#).unwrap(),
        s("displayName", ExactlyMatches, "Ada \"The\" Countess")
    );
    assert_eq!(
        parse_query("name = android").unwrap(),
        s("name", ExactlyMatches, "android")
    );
    assert_eq!(
        parse_query("name = 'or'").unwrap(),
        s("name", ExactlyMatches, "or")
    );
    assert_eq!(
        parse_query("department = R\\u0026D").unwrap(),
        s("department", ExactlyMatches, "R&D")
    );
}

#[test]
fn cql_refuses_malformed_restrictions_with_illegal_argument() {
    for bad in [
        "name",
        "name =",
        "= x",
        "name = x and",
        "(name = x",
        "name = x)",
        "name ! x",
        "name = \"x",
        "name == x",
        "name = x y",
        "createdDate > yesterday",
        "name = 'a\\q'",
        "and",
        "()",
    ] {
        let e = parse_query(bad).unwrap_err();
        assert_eq!(
            (e.status, e.reason),
            (400, ErrorReason::IllegalArgument),
            "{bad}"
        );
    }
    let deep = format!(
        "{}name = x{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(parse_query(&deep).is_err());
    let ok = format!("{}name = x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse_query(&ok).is_ok());
    // Every user is checked against each comparison: their number is bounded.
    let many = |n: usize| vec!["name = x"; n].join(" or ");
    assert!(parse_query(&many(MAX_TERMS)).is_ok());
    let e = parse_query(&many(MAX_TERMS + 1)).unwrap_err();
    assert_eq!(e.reason, ErrorReason::IllegalArgument);
}

#[test]
fn posted_restrictions_parse_in_xml_and_json_as_atlassian_documents_them() {
    use MatchMode::*;
    // The example of Atlassian's CQL page.
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<property-search-restriction>
  <property>
    <name>email</name>
    <type>STRING</type>
  </property>
  <match-mode>EXACTLY_MATCHES</match-mode>
  <value>bob@example.net</value>
</property-search-restriction>"#;
    assert_eq!(
        parse_body(xml, Format::Xml).unwrap(),
        s("email", ExactlyMatches, "bob@example.net")
    );
    let xml = br#"<boolean-search-restriction boolean-logic="AND"><restrictions>
        <property-search-restriction><property><name>name</name><type>STRING</type></property><match-mode>STARTS_WITH</match-mode><value>a&amp;b&#x21;</value></property-search-restriction>
        <null-search-restriction/>
        <boolean-search-restriction boolean-logic="or"><restrictions/></boolean-search-restriction>
      </restrictions></boolean-search-restriction>"#;
    assert_eq!(
        parse_body(xml, Format::Xml).unwrap(),
        Restriction::And(vec![
            s("name", StartsWith, "a&b!"),
            Restriction::All,
            Restriction::Or(vec![])
        ])
    );
    assert_eq!(
        parse_body(b"<null-search-restriction/>", Format::Xml).unwrap(),
        Restriction::All
    );
    assert_eq!(parse_body(b"", Format::Json).unwrap(), Restriction::All);
    let json = br#"{"restriction-type":"property-search-restriction","property":{"name":"active","type":"BOOLEAN"},"match-mode":"EXACTLY_MATCHES","value":true}"#;
    assert_eq!(
        parse_body(json, Format::Json).unwrap(),
        prop("active", PropertyType::Boolean, ExactlyMatches, "true")
    );
    for (bad, f) in [
        (&b"<property-search-restriction>"[..], Format::Xml),
        (b"<property-search-restriction><property><name>x</name><type>NUMBER</type></property><match-mode>CONTAINS</match-mode><value>1</value></property-search-restriction>", Format::Xml),
        (b"<property-search-restriction><property><name>x</name></property><match-mode>CONTAINS</match-mode></property-search-restriction>", Format::Xml),
        (b"<boolean-search-restriction boolean-logic=\"xor\"/>", Format::Xml),
        (b"<users/>", Format::Xml),
        (b"<a>&unknown;</a>", Format::Xml),
        (b"\xff\xfe", Format::Xml),
        (b"{", Format::Json),
        (b"[1]", Format::Json),
        (br#"{"restriction-type":"magic"}"#, Format::Json),
    ] {
        let e = parse_body(bad, f).unwrap_err();
        assert_eq!((e.status, e.reason), (400, ErrorReason::IllegalArgument), "{}", String::from_utf8_lossy(bad));
    }
    // Nesting is bounded in both formats.
    let deep_xml = format!(
        "{}{}",
        "<boolean-search-restriction boolean-logic=\"and\"><restrictions>".repeat(MAX_DEPTH + 2),
        "</restrictions></boolean-search-restriction>".repeat(MAX_DEPTH + 2)
    );
    assert!(parse_body(deep_xml.as_bytes(), Format::Xml).is_err());
    let deep_json = format!(
        "{}{}",
        r#"{"boolean-logic":"and","restrictions":["#.repeat(MAX_DEPTH + 2),
        "]}".repeat(MAX_DEPTH + 2)
    );
    assert!(parse_body(deep_json.as_bytes(), Format::Json).is_err());
}

#[test]
fn restrictions_match_without_regard_to_case_and_treat_missing_values_as_null() {
    let dir = small();
    let names = |q: &str| -> Vec<String> {
        let r = parse_query(q).unwrap();
        dir.search_users(&r, 0, 100)
            .iter()
            .map(|u| u.name.clone())
            .collect()
    };
    assert_eq!(names("name = ALICE"), ["alice"]);
    assert_eq!(names("name = b*"), ["Bob"]);
    assert_eq!(names("firstName = *OB-FIR*"), ["Bob"]);
    assert_eq!(names("active = false"), ["Bob"]);
    assert_eq!(names("active = TRUE"), ["alice", "carol"]);
    assert_eq!(names("name > b"), ["Bob", "carol"]);
    assert_eq!(names("department = x"), Vec::<String>::new());
    assert_eq!(names("createdDate > 2001-01-01"), Vec::<String>::new());
    assert_eq!(names("key = k-carol"), ["carol"]);
    let null = parse_body(
        b"<property-search-restriction><property><name>department</name><type>STRING</type></property><match-mode>NULL</match-mode></property-search-restriction>",
        Format::Xml,
    )
    .unwrap();
    assert_eq!(dir.search_users(&null, 0, 100).len(), 3);
    assert_eq!(dir.search_users(&null, 1, 1).len(), 1);
    let r = parse_query("name = *").unwrap();
    assert_eq!(dir.search_groups(&r, 0, 100).len(), 3);
    let r = parse_query("description = x or name = empty").unwrap();
    assert_eq!(dir.search_groups(&r, 0, 100)[0].name, "empty");
}
