"""atlassian-python-api's Bamboo client against idsync's Bamboo simulator: it creates users and
groups, pages through users and group members, adds and removes members in batches, renames
and deletes users, and meets Bamboo's error bodies. Prints what it saw as JSON."""
import json
import os
import sys

from requests.exceptions import HTTPError
from atlassian import Bamboo

root = os.environ["SIM_ROOT"]
token = Bamboo(url=root, token=os.environ["SIM_TOKEN"])
basic = Bamboo(url=root, username=os.environ["SIM_ADMIN"], password=os.environ["SIM_PASSWORD"])
out = {}


def failure(call):
    try:
        call()
    except HTTPError as e:
        return [e.response.status_code, str(e), e.response.json()]
    return None


out["current_user"] = basic.get_current_user()["name"]
out["bad_token"] = failure(lambda: Bamboo(url=root, token="wrong").get_users())
token.create_user({"name": "Ann.Lee", "fullName": "Ann Lee", "email": "ann@example.com",
                   "password": "x1", "passwordConfirm": "x1"})
for i in range(120):
    token.create_user({"name": f"user{i:03}", "fullName": f"User {i}", "email": f"u{i}@example.com",
                       "password": "p", "passwordConfirm": "p"})
out["duplicate"] = failure(lambda: token.create_user(
    {"name": "ann.lee", "fullName": "A", "email": "a@example.com", "password": "p", "passwordConfirm": "p"}))
out["no_password"] = failure(lambda: token.create_user(
    {"name": "nopass", "fullName": "N", "email": "n@example.com"}))
pages, start = [], 0
while True:
    p = token.get_users(start=start, limit=50)
    pages.append(len(p["results"]))
    if p["isLastPage"]:
        break
    start += p["size"]
out["user_pages"] = pages
token.create_group("engineering")
out["group_duplicate"] = failure(lambda: token.create_group("Engineering"))
out["groups"] = sorted(g["name"] for g in token.get_groups(limit=100)["results"])
token.add_users_into_group("engineering", ["Ann.Lee"] + [f"user{i:03}" for i in range(60)])
out["add_unknown"] = failure(lambda: token.add_users_into_group("engineering", ["user000", "ghost"]))
first = token.get_users_from_group("engineering", limit=25)
out["members_first"] = [first["size"], first["isLastPage"]]
out["members_filtered"] = [u["name"] for u in token.get_users_from_group("engineering", filter_users="ann")["results"]]
token.remove_users_from_group("engineering", [f"user{i:03}" for i in range(10)])
total, start = 0, 0
while True:
    p = token.get_users_from_group("engineering", start=start, limit=25)
    total += p["size"]
    if p["isLastPage"]:
        break
    start += p["size"]
out["members_after_remove"] = total
out["non_members"] = token.get_users_not_in_group("engineering", filter_users="user00", limit=100)["size"]
token.rename_user({"oldName": "Ann.Lee", "name": "ann.smith"})
out["renamed_in_group"] = [u["name"] for u in token.get_users_from_group("engineering", filter_users="ann")["results"]]
out["delete_missing"] = failure(lambda: token.delete_user("Ann.Lee"))
token.delete_user("ann.smith")
token.delete_group("engineering")
out["group_gone"] = failure(lambda: token.get_users_from_group("engineering"))
json.dump(out, sys.stdout)
