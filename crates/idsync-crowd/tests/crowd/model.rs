//! The conversion of idsync's users and groups to Crowd's entities.

use crate::support::{group, user};
use idsync_core::{AttrValue, Phone};
use idsync_crowd::{CrowdGroup, CrowdUser, Directory};

#[test]
fn a_user_carries_its_mapped_attributes_and_its_managers_name() {
    let (_, boss) = user("k-boss", "boss");
    let (_, mut ada) = user("k-ada", "ada");
    ada.manager = Some("k-boss".into());
    ada.cost_center = Some("CC1".into());
    ada.phone_numbers = vec![
        Phone {
            value: "+1 555 0100".into(),
            kind: Some("work".into()),
            primary: false,
            display: None,
        },
        Phone {
            value: "+1 555 0199".into(),
            kind: Some("mobile".into()),
            primary: false,
            display: None,
        },
        Phone {
            value: "+1 555 0101".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        },
    ];
    ada.custom.insert(
        "skills".into(),
        AttrValue::Multi(vec![
            AttrValue::String("rust".into()),
            AttrValue::Integer(7),
            AttrValue::Boolean(true),
        ]),
    );
    // A mapped attribute may not replace one of idsync's own.
    ada.custom
        .insert("department".into(), AttrValue::String("shadow".into()));
    ada.department = Some("Math".into());
    ada.active = false;
    let dir = Directory::build(
        vec![("k-boss".into(), boss), ("k-ada".into(), ada.clone())],
        vec![],
        vec![],
        vec![],
    );
    let u = dir.user("ada").unwrap();
    let a = |n: &str| u.attributes.get(n).cloned().unwrap_or_default();
    assert_eq!(a("manager"), ["boss"]);
    assert_eq!(a("costCenter"), ["CC1"]);
    assert_eq!(a("phone"), ["+1 555 0101", "+1 555 0100"]);
    assert_eq!(a("mobile"), ["+1 555 0199"]);
    assert_eq!(a("skills"), ["rust", "7", "true"]);
    assert_eq!(a("department"), ["Math"]);
    assert!(!u.active);
    assert_eq!(u.key, "k-ada");
    // Without the manager served, the attribute keeps the manager's key.
    let alone = CrowdUser::from_user("k-ada", &ada, None);
    assert_eq!(alone.attributes["manager"], ["k-boss"]);
    // A display name falls back to the given and family names, then the user name.
    let (_, mut plain) = user("k-p", "plain");
    plain.display_name = None;
    assert_eq!(
        CrowdUser::from_user("k-p", &plain, None).display_name,
        "plain-first plain-last"
    );
    let bare = idsync_core::User::new("k-b", "bare");
    let b = CrowdUser::from_user("k-b", &bare, None);
    assert_eq!(
        (
            b.display_name.as_str(),
            b.email.as_str(),
            b.first_name.as_str()
        ),
        ("bare", "", "")
    );
}

#[test]
fn a_group_is_named_by_its_display_name_and_always_active() {
    let (_, mut g) = group("g-1", "Jira Users");
    g.description = Some("Everyone with Jira".into());
    let c = CrowdGroup::from_group(&g);
    assert_eq!(
        (c.name.as_str(), c.description.as_str(), c.active),
        ("Jira Users", "Everyone with Jira", true)
    );
}
