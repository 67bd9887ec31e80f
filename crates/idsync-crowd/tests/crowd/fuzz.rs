//! No input makes the handler panic or answer 5xx.

use crate::support::{call, small};
use idsync_crowd::restriction::{parse_body, parse_query};
use idsync_crowd::{Event, EventLog, Format};
use proptest::prelude::*;

const PATHS: &[&str] = &[
    "user",
    "user/attribute",
    "user/group/direct",
    "user/group/nested",
    "group",
    "group/attribute",
    "group/user/direct",
    "group/user/nested",
    "group/child-group/direct",
    "group/child-group/nested",
    "group/parent-group/direct",
    "group/parent-group/nested",
    "group/membership",
    "search",
    "event",
    "event/e:0",
    "authentication",
    "authentication/notify",
    "session",
    "session/x",
    "config/cookie",
];
const NAMES: &[&str] = &[
    "username",
    "groupname",
    "key",
    "expand",
    "start-index",
    "max-results",
    "entity-type",
    "restriction",
    "child-groupname",
    "parent-groupname",
    "validate-password",
];

fn log() -> EventLog {
    let mut log = EventLog::new("e".into(), 1);
    let (_, u) = crate::support::user("k-alice", "alice");
    log.push(1, Event::user_created("k-alice", &u));
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn handler_never_panics_nor_answers_5xx(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "get", ""]),
        known in prop::sample::select(PATHS.to_vec()),
        junk_path in "[a-z/%:._-]{0,24}",
        use_junk in any::<bool>(),
        query in prop::collection::vec((prop::sample::select(NAMES.to_vec()), "\\PC{0,16}"), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..256),
        json in any::<bool>(),
    ) {
        let dir = small();
        let path = if use_junk { junk_path } else { known.to_string() };
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let accept = if json { Format::Json } else { Format::Xml };
        let r = call(&dir, &log(), method, &path, &query, accept, &body);
        prop_assert!(r.status < 500, "{} {} -> {}", method, path, r.status);
        if r.status >= 400 && !r.body.is_empty() && r.format == Format::Json {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            prop_assert!(v["reason"].is_string());
        }
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,64}", bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_query(&text);
        let _ = parse_body(&bytes, Format::Xml);
        let _ = parse_body(&bytes, Format::Json);
        let _ = parse_body(text.as_bytes(), Format::Xml);
    }

    #[test]
    fn cql_made_of_its_own_tokens_never_panics(parts in prop::collection::vec(
        prop::sample::select(vec!["name", "email", "active", "=", "<", ">", "(", ")", "and", "or", "\"a b\"", "'*x*'", "*", "true", "2020-01-01", "\\", "\"", "!"]), 0..24)) {
        let q = parts.join(" ");
        let _ = parse_query(&q);
    }
}
