"""One access log line per request, through aiohttp's access logger ("aiohttp.access"), in the
configured text or JSON format, never with a secret in it.

Join links, order pages, console sign-in links and the like carry their secret in the path,
so those paths are logged with the secret cut; query strings (which may carry anything) and
request headers such as Referer and Authorization are never logged.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Paths whose next segment is a secret (a join code, an order code, a sign-in token): logged
# as the prefix and an ellipsis.
SECRET_PREFIXES = ("/j/", "/r/", "/o/", "/org/login/", "/c/", "/move/")
CUT = "…"
JOIN_PATH = "/j/" + CUT

# The client address as resolved behind trusted proxies (web/edge.py); the access logger is
# handed the request as it arrived, before the proxy middleware's clone. (aiohttp 3.14 brought
# typed request keys and warns about plain strings; older versions take the string.)
CLIENT_ADDRESS = web.RequestKey("client_address", str) if hasattr(web, "RequestKey") else "client_address"


def loggable_path(path: str) -> str:
    """`path` with the secret cut when it lies under a secret prefix: /j/AbC… → /j/…"""
    for prefix in SECRET_PREFIXES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + CUT
    return path


class AccessLogger(AbstractAccessLogger):
    """`GET /j/…` with status, bytes, duration and client address as fields."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = loggable_path(request.path)
        # A full room opens its links within a minute: each admission (the redirect into the
        # room) is counted on its ticket and in the request metrics, and logged at DEBUG, not
        # line by line at INFO. A link that does not admit (a waiting page, a refusal) is INFO.
        level = logging.DEBUG if path == JOIN_PATH and response.status == 302 else logging.INFO
        self.logger.log(level, "%s %s", request.method, path, extra={
            "status": response.status, "bytes": response.body_length, "duration_ms": round(time * 1000, 1),
            "client": request.get(CLIENT_ADDRESS) or request.remote or "-",
        })
