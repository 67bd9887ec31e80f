"""Drives idsync's Crowd directory with atlassian-python-api 5.0.5's `Crowd` and prints one JSON
document of what the client got back, for `crowd_clients.rs` to assert on.

Usage: python atlassian_api.py read|events TOKEN
Environment: CROWD_URL (ending in /crowd/<target>), CROWD_APP, CROWD_PASSWORD. The client is
built with `api_version="1"`, and once as its README shows (`Crowd(url, username, password)`),
which asks for the symbolic API version `latest`; the event feed, which the client has no method for, goes through
its generic `get`.
"""

import json
import os
import sys

from atlassian import Crowd
from requests import HTTPError


def client(password=None, api_version="1"):
    return Crowd(
        url=os.environ["CROWD_URL"],
        username=os.environ["CROWD_APP"],
        password=password if password is not None else os.environ["CROWD_PASSWORD"],
        api_version=api_version,
        timeout=30,
    )


def attempt(f):
    """The client raises HTTPError on >= 400: keep its status and message."""
    try:
        return {"ok": f()}
    except HTTPError as e:
        status = e.response.status_code if e.response is not None else None
        return {"error": str(e), "status": status}


def restriction_body(kind):
    if kind == "sales-or-title":
        # boolean OR of two property restrictions, as JSON (restriction-type names the kind).
        return {
            "restriction-type": "boolean-search-restriction",
            "boolean-logic": "or",
            "restrictions": [
                {
                    "restriction-type": "property-search-restriction",
                    "property": {"name": "email", "type": "STRING"},
                    "match-mode": "STARTS_WITH",
                    "value": "bob",
                },
                {
                    "restriction-type": "property-search-restriction",
                    "property": {"name": "active", "type": "BOOLEAN"},
                    "match-mode": "EXACTLY_MATCHES",
                    "value": "false",
                },
            ],
        }
    return {"restriction-type": "null-search-restriction"}


def read():
    c = client()
    # Built as its README shows, the client asks for the symbolic version `latest`.
    latest = Crowd(
        url=os.environ["CROWD_URL"],
        username=os.environ["CROWD_APP"],
        password=os.environ["CROWD_PASSWORD"],
        timeout=30,
    )
    alice = c.user("alice")
    out = {
        "user": {k: alice.get(k) for k in ("name", "active", "email", "display-name", "key")},
        "user_latest": attempt(lambda: latest.user("alice")["name"]),
        "dave_active": c.user("dave").get("active"),
        "user_attributes": {
            a["name"]: a["values"] for a in (c.user_attributes("alice") or {}).get("attributes", [])
        },
        "alice_groups_direct": sorted(c.user_groups("alice") or []),
        "alice_groups_nested": sorted(c.nested_user_groups("alice") or []),
        "engineering_members": sorted(c.group_members("engineering") or []),
        "everyone_nested_members": sorted(c.nested_group_members("everyone") or []),
        "alice_in_engineering": c.is_user_in_group("alice", "engineering"),
        "bob_in_engineering": c.is_user_in_group("bob", "engineering"),
        "group": {k: v for k, v in c.group("engineering").items() if k in ("name", "active", "type", "description")},
        "child_groups": c.group_child_groups("everyone"),
        "nested_child_groups": c.nested_group_child_groups("everyone"),
        "parent_groups": c.group_parent_groups("engineering"),
        "memberships": {g: sorted(u) for g, u in c.memberships.items()},
        # Crowd's restriction language in the query string (GET) and as a JSON body (POST).
        "search_cql": sorted(
            u["name"]
            for u in c.search_cql("user", 'email = "*@example.com" and active = true')["users"]
        ),
        "search_cql_group": sorted(g["name"] for g in c.search_cql("group", "name = eng*")["groups"]),
        "search_cql_page": [
            u["name"] for u in c.search_cql("user", None, start_index=1, max_results=2)["users"]
        ],
        "search_body_or": sorted(u["name"] for u in c.search("user", restriction_body("sales-or-title"))["users"]),
        "search_body_all_groups": sorted(g["name"] for g in c.search("group", restriction_body("all"))["groups"]),
        "search_malformed": attempt(lambda: c.search_cql("user", 'email = "unterminated')),
        "group_missing": attempt(lambda: c.group("no-such-group")),
        "user_missing": attempt(lambda: c.user("no-such-user")),
        "wrong_password": attempt(lambda: client("wrong").user("alice")),
        "authenticate": attempt(lambda: c.user_authenticate("alice", "secret")),
        "deactivate_refused": attempt(lambda: c.user_deactivate("alice")),
        "group_create_refused": attempt(lambda: c.group_create("intruders")),
        "cookie_config": attempt(lambda: c.get_cookie_config()),
        "event": c.get(c._crowd_api_url("usermanagement", "event")),
    }
    return out


def events(token):
    c = client()
    return {"events": attempt(lambda: c.get(c._crowd_api_url("usermanagement", "event/" + token)))}


def main():
    out = read() if sys.argv[1] == "read" else events(sys.argv[2])
    print(json.dumps(out, sort_keys=True, default=str))


main()
