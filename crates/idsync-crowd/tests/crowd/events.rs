use crate::support::{group, user};
use idsync_crowd::{ErrorReason, Event, EventLog};

#[test]
fn event_log_answers_events_since_a_token_and_expires_old_or_foreign_tokens() {
    let mut log = EventLog::new("e1".into(), 5);
    let start = log.current_token();
    assert_eq!(start, "e1:4");
    let (_, alice) = user("k-a", "alice");
    let (_, admins) = group("g-a", "admins");
    log.push(5, Event::user_created("k-a", &alice));
    log.push(6, Event::group_created(&admins));
    log.push(6, Event::membership_created(&admins, &alice));
    let since = log.since(&start).unwrap();
    assert_eq!(since.events.len(), 3);
    assert_eq!(since.new_token, "e1:6");
    assert!(log.since("e1:6").unwrap().events.is_empty());
    assert_eq!(log.since("e1:5").unwrap().events.len(), 2);
    for bad in ["e1:3", "e0:6", "e1:7", "garbage", "", "e1:x"] {
        let err = log.since(bad).unwrap_err();
        assert_eq!(err.reason, ErrorReason::EventTokenExpired, "{bad}");
    }
}

#[test]
fn events_round_trip_through_json_and_updates_say_nothing_when_nothing_served_changed() {
    let (_, before) = user("k", "alice");
    let mut after = before.clone();
    after.profile_url = Some("https://example.com/alice".into());
    assert!(Event::user_updated("k", &before, &after).is_empty());
    after.user_name = "alice2".into();
    let events = Event::user_updated("k", &before, &after);
    assert_eq!(events.len(), 1);
    let json = serde_json::to_string(&events[0]).unwrap();
    let back: Event = serde_json::from_str(&json).unwrap();
    assert_eq!(back, events[0]);
    match back {
        Event::UserUpdated { user, old_name, .. } => {
            assert_eq!(user.name, "alice2");
            assert_eq!(old_name.as_deref(), Some("alice"));
        }
        other => panic!("{other:?}"),
    }
}
