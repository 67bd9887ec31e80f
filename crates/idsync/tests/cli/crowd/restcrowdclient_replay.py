"""Replays the requests Atlassian's Java `RestCrowdClient` (crowd-integration-client-rest) sends
when a product's "Crowd" user directory synchronises (DbCachingRemoteDirectory over
RemoteCrowdDirectory), and parses every answer as the client's JAXB entities read it; prints one
JSON document for `crowd_clients.rs`.

Usage: python restcrowdclient_replay.py full|incremental TOKEN|expired TOKEN [--page N]
Environment: CROWD_URL (ending in /crowd/<target>), CROWD_APP, CROWD_PASSWORD.

The requests, from Atlassian's Javadoc and REST resource docs (usermanagement/1):
- testConnection():           POST /search?entity-type=user&start-index=0&max-results=1&expand=user
                              with a property restriction `name` NULL;
- getCurrentEventToken():     GET /event -> <events newEventToken=".." incrementalSynchronisationAvailable="true"/>
                              (taken before the full synchronisation, so nothing is missed);
- searchUsersWithAttributes(NullRestriction, i, n):
                              POST /search?entity-type=user&start-index=i&max-results=n&expand=user,attributes
                              body <null-search-restriction/>, paged until a short page;
- searchGroupsWithAttributes(NullRestriction, i, n): the same with entity-type=group, expand=group,attributes;
- getMemberships():           GET /group/membership -> <memberships><membership group=".."><users>..</users><groups>..</groups></membership>..;
- getNewEvents(token):        GET /event/{token} -> <events newEventToken=".."> userEvent / groupEvent /
                              userMembershipEvent / groupMembershipEvent ...; a token the server no longer
                              has is an error with reason EVENT_TOKEN_EXPIRED (the product then does a
                              full synchronisation).
Every request carries Accept: application/xml and HTTP Basic with the application's name and
password; request bodies are XML with Content-Type application/xml; charset=UTF-8.
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from lxml import etree

BASE = os.environ["CROWD_URL"].rstrip("/") + "/rest/usermanagement/1"
AUTH = "Basic " + base64.b64encode(
    f"{os.environ['CROWD_APP']}:{os.environ['CROWD_PASSWORD']}".encode()
).decode()

log = []
problems = []


def problem(msg):
    problems.append(msg)


def call(method, path, body=None):
    headers = {"Accept": "application/xml", "Authorization": AUTH}
    data = None
    if body is not None:
        data = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + body).encode()
        headers["Content-Type"] = "application/xml; charset=UTF-8"
    req = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, ctype, raw = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, raw = e.code, e.headers.get("Content-Type", ""), e.read()
    log.append({"method": method, "path": path, "status": status, "bytes": len(raw)})
    if not ctype.split(";")[0].strip() in ("application/xml", "text/xml"):
        problem(f"{method} {path}: answered {ctype!r}, the client reads only XML")
    try:
        doc = etree.fromstring(raw) if raw else None
    except etree.XMLSyntaxError as e:
        problem(f"{method} {path}: not XML: {e}")
        doc = None
    return status, doc


def expect_root(doc, name, where):
    if doc is None or doc.tag != name:
        problem(f"{where}: root element {None if doc is None else doc.tag!r}, the client expects <{name}>")
        return False
    return True


def boolean(el, where):
    """JAXB's xs:boolean: 'true'/'false'/'1'/'0'."""
    if el is None:
        return None
    t = (el.text or "").strip()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    problem(f"{where}: boolean {t!r}")
    return None


def text(el, child):
    c = el.find(child)
    return None if c is None else (c.text or "")


def attributes(el, where):
    """<attributes><attribute name="x"><values><value>v</value></values></attribute></attributes>"""
    out = {}
    attrs = el.find("attributes")
    if attrs is None:
        return out
    for a in attrs.findall("attribute"):
        name = a.get("name")
        if name is None:
            problem(f"{where}: <attribute> without its name attribute")
            continue
        values = a.find("values")
        out[name] = [] if values is None else [v.text or "" for v in values.findall("value")]
    return out


def attributes_list(el, where):
    """A MultiValuedAttributeEntityList element of its own (storedAttributes, deletedAttributes)."""
    if el is None:
        return {}
    wrapper = etree.Element("x")
    wrapper.append(etree.fromstring(etree.tostring(el)))
    wrapper[0].tag = "attributes"
    return attributes(wrapper, where)


def user(el, where):
    name = el.get("name")
    if name is None:
        problem(f"{where}: <user> without its name attribute (UserEntity's name is an XML attribute)")
    if el.find("name") is not None:
        problem(f"{where}: <user> has a <name> element; the client reads the attribute")
    active = boolean(el.find("active"), f"{where} {name} active")
    return {
        "name": name,
        "key": text(el, "key"),
        "active": active,
        "first-name": text(el, "first-name"),
        "last-name": text(el, "last-name"),
        "display-name": text(el, "display-name"),
        "email": text(el, "email"),
        "attributes": attributes(el, f"{where} {name}"),
    }


def group(el, where):
    name = el.get("name")
    if name is None:
        problem(f"{where}: <group> without its name attribute")
    t = text(el, "type")
    if t is not None and t != "GROUP":
        problem(f"{where}: group type {t!r}, the client knows GROUP")
    return {
        "name": name,
        "type": t,
        "active": boolean(el.find("active"), f"{where} {name} active"),
        "description": text(el, "description"),
    }


