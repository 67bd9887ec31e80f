//! Any bytes as a PATCH request body, and as a PATCH path: parsing and applying must never
//! panic or hang, and a failed PATCH leaves the resource as it was.
#![no_main]

use idsync_scim::patch::{apply, parse_request, PatchPath};
use idsync_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = PatchPath::parse(s);
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(ops) = parse_request(&body) else {
        return;
    };
    let user = serde_json::json!({
        "id": "1", "userName": "ada", "active": true,
        "emails": [{"value": "a@x.org", "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "d"}
    });
    let mut r = user.clone();
    if apply(&mut r, &ops, &USER_RESOURCE).is_err() {
        assert_eq!(r, user, "a failed PATCH changed the resource");
    }
    let mut g = serde_json::json!({"id": "g", "displayName": "G", "members": [{"value": "1"}]});
    let _ = apply(&mut g, &ops, &GROUP_RESOURCE);
});
