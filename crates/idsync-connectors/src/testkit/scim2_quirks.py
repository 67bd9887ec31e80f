"""scim2-server (PyPI) in a quirk mode, as SCIM services in the wild misbehave.

Runs the real scim2-server test server (same arguments) with its WSGI application wrapped by
the quirks named in the SCIM2_QUIRKS environment variable (comma-separated):

- ignores-filters: the `filter` query parameter of list requests is dropped, so a search
  answers with the whole list (while the ServiceProviderConfig still says filter.supported);
- crashes-on-count: a list request carrying `count` answers 500 with a plain-text body.
"""

import os
import sys
from urllib.parse import parse_qsl, urlencode

import scim2_server.testserver.cli as cli

QUIRKS = {q.strip() for q in os.environ.get("SCIM2_QUIRKS", "").split(",") if q.strip()}


def quirky(app):
    def wrapped(environ, start_response):
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        names = {k for k, _ in query}
        if "crashes-on-count" in QUIRKS and "count" in names:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"Internal Server Error: unexpected keyword argument 'count'"]
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
