"""The waitlist's buyer pages: joining from the sold-out webinar page, the confirmation link,
the person's own page (place in line, leaving) and an offer's checkout or decline."""

from __future__ import annotations

import uuid

from aiohttp import web

from ticketing.db import utcnow
from ticketing.errors import Invalid, NotFound
from ticketing.inputs import email_address
from ticketing.orders import registrations, ticket_types
from ticketing.orders import service as orders
from ticketing.tickets import sealing
from ticketing.waitlist import service as waitlist
from ticketing.web.buyer import pages
from ticketing.web.buyer.common import organizer_of, render_page
from ticketing.web.keys import BUYER_PAGE, REGISTER_LIMIT, SESSIONMAKER
from ticketing.web.responses import read_form, read_json
from ticketing.webinars import service as webinars

routes = web.RouteTableDef()


@routes.post("/w/{id}/waitlist")
async def join(request: web.Request) -> web.Response:
    """Join the waitlist of a sold-out webinar: a confirmation link goes to the address."""
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar = await webinars.get_webinar(session, webinar_id)
        request[BUYER_PAGE] = (webinar, await organizer_of(session, webinar))
    is_json = request.content_type == "application/json"
    data = await (read_json(request) if is_json else read_form(request))
    wait = await request.app[REGISTER_LIMIT].hit(request.app[SESSIONMAKER], request.remote or "unknown")
    if wait:
        raise web.HTTPTooManyRequests(text="Too many requests from your network; try again in a minute.",
                                      headers={"Retry-After": str(wait)})
    email = pages._text(data, "email")
    type_id = None
    if type_text := (pages._text(data, "ticket_type_id") or "").strip():
        try:
            type_id = uuid.UUID(type_text)
        except ValueError:
            raise NotFound("this webinar has no such ticket type") from None
    try:
        quantity = pages._whole(data.get("quantity", 1), empty=1)
        if email and email.strip():
            email = email_address(email)
        async with request.app[SESSIONMAKER].begin() as session:
            await waitlist.join(session, webinar_id, email, name=pages._text(data, "name"), quantity=quantity,
                                ticket_type_id=type_id, now=utcnow())
    except Invalid as problem:
        if is_json:
            raise
        return await pages._webinar_page(request, webinar_id, email=email or "", waitlist_error=_field_message(problem),
                                         waitlist_type=type_id, status=422)
    if is_json:
        return web.json_response({"status": "sent"}, status=202)
    _, organizer = request[BUYER_PAGE]
    return render_page(request, "buyer/waitlist.html", {"state": "sent", "place": None}, webinar=webinar,
                       organizer=organizer, status=202)


def _field_message(problem: Invalid) -> str:
    """Which field the page marks ("email", "quantity", "name"); the template words it."""
    return problem.field if problem.field in ("email", "quantity", "name") else "other"


async def _with_webinar(request: web.Request) -> str:
    code = request.match_info["code"]
    async with request.app[SESSIONMAKER]() as session:
        if (webinar := await waitlist.webinar_of_code(session, code)) is not None:
            request[BUYER_PAGE] = (webinar, await organizer_of(session, webinar))
    return code


def _page(request: web.Request, place: waitlist.Place, state: str, *, status: int = 200) -> web.Response:
    _, organizer = request.get(BUYER_PAGE, (None, None))
    response = render_page(request, "buyer/waitlist.html", {
        "state": state, "place": place, "entry": place.entry, "code": request.match_info["code"],
        "now": utcnow()}, webinar=place.webinar, organizer=organizer, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _state(place: waitlist.Place, now) -> str:
    entry = place.entry
    if entry.outcome is not None:
        return entry.outcome.value
    if entry.held and entry.offered_until is not None and entry.offered_until > now:
        return "offer"
    if entry.confirmed_at is None:
        return "unconfirmed"
    return "waiting"


@routes.get("/wl/{code}/confirm")
async def confirm(request: web.Request) -> web.Response:
    """The confirmation link: takes the place in line (once) and shows it."""
    code = await _with_webinar(request)
    async with request.app[SESSIONMAKER].begin() as session:
        place = await waitlist.confirm(session, code, now=utcnow())
    return _page(request, place, _state(place, utcnow()))


@routes.get("/wl/{code}")
async def own_page(request: web.Request) -> web.Response:
    """The person's page: their place in line, or their offer, and leaving the list."""
    code = await _with_webinar(request)
    async with request.app[SESSIONMAKER]() as session:
        place = await waitlist.place(session, code)
    return _page(request, place, _state(place, utcnow()))


@routes.post("/wl/{code}/leave")
async def leave(request: web.Request) -> web.Response:
    """Leave the list, or decline the offer: held seats go to the next in line at once."""
    code = await _with_webinar(request)
    async with request.app[SESSIONMAKER].begin() as session:
        place = await waitlist.leave(session, code, now=utcnow())
    return _page(request, place, "left")


@routes.post("/wl/{code}/checkout")
async def offer_checkout(request: web.Request) -> web.Response:
    """Checkout for exactly the seats the offer holds, at today's price (a promo code applies)."""
    code = await _with_webinar(request)
    data = await read_form(request)
    promo = (pages._text(data, "code") or "").strip() or None
    browser = sealing.new_private_key()
    now = utcnow()
    async with request.app[SESSIONMAKER].begin() as session:
        entry, webinar = await waitlist.start_checkout(session, code, now=now)
        default = (await ticket_types.default_type(session, webinar.id)).id
        order, webinar = await orders.start_order(
            session, webinar.id, entry.quantity, entry.email, browser_key=sealing.public_key(browser),
            lines=waitlist.offer_lines(entry, default), code=promo, offer=True)
        entry.order_id, order.waitlist_entry_id = order.id, entry.id
        # Nothing to pay (a free webinar, or a code that takes the whole price): the held seats
        # are the person's at once; their address was confirmed when they joined the list.
        free = order.expected_amount == 0
        if free:
            await orders.register_free(session, order, webinar)
            if webinar.price_amount == 0 and not webinar.typed:
                await registrations.register_offered(session, webinar, order, now=now)
        chosen = await orders.priced_lines(session, order)
        applied = promo if order.promo_code_id is not None else None
    return await pages.send_to_payment(request, order, webinar, chosen, applied, browser, until=entry.offered_until,
                                       settled=free)

