"""Where requests enter: the HTTP parser's limits, oversized headers answered in our error shape,
and the client address behind trusted reverse proxies.

aiohttp answers a request line or header over its parser limits itself, as plain text, before
any route or middleware runs. So the server's parser is given limits well above ours
(`HANDLER_ARGS`, handed to the server through the application's `handler_args`) and the
middleware `header_limits` enforces ours (aiohttp's defaults) with a JSON error on /api and
/webhooks (a page elsewhere): 414 for a request target, 431 for headers. Only requests past
even the parser's limits still get aiohttp's own plain 400.

Behind a reverse proxy every request comes from the proxy. `TrustedProxies` takes the client
address (and scheme) from `X-Forwarded-For` / `X-Forwarded-Proto` (aio-libs' aiohttp-remotes)
or `Forwarded` (RFC 7239, as aiohttp parses it), but only when the peer itself is one of
`TICKETING_TRUSTED_PROXIES`, walking back over trusted hops to the first address that is not.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp_remotes import XForwardedFiltered

from ticketing.settings import IPNetwork, Settings
from ticketing.web.access_log import CLIENT_ADDRESS, AccessLogger
from ticketing.web.api.auth import API_KEY_LIMIT
from ticketing.web.ratelimit import RateLimiter
from ticketing.web.responses import error_response

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Ours: aiohttp's defaults for one request line or header line, and for the number of headers.
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 128
# The parser's: far enough above ours that nearly every oversized request reaches `header_limits`,
# yet bounded: a request's headers are held in memory (at most about 10 MiB here, all sent by it).
PARSER_LIMIT_BYTES = 64 * 1024
PARSER_MAX_HEADERS = 160


class ServerLog(logging.LoggerAdapter):
    """aiohttp's server logger, except that a request its parser refuses (a NUL byte or another
    forbidden character in a header, a line without a colon) is the client's mistake: aiohttp
    answers it 400 and the access log has its line, so it is noted at DEBUG without the stack
    trace aiohttp would log as an ERROR for each one (anyone could flood the log with them)."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= (exc_info.code or 500) < 500:
            reason = (str(exc_info.message or "").strip().splitlines() or ["malformed"])[0][:80]
            self.logger.debug("refused a malformed request: %s", reason)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


HANDLER_ARGS: dict[str, Any] = {
    "max_line_size": PARSER_LIMIT_BYTES,
    "max_field_size": PARSER_LIMIT_BYTES,
    "max_headers": PARSER_MAX_HEADERS,
    "access_log_class": AccessLogger,
    "logger": ServerLog(logging.getLogger("aiohttp.server")),
}


@web.middleware
async def header_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """414 for a request target over MAX_LINE_BYTES, 431 for a header over MAX_FIELD_BYTES or more
    than MAX_HEADERS headers: aiohttp's own limits, answered in the route's error shape."""
    if len(request.raw_path) > MAX_LINE_BYTES:
        return error_response(request, 414, "uri_too_long",
                              f"the request target is longer than {MAX_LINE_BYTES} bytes")
    if len(request.raw_headers) > MAX_HEADERS:
        return error_response(request, 431, "headers_too_large", f"more than {MAX_HEADERS} request headers")
    for name, value in request.raw_headers:
        if len(name) + len(value) + 2 > MAX_FIELD_BYTES:
            shown = name.decode("ascii", "replace")[:40]
            return error_response(request, 431, "headers_too_large",
                                  f"the request header {shown} is longer than {MAX_FIELD_BYTES} bytes")
    return await handler(request)


class TrustedProxies:
    """The client address and scheme forwarded by trusted reverse proxies, and only by them."""

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self.networks = tuple(networks)
        self._x_forwarded = XForwardedFiltered(set(self.networks)) if self.networks else None

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._x_forwarded is None or not self.trusts(request.remote):
            return await handler(request)
        if hdrs.X_FORWARDED_FOR in request.headers:
            return await self._from_x_forwarded(request, handler)
        overrides: dict[str, str] = {}
        if hdrs.FORWARDED in request.headers:
            overrides = self._from_forwarded(request)
        elif hdrs.X_FORWARDED_PROTO in request.headers:
            overrides["scheme"] = request.headers[hdrs.X_FORWARDED_PROTO].split(",")[-1].strip()
        return await _handle_as(request, handler, **overrides)

    async def _from_x_forwarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        entered = False

        async def inner(forwarded: web.Request) -> web.StreamResponse:
            nonlocal entered
            entered = True
            request[CLIENT_ADDRESS] = forwarded.remote
            if forwarded.host != request.host:  # X-Forwarded-Host is not ours to believe: links use BASE_URL
                forwarded = forwarded.clone(host=request.host, remote=forwarded.remote or "", scheme=forwarded.scheme)
            return await handler(forwarded)

        try:
            assert self._x_forwarded is not None
            return await self._x_forwarded.middleware(request, inner)
        except web.HTTPException as error:
            if entered:  # from the handler, not from reading the headers
                raise
            logger.warning("malformed X-Forwarded-For from a trusted proxy", extra={"proxy": request.remote})
            return error_response(request, 400, "bad_request", error.reason or "malformed X-Forwarded-For header")

    def _from_forwarded(self, request: web.Request) -> dict[str, str]:
        """From the last `Forwarded` element back: skip trusted proxies, stop at the first other
        address (what an untrusted client wrote before it is never read)."""
        overrides: dict[str, str] = {}
        for element in reversed(request.forwarded):
            if "proto" in element:
                overrides["scheme"] = element["proto"]
            node = _node_address(element.get("for"))
            if node is None:
                break
            overrides["remote"] = node
            if not self.trusts(node):
                break
        return overrides


async def _handle_as(request: web.Request, handler: Handler, **overrides: str) -> web.StreamResponse:
    if not overrides:
        return await handler(request)
    if "remote" in overrides:
        request[CLIENT_ADDRESS] = overrides["remote"]
    return await handler(request.clone(**overrides))


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address) if address else None
    except ValueError:
        return None


def _node_address(node: str | None) -> str | None:
    """The address of a `Forwarded` node (`192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`);
    None for an obfuscated or unknown one."""
    if not node:
        return None
    if node.startswith("["):
        node = node[1:].partition("]")[0]
    elif node.count(":") == 1:
        node = node.partition(":")[0]
    ip = _ip(node)
    return str(ip) if ip is not None else None


def setup(app: web.Application, settings: Settings) -> None:
    """Install the edge on an app being built: trusted proxies outermost (so everything after,
    rate limits and logs included, sees the client), header limits innermost, and the limiter
    of failed API-key attempts."""
    app.middlewares.insert(0, TrustedProxies(settings.trusted_proxies).middleware)
    app.middlewares.append(header_limits)
    app[API_KEY_LIMIT] = RateLimiter("api_key.address", settings.api_key_rate_per_address)