def error(doc, status, where):
    """<error><reason>..</reason><message>..</message></error> (ErrorEntity)."""
    if not expect_root(doc, "error", where):
        return {"status": status}
    return {"status": status, "reason": text(doc, "reason"), "message": text(doc, "message")}


def search(entity, page, expand, body):
    """Paged search with a restriction body until a short page."""
    found, start = [], 0
    while True:
        status, doc = call(
            "POST",
            f"/search?entity-type={entity}&start-index={start}&max-results={page}&expand={expand}",
            body,
        )
        where = f"search {entity} from {start}"
        if status != 200:
            problem(f"{where}: HTTP {status}")
            return found
        if not expect_root(doc, entity + "s", where):
            return found
        items = doc.findall(entity)
        found += [user(e, where) if entity == "user" else group(e, where) for e in items]
        if len(items) < page:
            return found
        start += page
        if start > 10_000_000:
            problem(f"{where}: paging never ends")
            return found


def event_token(where):
    status, doc = call("GET", "/event")
    if status != 200 or not expect_root(doc, "events", where):
        problem(f"{where}: GET /event answered {status}")
        return None
    avail = doc.get("incrementalSynchronisationAvailable")
    if avail is None:
        problem(f"{where}: no incrementalSynchronisationAvailable: the product would never sync incrementally")
    elif avail not in ("true", "1"):
        problem(f"{where}: incrementalSynchronisationAvailable={avail!r}")
    tok = doc.get("newEventToken")
    if not tok:
        problem(f"{where}: no newEventToken")
    return tok


def full(page):
    status, doc = call(
        "POST",
        "/search?entity-type=user&start-index=0&max-results=1&expand=user",
        "<property-search-restriction><property><name>name</name><type>STRING</type></property>"
        "<match-mode>NULL</match-mode></property-search-restriction>",
    )
    test_connection = status == 200 and expect_root(doc, "users", "testConnection")
    token = event_token("getCurrentEventToken")
    users = search("user", page, "user,attributes", "<null-search-restriction/>")
    groups = search("group", page, "group,attributes", "<null-search-restriction/>")
    status, doc = call("GET", "/group/membership")
    memberships = {}
    if status == 200 and expect_root(doc, "memberships", "getMemberships"):
        for m in doc.findall("membership"):
            g = m.get("group")
            if g is None:
                problem("getMemberships: <membership> without its group attribute")
                continue
            us, gs = m.find("users"), m.find("groups")
            memberships[g] = {
                "users": sorted(u.get("name") for u in ([] if us is None else us.findall("user"))),
                "groups": sorted(x.get("name") for x in ([] if gs is None else gs.findall("group"))),
            }
    else:
        problem(f"getMemberships: HTTP {status}")
    return {
        "test_connection": test_connection,
        "token": token,
        "users": users,
        "groups": groups,
        "memberships": memberships,
    }


def new_events(token):
    status, doc = call("GET", "/event/" + urllib.parse.quote(token, safe=""))
    if status != 200:
        return {"status": status, "error": error(doc, status, "getNewEvents")}
    if not expect_root(doc, "events", "getNewEvents"):
        return {"status": status}
    out = []
    for e in doc:
        if not isinstance(e.tag, str):
            continue
        where = f"event <{e.tag}>"
        op = text(e, "operation")
        if op not in ("CREATED", "UPDATED", "DELETED"):
            problem(f"{where}: operation {op!r}")
        if e.tag == "userEvent":
            # UserEventEntity: the user, and the attributes stored and deleted by the change.
            u = e.find("user")
            out.append({
                "kind": "user",
                "op": op,
                "user": None if u is None else user(u, where),
                "storedAttributes": attributes_list(e.find("storedAttributes"), where),
                "deletedAttributes": attributes_list(e.find("deletedAttributes"), where),
            })
        elif e.tag == "groupEvent":
            g = e.find("group")
            out.append({"kind": "group", "op": op, "group": None if g is None else group(g, where)})
        elif e.tag == "userMembershipEvent":
            c, ps = e.find("childUser"), e.find("parentGroups")
            out.append({
                "kind": "user-membership",
                "op": op,
                "user": None if c is None else c.get("name"),
                "groups": sorted(g.get("name") for g in ([] if ps is None else ps.findall("group"))),
            })
        elif e.tag == "groupMembershipEvent":
            c, ps = e.find("childGroup"), e.find("parentGroups")
            out.append({
                "kind": "group-membership",
                "op": op,
                "group": None if c is None else c.get("name"),
                "groups": sorted(g.get("name") for g in ([] if ps is None else ps.findall("group"))),
            })
        else:
            problem(f"getNewEvents: unknown element <{e.tag}> (JAXB would skip it)")
    return {"status": status, "newEventToken": doc.get("newEventToken"), "events": out}


def main():
    what = sys.argv[1]
    page = int(sys.argv[sys.argv.index("--page") + 1]) if "--page" in sys.argv else 1000
    if what == "full":
        out = full(page)
    elif what == "incremental":
        first = new_events(sys.argv[2])
        # The product stores the new token and asks again at its next interval: nothing new.
        again = new_events(first.get("newEventToken") or sys.argv[2])
        out = {"first": first, "again": again}
    else:
        out = new_events(sys.argv[2])
    out["requests"] = log
    out["problems"] = problems
    print(json.dumps(out, sort_keys=True))


main()
