"""The buyer's join link `/j/{code}` and the ASAP key server Prosody fetches RS256 keys from."""

from __future__ import annotations

import re

from aiohttp import web

from ticketing.access import join
from ticketing.access.devices import InUse
from ticketing.db import utcnow
from ticketing.db.models import Organizer
from ticketing.errors import NotFound, RateLimited
from ticketing.web.buyer import devices
from ticketing.web.buyer.common import organizer_of, render_page
from ticketing.web.keys import BUYER_PAGE, JOIN_LIMITS, SESSIONMAKER, SETTINGS, TOKENS

routes = web.RouteTableDef()

DIGEST = re.compile(r"[0-9a-f]{64}")


async def _check_rate(request: web.Request, code: str) -> None:
    # The per-address limit guards against guessing codes, so only failed look-ups count
    # (see join_link): a whole office behind one NAT joins at once; the per-code limit counts all.
    limits = request.app[JOIN_LIMITS]
    db = request.app[SESSIONMAKER]
    wait = await limits.per_address.wait(db, request.remote or "unknown") or await limits.per_code.hit(db, code)
    if wait:
        async with db() as session:
            webinar = await join.webinar_of_code(session, code)
            if webinar is not None:
                request[BUYER_PAGE] = (webinar, await organizer_of(session, webinar))
        raise RateLimited("Too many requests for this link; try again in a moment.", retry_after=wait, reason="rate")


async def _organizer(request: web.Request, webinar) -> Organizer | None:
    async with request.app[SESSIONMAKER]() as session:
        return await organizer_of(session, webinar)


@routes.get("/j/{code}")
async def join_link(request: web.Request) -> web.StreamResponse:
    """404 unknown, 410 with the reason, 200 waiting page, or 302 into the Jitsi room."""
    code = request.match_info["code"]
    await _check_rate(request, code)
    device = devices.device_of(request)
    try:
        decision = await join.open_link(request.app[SESSIONMAKER], request.app[TOKENS], code, now=utcnow(),
                                        device=device.id)
    except NotFound:
        await request.app[JOIN_LIMITS].per_address.hit(request.app[SESSIONMAKER], request.remote or "unknown")
        raise
    match decision:
        case join.Admitted(url=url):
            # The token is in the Location only; nothing here may be cached or passed on.
            raise devices.remember(web.HTTPFound(url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}),
                                   request.app[SETTINGS], device)
        case InUse():
            return devices.in_use_page(request, decision, code, device)
        case join.Waiting():
            organizer = await _organizer(request, decision.webinar)
            return render_page(request, "buyer/waiting.html", {"waiting": decision}, webinar=decision.webinar,
                               organizer=organizer)
        case join.Gone():
            organizer = await _organizer(request, decision.webinar)
            return render_page(request, "buyer/gone.html", {"gone": decision}, webinar=decision.webinar,
                               organizer=organizer, status=410)
    raise AssertionError(f"unexpected decision {decision!r}")


@routes.get("/asap/{digest}.pem")
async def asap_key(request: web.Request) -> web.Response:
    """The RS256 public key whose key id hashes to `digest` (Prosody's asap_key_server); 404 otherwise."""
    digest = request.match_info["digest"].lower()
    pem = request.app[TOKENS].keys.pem_for_digest(digest) if DIGEST.fullmatch(digest) else None
    if pem is None:
        raise web.HTTPNotFound(text="no such key")
    response = web.Response(body=pem, content_type="application/x-pem-file")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
