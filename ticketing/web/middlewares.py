"""Middlewares: request id and metrics, and errors turned into JSON or a page, never a trace."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ticketing.db import is_unavailable
from ticketing.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, RateLimited, Unavailable
from ticketing.logs import context_id
from ticketing.web.keys import METRICS
from ticketing.web.responses import error_response

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_OF = {Invalid: 422, NotFound: 404, Forbidden: 403, Conflict: 409, RateLimited: 429, Unavailable: 503}
CODE_OF_STATUS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 410: "gone", 413: "body_too_large", 415: "unsupported_media_type",
    422: "invalid", 429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}


def status_of(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id for the logs and count the request by route."""
    token = context_id.set(request.headers.get("X-Request-ID", "")[:64] or secrets.token_hex(8))
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        context_id.reset(token)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors and HTTP errors in the shape the route speaks; anything else a plain 500."""
    try:
        return await handler(request)
    except DomainError as error:
        status = status_of(error)
        response = error_response(request, status, error.code, error.message, field=error.field)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        response = error_response(request, exc.status, CODE_OF_STATUS.get(exc.status, "error"), message)
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception as error:
        if is_unavailable(error):
            logger.warning("database unavailable", extra={"path": request.path, "error": type(error).__name__})
            return error_response(request, 503, "unavailable", "The service is briefly unavailable; try again shortly.")
        logger.exception("unhandled error", extra={"path": request.path})
        return error_response(request, 500, "internal_error", "Something went wrong on our side; it has been logged.")
