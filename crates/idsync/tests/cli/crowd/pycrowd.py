"""Drives idsync's Crowd directory with the PyPI `crowd` client (python-crowd 3.1.0) and prints
one JSON document of what the client got back, for `crowd_clients.rs` to assert on.

Usage: python pycrowd.py read|events TOKEN|bad
Environment: CROWD_URL (the directory's base, ending in /crowd/<target>), CROWD_APP,
CROWD_PASSWORD. Everything goes through the client's own methods; the event feed, which the
client has no method for, goes through the client's authenticated session (`_get`).
"""

import json
import os
import sys

import crowd


def server(password=None):
    return crowd.CrowdServer(
        os.environ["CROWD_URL"],
        os.environ["CROWD_APP"],
        password if password is not None else os.environ["CROWD_PASSWORD"],
        timeout=30,
    )


def user_view(u):
    if u is None:
        return None
    attrs = {a["name"]: a["values"] for a in u.get("attributes", {}).get("attributes", [])}
    return {
        "name": u.get("name"),
        "active": u.get("active"),
        "first-name": u.get("first-name"),
        "last-name": u.get("last-name"),
        "display-name": u.get("display-name"),
        "email": u.get("email"),
        "key": u.get("key"),
        "attributes": attrs,
    }


def names(found, key):
    if found is None:
        return None
    return sorted(x["name"] for x in found.get(key, []))


def read():
    cs = server()
    out = {
        "auth_ping": cs.auth_ping(),
        "auth_ping_wrong_password": server("not-the-password").auth_ping(),
        "alice": user_view(cs.get_user("alice")),
        "dave": user_view(cs.get_user("dave")),
        "nobody": user_view(cs.get_user("nobody")),
        "alice_exists": cs.user_exists("alice"),
        "nobody_exists": cs.user_exists("nobody"),
        "alice_groups": sorted(cs.get_groups("alice") or []),
        "alice_nested_groups": sorted(cs.get_nested_groups("alice") or []),
        "everyone_nested_users": sorted(cs.get_nested_group_users("everyone") or []),
        "memberships": {
            g: {"users": sorted(m["users"]), "groups": sorted(m["groups"])}
            for g, m in (cs.get_memberships() or {}).items()
        },
        # CONTAINS search with an XML restriction body, answered in JSON.
        "search_email_example": names(cs.search("user", "email", "example.com"), "users"),
        "search_name_ar": names(cs.search("user", "name", "ar"), "users"),
        "search_group_eng": names(cs.search("group", "name", "eng"), "groups"),
        # idsync holds no passwords: a user's authentication is refused.
        "auth_user": cs.auth_user("alice", "whatever"),
        "cookie_config": cs.get_cookie_conf(),
        # A read-only directory refuses writes.
        "add_user": cs.add_user("mallory", password="pw", email="m@example.com"),
    }
    token = cs._get(cs.rest_url + "/event")
    out["event_status"] = token.status_code
    out["event"] = token.json() if token.ok else None
    return out


def events(token):
    cs = server()
    r = cs._get(cs.rest_url + "/event/" + token)
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
    return {"status": r.status_code, "body": body}


def bad():
    cs = server()
    unknown_app = crowd.CrowdServer(os.environ["CROWD_URL"], "no-such-app", "x", timeout=30)
    r = cs._get(cs.rest_url + "/user", params={"username": "nobody"})
    return {
        "unknown_app_ping": unknown_app.auth_ping(),
        "unknown_app_user": unknown_app.get_user("alice"),
        "user_not_found": {"status": r.status_code, "body": r.json()},
        "search_past_the_end": cs.search("user", "name", "a", start_index=100000),
    }


def main():
    what = sys.argv[1]
    if what == "read":
        out = read()
    elif what == "events":
        out = events(sys.argv[2])
    else:
        out = bad()
    print(json.dumps(out, sort_keys=True))


main()
