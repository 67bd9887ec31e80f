"""scim2-server (PyPI) in a quirk mode, as SCIM services in the wild misbehave.

Runs the real scim2-server test server (same arguments) with its WSGI application wrapped by
the quirks named in the SCIM2_QUIRKS environment variable (comma-separated):

- ignores-filters: the `filter` query parameter of list requests is dropped, so a search
  answers with the whole list (while the ServiceProviderConfig still says filter.supported);
- crashes-on-count: a list request carrying `count` answers 500 with a plain-text body;
- lists-need-filter: a list of /Users or /Groups without `filter` answers 400 (a service that
  can only be searched, never listed).

Whatever the quirks, list requests (GET of /Users or /Groups, filtered or not) are counted by
endpoint, and `GET /_quirks/lists` answers the counts (`{"/Users": 3}`), so a test can tell how
often a run listed the service.
"""

import json
import os
import sys
import threading
from urllib.parse import parse_qsl, urlencode

import scim2_server.testserver.cli as cli

QUIRKS = {q.strip() for q in os.environ.get("SCIM2_QUIRKS", "").split(",") if q.strip()}


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
