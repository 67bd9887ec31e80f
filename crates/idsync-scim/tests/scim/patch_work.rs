//! PATCH work grows with the size of the request, not with its square (issue 15, item 3).

use idsync_scim::patch::{apply_counted, parse_request, MAX_PATCH_OPERATIONS};
use idsync_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use serde_json::{json, Value};

fn body(ops: Vec<Value>) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// Element steps of `n` operations built by `op`, applied to `resource`.
fn steps(resource: Value, n: usize, op: impl Fn(usize) -> Value) -> u64 {
    let mut r = resource;
    let ops = parse_request(&body((0..n).map(op).collect())).unwrap();
    let schema = if r.get("members").is_some()
        || r.get("displayName").is_some() && r.get("userName").is_none()
    {
        &GROUP_RESOURCE
    } else {
        &USER_RESOURCE
    };
    apply_counted(&mut r, &ops, schema).unwrap().element_steps
}

#[test]
fn many_adds_to_a_multi_valued_attribute_take_linear_work() {
    // Each operation adds one new e-mail: comparing each with every e-mail already added is
    // n²/2 steps (500,000 at n = 1,000); hashed, a few per operation.
    let n = MAX_PATCH_OPERATIONS;
    let user =
        json!({"userName": "ada", "emails": [{"value": "first@example.com", "type": "work"}]});
    let adds = |i: usize| json!({"op": "add", "path": "emails", "value": [{"value": format!("a{i}@example.com"), "type": "work"}]});
    let s = steps(user.clone(), n, adds);
    assert!(s <= 4 * n as u64, "{n} adds took {s} element steps");
    // Adds of what is already there add nothing, at the same cost.
    let again = |_: usize| json!({"op": "add", "path": "emails", "value": [{"value": "first@example.com", "type": "work"}]});
    let s = steps(user.clone(), n, again);
    assert!(
        s <= 4 * n as u64,
        "{n} repeated adds took {s} element steps"
    );
    // One add of many values at once.
    let many: Vec<Value> = (0..n)
        .map(|i| json!({"value": format!("b{i}@example.com")}))
        .collect();
    let s = steps(
        user,
        1,
        |_| json!({"op": "add", "path": "emails", "value": many}),
    );
    assert!(
        s <= 4 * n as u64,
        "one add of {n} values took {s} element steps"
    );
}

#[test]
fn many_member_removals_by_filter_take_linear_work() {
    // A group of n members, each removed by its own filtered operation (what a PATCH with
    // If-Match applies to the whole group).
    let n = MAX_PATCH_OPERATIONS;
    let members: Vec<Value> = (0..n)
        .map(|i| json!({"value": format!("u{i}"), "type": "User"}))
        .collect();
    let group = json!({"displayName": "eng", "members": members});
    let s = steps(
        group,
        n,
        |i| json!({"op": "remove", "path": format!("members[value eq \"u{i}\"]")}),
    );
    assert!(
        s <= 4 * n as u64,
        "{n} filtered removals took {s} element steps"
    );
}

#[test]
fn a_patch_has_at_most_the_documented_number_of_operations() {
    let op = |_: usize| json!({"op": "replace", "path": "title", "value": "x"});
    assert!(parse_request(&body((0..MAX_PATCH_OPERATIONS).map(op).collect())).is_ok());
    let e = parse_request(&body((0..=MAX_PATCH_OPERATIONS).map(op).collect())).unwrap_err();
    assert_eq!(e.status, 413, "{e}");
    assert!(e.detail.contains(&MAX_PATCH_OPERATIONS.to_string()), "{e}");
    assert_eq!(e.to_json()["status"], "413");
}
