"""Drive the Bitbucket simulator with atlassian-python-api's `Bitbucket` class (a client nobody
here wrote): over HTTPS with a personal access token and with Basic, create users (through the
client's own `post`, as the class has no method for it), read and search them with its paged
readers (`get_users_info`, `get_users`), create a group, add users in one batch, page through the
group's members with `group_members` (the client follows `nextPageStart`), list groups, rename and
delete a user, and meet Bitbucket's `errors[]` bodies. Prints one JSON line of what it saw."""

import json
import os
import sys
import traceback

from atlassian import Bitbucket
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
    bb = Bitbucket(url=ROOT, token=TOKEN, cloud=False)
    basic = Bitbucket(url=ROOT, username=ADMIN, password=PASSWORD, cloud=False)
    seen = {}
    seen["version"] = bb.get("rest/api/1.0/application-properties")["version"]
    for i in range(30):
        bb.post(
            "rest/api/1.0/admin/users",
            params={
                "name": f"dev{i:02}",
                "displayName": f"Developer {i}",
                "emailAddress": f"dev{i:02}@example.com",
                "password": "unusable-x9",
                "addToDefaultGroup": "true",
                "notify": "false",
            },
        )
    seen["duplicate"] = error_of(
        lambda: bb.post(
            "rest/api/1.0/admin/users",
            params={"name": "DEV00", "displayName": "x", "emailAddress": "x@example.com", "password": "p", "notify": "false"},
        )
    )
    # Paged reads: 31 users (the administrator too) in pages of 7.
    seen["users"] = [u["name"] for u in basic.get_users_info(limit=7)]
    seen["search"] = [u["name"] for u in bb.get_users_info(user_filter="dev1")]
    seen["users_resource"] = [u["slug"] for u in bb.get_users(user_filter="DEV29")["values"]]
    bb.post("rest/api/1.0/admin/groups", params={"name": "developers"})
    bb.post(
        "rest/api/1.0/admin/groups/add-users",
        data={"group": "developers", "users": [f"dev{i:02}" for i in range(0, 30, 2)]},
    )
    seen["members"] = [u["name"] for u in bb.group_members("developers", limit=4)]
    seen["licensed"] = len(list(bb.group_members("stash-users", limit=10)))
    seen["groups"] = sorted(g["name"] for g in bb.get_groups())
    bb.post("rest/api/1.0/admin/groups/remove-user", data={"context": "developers", "itemName": "dev00"})
    seen["after_remove"] = len(list(bb.group_members("developers")))
    renamed = bb.post("rest/api/1.0/admin/users/rename", data={"name": "dev01", "newName": "developer.one"})
    seen["renamed"] = [renamed["name"], renamed["slug"]]
    bb.delete("rest/api/1.0/admin/users", params={"name": "dev02"})
    seen["deleted_gone"] = [u["name"] for u in bb.get_users_info(user_filter="dev02")]
    seen["unknown_group"] = error_of(
        lambda: bb.post("rest/api/1.0/admin/groups/add-users", data={"group": "nope", "users": ["dev03"]})
    )
    seen["bad_token"] = error_of(lambda: list(Bitbucket(url=ROOT, token="wrong", cloud=False).get_users_info()))
    print(json.dumps(seen))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
