"""Building responses: JSON bodies, error bodies, pages from templates; and reading JSON input."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from aiohttp import web

from ticketing import i18n
from ticketing.inputs import check_storable
from ticketing.web.headers import content_security_policy, page_nonce
from ticketing.web.keys import BUYER_PAGE, SETTINGS, TEMPLATES

JSON_PREFIXES = ("/api/", "/webhooks/")


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200, *,
           inline_styles: bool = False) -> web.Response:
    """A page from `template`; its scripts carry `csp_nonce`, the nonce of its Content-Security-Policy."""
    nonce = page_nonce(request)
    page = request.app[TEMPLATES].get_template(template).render(settings=request.app[SETTINGS], csp_nonce=nonce,
                                                                **context)
    response = web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = content_security_policy(nonce, inline_styles=inline_styles)
    return response


def error_response(request: web.Request, status: int, code: str, message: str, *, field: str | None = None,
                   reason: str | None = None, left: int = 0) -> web.Response:
    if request.path.startswith(JSON_PREFIXES):
        error: dict[str, Any] = {"code": code, "message": message}
        if field:
            error["field"] = field
        return json_response({"error": error}, status=status)
    page = {"status": status, "code": code, "message": message, "field": field, "reason": reason,
            "left": left}
    if (buyer := request.get(BUYER_PAGE)) is not None:
        webinar, organizer = buyer
        return render(request, "buyer/error.html", {**i18n.gettext_context(webinar.language), **page,
                                                    "webinar": webinar, "organizer": organizer}, status=status)
    # A refusal with a reason can be said in the reader's language; other plain errors stay English.
    lang = i18n.preferred_language(request.headers.get("Accept-Language")) if reason else i18n.DEFAULT
    return render(request, "error.html", {**i18n.gettext_context(lang), **page}, status=status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object: 415 when it is not JSON, 400 when malformed, 413 when too large,
    422 when a value could not be stored (inputs.check_storable)."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the body as JSON with Content-Type: application/json")
    body = await request.read()
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise web.HTTPBadRequest(text="the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    check_storable(data)
    return data


async def read_form(request: web.Request) -> dict[str, Any]:
    """The request's form fields (the last value of each), with the same check as JSON input:
    Invalid (422) for a NUL byte or a lone surrogate in any of them."""
    form = await request.post()
    data = {key: value for key, value in form.items() if isinstance(value, str)}
    check_storable(data)
    return data
