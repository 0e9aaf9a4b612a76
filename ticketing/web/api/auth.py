"""The organizer API's credentials: `Authorization: Bearer <api key>`, with failed attempts
limited per client address."""

from __future__ import annotations

from aiohttp import web

from ticketing.db.models import Organizer
from ticketing.organizers import organizer_for_key
from ticketing.web.keys import SESSIONMAKER
from ticketing.web.ratelimit import RateLimiter

# Failed API-key attempts per client address (TICKETING_API_KEY_RATE_PER_ADDRESS).
API_KEY_LIMIT = web.AppKey("api_key_limit", RateLimiter)


async def organizer_of_request(request: web.Request) -> Organizer:
    """The organizer whose API key the request carries; 401 without one or for an unknown one,
    429 with Retry-After once this address has failed too often (checked before any look-up,
    so a guess is not answered at all; only keys presented and not found count)."""
    limiter = request.app[API_KEY_LIMIT]
    address = request.remote or "unknown"
    wait = await limiter.wait(request.app[SESSIONMAKER], address)
    if wait:
        raise web.HTTPTooManyRequests(text="too many failed API key attempts from this address; try again later",
                                      headers={"Retry-After": str(wait)})
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise web.HTTPUnauthorized(text="send your API key as Authorization: Bearer <key>",
                                   headers={"WWW-Authenticate": "Bearer"})
    async with request.app[SESSIONMAKER]() as session:
        organizer = await organizer_for_key(session, key.strip())
    if organizer is None:
        await limiter.hit(request.app[SESSIONMAKER], address)
        raise web.HTTPUnauthorized(text="unknown API key", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return organizer
