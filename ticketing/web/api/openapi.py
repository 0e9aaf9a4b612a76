"""GET /api/openapi.json: the OpenAPI 3.1 document of the organizer API and the webhook.

The document is kept by hand in openapi.yaml beside this module (how to add a route is
written at its top); it is read once and served as JSON with this service's base URL.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from ticketing.web.keys import SETTINGS
from ticketing.web.responses import dumps

DOCUMENT_FILE = Path(__file__).with_name("openapi.yaml")

routes = web.RouteTableDef()


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document as written in openapi.yaml (without `servers`)."""
    with DOCUMENT_FILE.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


@functools.cache
def _document_json(base_url: str) -> str:
    served = copy.deepcopy(document())
    served["servers"] = [{"url": base_url}]
    return dumps(served)


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    """The document, with `servers` naming this service's public URL; no API key needed."""
    return web.Response(text=_document_json(request.app[SETTINGS].base_url), content_type="application/json")
