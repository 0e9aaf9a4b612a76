"""One device per ticket, at the edge: the device cookie, the "in use on another device" page,
its "send me a link" button (`POST /j/{code}/move`) and the mailed move link (`/move/{token}`).

Every step is a plain form, so it works without JavaScript. The move link moves the ticket at
once in the browser that asked for it (its device cookie); anywhere else its page asks for a
button press, so a mail scanner that follows links never uses it up.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from ticketing.access import devices as claims
from ticketing.access import join
from ticketing.attendance import devices
from ticketing.db import utcnow
from ticketing.settings import Settings
from ticketing.web.keys import SESSIONMAKER, SETTINGS, TOKENS
from ticketing.web.responses import render

routes = web.RouteTableDef()

COOKIE_MAX_AGE = 400 * 24 * 3600  # browsers cap cookie lifetimes at about 400 days


@dataclasses.dataclass(frozen=True)
class Device:
    """This browser's device id, and whether it still needs its cookie."""

    id: str
    new: bool


def device_of(request: web.Request) -> Device:
    """The browser's device from its signed cookie, or a new one."""
    known = claims.device_from_cookie(request.app[SETTINGS], request.cookies.get(claims.COOKIE))
    return Device(known, False) if known else Device(claims.new_device(), True)


def remember(response: web.StreamResponse, settings: Settings, device: Device) -> web.StreamResponse:
    """Give a new browser its device cookie (HttpOnly, SameSite=Lax, Secure under https)."""
    if device.new:
        response.set_cookie(claims.COOKIE, claims.sign_device(settings, device.id), max_age=COOKIE_MAX_AGE,
                            path="/", httponly=True, samesite="Lax", secure=settings.base_url.startswith("https://"))
    return response


def in_use_page(request: web.Request, decision: claims.InUse, code: str, device: Device) -> web.Response:
    """409: the ticket is in the room from another device; a button mails the holder a move link."""
    response = render(request, "buyer/in_use.html", {"in_use": decision, "webinar": decision.webinar, "code": code},
                      status=409)
    return remember(response, request.app[SETTINGS], device)


def _decision_page(request: web.Request, decision) -> web.Response:
    match decision:
        case join.Waiting():
            return render(request, "buyer/waiting.html", {"waiting": decision, "webinar": decision.webinar})
        case join.Gone():
            return render(request, "buyer/gone.html", {"gone": decision, "webinar": decision.webinar}, status=410)
    raise AssertionError(f"unexpected decision {decision!r}")


@routes.post("/j/{code}/move")
async def ask_for_move(request: web.Request) -> web.Response:
    """The in-use page's button: mail the ticket's holder a one-time "move here" link."""
    device = device_of(request)
    result = await devices.ask_for_move(request.app[SESSIONMAKER], request.app[SETTINGS], request.match_info["code"],
                                        device.id, now=utcnow())
    if not isinstance(result, devices.MoveRequested):
        return _decision_page(request, result)
    response = render(request, "buyer/move_sent.html", {"sent": result, "webinar": result.webinar})
    return remember(response, request.app[SETTINGS], device)


@routes.get("/move/{token}")
async def move_page(request: web.Request) -> web.StreamResponse:
    """The mailed link: in the browser that asked for it, straight into the room; elsewhere a
    page with one button that moves the ticket to this browser (410 once used or expired)."""
    device = device_of(request)
    async with request.app[SESSIONMAKER]() as session:
        link = await devices.find_move(session, request.match_info["token"], now=utcnow())
    if not device.new and devices.opens_directly(link, device.id):
        return await move_here(request)
    return render(request, "buyer/move.html", {"link": link, "webinar": link.webinar},
                  status=410 if link.problem else 200)


@routes.post("/move/{token}")
async def move_here(request: web.Request) -> web.StreamResponse:
    """Move the ticket to this browser and go into the room with a fresh token."""
    device = device_of(request)
    result = await devices.complete_move(request.app[SESSIONMAKER], request.app[TOKENS], request.match_info["token"],
                                         device.id, now=utcnow())
    match result:
        case devices.Moved(url=url):
            found = web.HTTPSeeOther(url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
            remember(found, request.app[SETTINGS], device)
            raise found
        case devices.MoveLink():
            return render(request, "buyer/move.html", {"link": result, "webinar": result.webinar}, status=410)
    return _decision_page(request, result)
