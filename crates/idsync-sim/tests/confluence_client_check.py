"""Drive the Confluence simulator with atlassian-python-api's `Confluence` class (a client
nobody here wrote): with a personal access token and with Basic, create users (the admin user
API of 8.4 and later, or the JSON-RPC `addUser` the client itself offers before 9.0), read them
by username and key with their status, create groups, add members, page through members and
groups, search users with CQL, try the admin update, delete a group, meet Confluence's errors, and ride out injected 429s with the client's
own Retry-After handling. Prints one JSON line of what it saw."""

import json
import os
import sys
import traceback

import requests
from atlassian import Confluence
from requests import HTTPError

ROOT = os.environ["SIM_ROOT"]
TOKEN = os.environ["SIM_TOKEN"]
ADMIN = os.environ["SIM_ADMIN"]
PASSWORD = os.environ["SIM_PASSWORD"]
OLD = os.environ.get("SIM_OLD") == "1"


def error_of(call):
    try:
        call()
    except HTTPError as e:
        r = e.response
        body = None
        if r is not None:
            try:
                body = r.json()
            except ValueError:
                body = r.text
        return [r.status_code if r is not None else None, body]
    except Exception as e:  # the client's own errors (ApiNotFoundError...) carry the HTTPError
        reason = getattr(e, "reason", None)
        r = getattr(reason, "response", None)
        return [r.status_code if r is not None else None, type(e).__name__]
    return None


def create(c, name, full, email):
    if OLD:
        c.add_user(email, full, name, "Unusable-Pa55word")
    else:
        c.post(
            "rest/api/admin/user",
            data={"userName": name, "fullName": full, "email": email, "password": "Unusable-Pa55word", "notifyViaEmail": False},
        )


def main() -> None:
    out = {}
    c = Confluence(url=ROOT, token=TOKEN)
    out["current"] = c.get("rest/api/user/current")["username"]
    create(c, "Ann.Lee", "Ann Lee", "ann@example.com")
    ann = c.get_user_details_by_username("ann.lee", expand="status")
    out["ann"] = [ann["username"], ann["displayName"], ann["status"], ann["type"]]
    out["by_key"] = c.get_user_details_by_userkey(ann["userKey"])["username"]
    out["duplicate"] = error_of(lambda: c.post(
        "rest/api/admin/user",
        data={"userName": "ANN.LEE", "fullName": "x", "email": "x@example.com", "password": "p", "notifyViaEmail": False},
    )) if not OLD else None
    out["unknown_user"] = error_of(lambda: c.get_user_details_by_username("nobody"))
    c.create_group("Staff")
    out["group_duplicate"] = error_of(lambda: c.create_group("STAFF"))
    for i in range(60):
        create(c, f"bulk{i:03}", f"Bulk {i}", f"bulk{i}@example.com")
        c.put(f"rest/api/user/bulk{i:03}/group/staff")
    # The CQL user search (every version; what idsync reads before 8.4), through the client's
    # own `cql`.
    found = c.cql("type=user", limit=25)
    out["cql_users"] = [found["size"], found.get("totalSize"), "next" in found["_links"], found["results"][0]["entityType"]]
    # The admin update of full name and email: 9.4 and later (405 where the path serves only
    # DELETE, 404 before 8.4).
    out["admin_update"] = error_of(lambda: c.put("rest/api/admin/user/ann.lee", data={"fullName": "Ann Other"}))
    c.put("rest/api/user/Ann.Lee/group/Staff")
    c.put("rest/api/user/ann.lee/group/staff")  # idempotent
    first = c.get_group_members("staff", start=0, limit=50)
    out["members_first"] = [first["size"], "next" in first["_links"]]
    members = c.get_all_members("staff", expand="status")
    out["members_all"] = len(members)
    out["members_status"] = sorted({m["status"] for m in members})
    out["groups"] = [g["name"] for g in c.get_all_groups()]
    out["not_a_group"] = error_of(lambda: c.put("rest/api/user/ann.lee/group/nosuchgroup"))
    if not OLD:
        c.put("rest/api/admin/user/ann.lee/disable")
        out["after_disable"] = c.get_user_details_by_username("ann.lee", expand="status")["status"]
        c.put("rest/api/admin/user/ann.lee/enable")
        task = c.delete("rest/api/admin/user/bulk059")
        out["long_task"] = c.get(task["links"]["status"].lstrip("/"))["finished"]
    else:
        out["no_admin_api"] = error_of(lambda: c.put("rest/api/admin/user/ann.lee/disable"))
    c.delete("rest/api/user/ann.lee/group/staff")
    out["ann_left"] = "ann.lee" not in [m["username"] for m in c.get_all_members("staff")]
    c.remove_group("staff")
    out["group_gone"] = error_of(lambda: c.get_group_members("staff"))
    basic = Confluence(url=ROOT, username=ADMIN, password=PASSWORD)
    out["basic"] = basic.get("rest/api/user/current")["username"]
    wrong = Confluence(url=ROOT, username=ADMIN, password="wrong")
    out["wrong_password"] = error_of(lambda: wrong.get("rest/api/user/current"))
    # Two injected 429s with Retry-After 1: the client waits and retries by itself.
    requests.post(
        f"{ROOT}/_sim/faults",
        json={"fail_next": 2, "fail_match": "GET /rest/api/user", "error_status": 429, "retry_after_secs": 1},
        verify=os.environ.get("REQUESTS_CA_BUNDLE", True),
    ).raise_for_status()
    patient = Confluence(url=ROOT, token=TOKEN, backoff_and_retry=True, max_backoff_retries=3)
    out["after_429"] = patient.get_user_details_by_username("bulk000")["username"]
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
