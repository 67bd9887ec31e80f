//! Any text as a SCIM filter: parsing and evaluating must never panic or hang.
#![no_main]

use idsync_scim::filter::Filter;
use idsync_scim::schema::USER_RESOURCE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    if let Ok(f) = Filter::parse(data) {
        let resource = serde_json::json!({
            "id": "1", "userName": "ada", "active": true, "title": "x",
            "name": {"givenName": "Ada"},
            "emails": [{"value": "a@x.org", "type": "work", "primary": true}, {"value": "b@y.org"}],
            "meta": {"lastModified": "2020-01-01T00:00:00Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}
        });
        let _ = f.matches(&resource, &|p| USER_RESOURCE.case_exact(p));
    }
});
