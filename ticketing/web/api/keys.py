"""API keys through the API: list, create (the key is in the answer once), revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ticketing.accounts import apikeys
from ticketing.db.models import ApiKey
from ticketing.web.api.routes import authenticate
from ticketing.web.keys import SESSIONMAKER
from ticketing.web.responses import json_response, read_json
from ticketing.webinars.service import parse_id

routes = web.RouteTableDef()


def key_json(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "created_at": key.created_at,
            "last_used_at": key.last_used_at}


@routes.get("/api/keys")
async def list_keys(request: web.Request) -> web.Response:
    """The organizer's named keys (not the one made with the organizer, which has no name)."""
    organizer = await authenticate(request)
    async with request.app[SESSIONMAKER]() as session:
        keys = await apikeys.list_keys(session, organizer)
    return json_response({"keys": [key_json(k) for k in keys]})


@routes.post("/api/keys")
async def create_key(request: web.Request) -> web.Response:
    """`{"name": …}` → 201 with the new key in `key`, shown this once."""
    organizer = await authenticate(request)
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        key, plain = await apikeys.create_key(session, organizer, data.get("name"))
    response = json_response({**key_json(key), "key": plain}, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.delete("/api/keys/{id}")
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key at once → 204; 404 for an unknown, revoked or another organizer's key."""
    organizer = await authenticate(request)
    key_id = parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER].begin() as session:
        await apikeys.revoke_key(session, organizer, key_id)
    return web.Response(status=204)
