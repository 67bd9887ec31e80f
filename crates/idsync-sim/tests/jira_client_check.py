"""Drive the Jira simulator with atlassian-python-api's `Jira` class (a client nobody here
wrote): over HTTPS with a personal access token and with Basic, create, read, search, update,
deactivate and delete users, create groups and page through their members, set and read a user
property, read the application roles, meet Jira's errors, and ride out injected 429s with the
client's own Retry-After handling. Prints one JSON line of what it saw."""

import json
import os
import sys
import traceback

import requests
from atlassian import Jira
from requests import HTTPError

ROOT = os.environ["SIM_ROOT"]
TOKEN = os.environ["SIM_TOKEN"]
ADMIN = os.environ["SIM_ADMIN"]
PASSWORD = os.environ["SIM_PASSWORD"]


def error_of(call):
    try:
        call()
    except HTTPError as e:
        return [e.response.status_code if e.response is not None else None, str(e)]
    return None


def main() -> None:
    out = {}
    jira = Jira(url=ROOT, token=TOKEN)
    info = jira.get_server_info()
    out["version"] = info["version"]
    out["myself"] = jira.myself()["name"]

    created = jira.user_create("Ann.Lee", "ann.lee@example.com", "Ann Lee", notification=False)
    out["created_key_prefix"] = created["key"][:8]
    out["created_active"] = created["active"]
    ann = jira.user("ann.lee")  # usernames are matched without regard to case
    out["read_name"] = ann["name"]
    out["read_key_same"] = ann["key"] == created["key"]
    out["by_key"] = jira.user(key=created["key"])["name"]
    out["duplicate"] = error_of(
        lambda: jira.user_create("ANN.LEE", "x@example.com", "Dup", notification=False)
    )

    for i in range(120):
        jira.user_create(f"bulk{i:03}", f"bulk{i:03}@example.com", f"Bulk {i:03}", notification=False)
    pages = []
    start = 0
    while True:
        page = jira.user_find_by_user_string(username="bulk", start=start, limit=50)
        pages.append(len(page))
        if len(page) < 50:
            break
        start += 50
    out["search_pages"] = pages
    out["search_by_email"] = [
        u["name"] for u in jira.user_find_by_user_string(username="ann.lee@example")
    ]
    out["search_all"] = len(jira.user_find_by_user_string(username=".", limit=1000))

    jira.create_group("Developers")
    out["group_duplicate"] = error_of(lambda: jira.create_group("developers"))
    for i in range(60):
        jira.add_user_to_group(username=f"bulk{i:03}", group_name="Developers")
    jira.add_user_to_group(username="ann.lee", group_name="developers")
    out["already_member"] = error_of(
        lambda: jira.add_user_to_group(username="ann.lee", group_name="Developers")
    )
    first = jira.get_all_users_from_group("Developers", start=0, limit=50)
    second = jira.get_all_users_from_group("Developers", start=50, limit=50)
    out["members_first"] = [len(first["values"]), first["isLast"], first["total"], "nextPage" in first]
    out["members_second"] = [len(second["values"]), second["isLast"]]
    out["capped_page"] = len(jira.get_all_users_from_group("Developers", limit=500)["values"])
    out["picker"] = [g["name"] for g in jira.get_groups(query="dev")["groups"]]
    out["ann_groups"] = sorted(
        g["name"] for g in jira.user("ann.lee", expand="groups")["groups"]["items"]
    )

    jira.user_set_property(username="ann.lee", key_property="idsync", value_property={"department": "R&D"})
    out["property"] = jira.user_property(username="ann.lee", key_property="idsync")["value"]

    jira.user_update_email("ann.lee", "ann@example.org")
    jira.user_update_username("ann.lee", "ann.lee2")
    renamed = jira.user(key=created["key"])
    out["renamed"] = [renamed["name"], renamed["emailAddress"]]
    jira.user_deactivate("ann.lee2")
    out["active_after_deactivate"] = jira.is_active_user("ann.lee2")
    out["inactive_hidden"] = len(jira.user_find_by_user_string(username="ann.lee2"))
    out["inactive_found"] = len(
        jira.user_find_by_user_string(username="ann.lee2", include_inactive_users=True)
    )

    roles = jira.get_all_application_roles()
    out["roles"] = [[r["key"], r["userCount"]] for r in roles]

    jira.remove_user_from_group(username="ann.lee2", group_name="Developers")
    out["not_member"] = error_of(
        lambda: jira.remove_user_from_group(username="ann.lee2", group_name="Developers")
    )
    jira.remove_group("Developers")
    out["group_gone"] = error_of(lambda: jira.get_all_users_from_group("Developers"))
    jira.user_remove(username="ann.lee2")
    out["user_gone"] = error_of(lambda: jira.user("ann.lee2"))

    basic = Jira(url=ROOT, username=ADMIN, password=PASSWORD)
    out["basic"] = basic.myself()["name"]
    wrong = Jira(url=ROOT, username=ADMIN, password="wrong")
    out["wrong_password"] = error_of(lambda: wrong.myself())

    # Two injected 429s with Retry-After 1: the client waits and retries by itself.
    requests.post(
        f"{ROOT}/_sim/faults",
        json={"fail_next": 2, "fail_match": "GET /rest/api/2/user", "error_status": 429, "retry_after_secs": 1},
    ).raise_for_status()
    patient = Jira(url=ROOT, token=TOKEN, backoff_and_retry=True, max_backoff_retries=3)
    out["after_429"] = patient.user("bulk000")["name"]
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
