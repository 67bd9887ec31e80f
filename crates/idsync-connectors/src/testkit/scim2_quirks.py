"""scim2-server (PyPI) in a quirk mode, as SCIM services in the wild misbehave.

Runs the real scim2-server test server (same arguments) with its WSGI application wrapped by
the quirks named in the SCIM2_QUIRKS environment variable (comma-separated):

- ignores-filters: the `filter` query parameter of list requests is dropped, so a search
  answers with the whole list (while the ServiceProviderConfig still says filter.supported);
- crashes-on-count: a list request carrying `count` answers 500 with a plain-text body;
- lists-need-filter: a list of /Users or /Groups without `filter` answers 400 (a service that
  can only be searched, never listed);
- refuses-sub-attributes: a POST, PUT or PATCH of /Users carrying `emails[].primary` answers
  400 invalidValue naming it ("Attribute emails.primary is not supported"); `refuses=<a.b>`
  (`refuses=emails.type`, `refuses=title`, one quirk per attribute) refuses that attribute
  instead;
- requires-members: a POST of /Groups without members answers 400 invalidValue naming
  members ("members is required ...");
- drops-members-on-create: a POST of /Groups creates the group without the members it carries
  and answers `"members": []`, as django-scim2 does (members are taken by PATCH only);
- answers-without-members: a POST of /Groups keeps its members but answers without the
  `members` attribute (a minimal answer);
- refuses-members-on-create: a POST of /Groups carrying members answers 400 invalidValue
  naming them (members are taken by PATCH only).

Whatever the quirks, list requests (GET of /Users or /Groups, filtered or not) are counted by
endpoint, and `GET /_quirks/lists` answers the counts (`{"/Users": 3}`), so a test can tell how
often a run listed the service.
"""

import io
import json
import os
import sys
import threading
from urllib.parse import parse_qsl, urlencode

import scim2_server.testserver.cli as cli

QUIRKS = {q.strip() for q in os.environ.get("SCIM2_QUIRKS", "").split(",") if q.strip()}
REFUSED = [q[len("refuses="):] for q in QUIRKS if q.startswith("refuses=")]
if "refuses-sub-attributes" in QUIRKS and not REFUSED:
    REFUSED = ["emails.primary"]


def error(start_response, detail):
    body = json.dumps(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "400",
            "scimType": "invalidValue",
            "detail": detail,
        }
    ).encode()
    start_response("400 Bad Request", [("Content-Type", "application/scim+json")])
    return [body]


def plain(path):
    """A PATCH path without filters and schema prefix: emails[type eq "work"].primary is
    emails.primary."""
    out, depth = "", 0
    for c in path:
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif depth == 0:
            out += c
    if out.startswith("urn:"):
        out = out.rsplit(":", 1)[-1]
    return out


def carries(v, attribute):
    """Whether a resource (or a PATCH value) carries the attribute `a` or `a.b`."""
    head, _, sub = attribute.partition(".")
    if isinstance(v, list):
        return any(carries(i, attribute) for i in v)
    if not isinstance(v, dict):
        return False
    for k, inner in v.items():
        if k.startswith("urn:") and carries(inner, attribute):
            return True
    if head not in v:
        return False
    if not sub:
        return True
    inner = v[head]
    items = inner if isinstance(inner, list) else [inner]
    return any(isinstance(i, dict) and sub in i for i in items)


def refused_in(body):
    """The first refused attribute a /Users request body carries."""
    for attribute in REFUSED:
        if carries(body, attribute):
            return attribute
        for op in body.get("Operations", []) if isinstance(body, dict) else []:
            path = plain(op.get("path", "") or "")
            value = op.get("value")
            head = attribute.partition(".")[0]
            if path == attribute:
                return attribute
            if path == head and carries({head: value}, attribute):
                return attribute
            if not path and carries(value, attribute):
                return attribute
    return None


def answer_members(app, environ, start_response, members):
    """The application's answer with `members` in it (None: without the attribute)."""
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    chunks = app(environ, capture)
    try:
        raw = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    try:
        answer = json.loads(raw)
        if isinstance(answer, dict) and "id" in answer:
            if members is None:
                answer.pop("members", None)
            else:
                answer["members"] = members
            raw = json.dumps(answer).encode()
    except ValueError:
        pass
    headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(raw))))
    start_response(captured["status"], headers)
    return [raw]


def read_body(environ):
    """The request body, put back for the application to read."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


LISTS = {}
LISTS_LOCK = threading.Lock()


def quirky(app):
    def wrapped(environ, start_response):
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        names = {k for k, _ in query}
        path = environ.get("PATH_INFO", "").rstrip("/")
        if path.endswith("/_quirks/lists"):
            with LISTS_LOCK:
                body = json.dumps(LISTS).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if environ.get("REQUEST_METHOD") == "GET":
            for endpoint in ("/Users", "/Groups"):
                if path.endswith(endpoint):
                    with LISTS_LOCK:
                        LISTS[endpoint] = LISTS.get(endpoint, 0) + 1
        if "crashes-on-count" in QUIRKS and "count" in names:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"Internal Server Error: unexpected keyword argument 'count'"]
        if (
            "lists-need-filter" in QUIRKS
            and environ.get("REQUEST_METHOD") == "GET"
            and path.endswith(("/Users", "/Groups"))
            and "filter" not in names
        ):
            body = json.dumps(
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "400",
                    "detail": "a filter is required to list resources",
                }
            ).encode()
            start_response("400 Bad Request", [("Content-Type", "application/scim+json")])
            return [body]
        method = environ.get("REQUEST_METHOD")
        if REFUSED and method in ("POST", "PUT", "PATCH") and (
            path.endswith("/Users") or "/Users/" in path
        ):
            attribute = refused_in(read_body(environ))
            if attribute:
                return error(start_response, f"Attribute {attribute} is not supported")
        if "requires-members" in QUIRKS and method == "POST" and path.endswith("/Groups"):
            body = read_body(environ)
            if not (isinstance(body, dict) and body.get("members")):
                return error(
                    start_response,
                    "members is required: a group is created with at least one member",
                )
        if "refuses-members-on-create" in QUIRKS and method == "POST" and path.endswith("/Groups"):
            body = read_body(environ)
            if isinstance(body, dict) and body.get("members"):
                return error(start_response, "members cannot be set when a group is created")
        if "drops-members-on-create" in QUIRKS and method == "POST" and path.endswith("/Groups"):
            body = read_body(environ)
            if isinstance(body, dict) and body.pop("members", None) is not None:
                raw = json.dumps(body).encode()
                environ["wsgi.input"] = io.BytesIO(raw)
                environ["CONTENT_LENGTH"] = str(len(raw))
            return answer_members(app, environ, start_response, [])
        if "answers-without-members" in QUIRKS and method == "POST" and path.endswith("/Groups"):
            return answer_members(app, environ, start_response, None)
        if "ignores-filters" in QUIRKS and "filter" in names:
            environ["QUERY_STRING"] = urlencode([(k, v) for k, v in query if k != "filter"])
        return app(environ, start_response)

    return wrapped


real_make_server = cli.make_server


def make_server(host, port, app, **kwargs):
    return real_make_server(host, port, quirky(app), **kwargs)


cli.make_server = make_server

if __name__ == "__main__":
    sys.exit(cli.main())
