"""Console actions on a whole order: give back the tickets of a won chargeback, and choose
the seats a refund made in Stripe's dashboard takes away."""

from __future__ import annotations

import uuid

from aiohttp import web

from ticketing import i18n
from ticketing.errors import N_, Conflict, Invalid, Text
from ticketing.lifecycle import orders as order_lifecycle
from ticketing.tickets.service import order_tickets
from ticketing.web.keys import SESSIONMAKER, SETTINGS
from ticketing.web.org import forms
from ticketing.web.org.auth import checked_form, console_language, organizer_of, page
from ticketing.web.org.pages import _flash_and_go, refused, words
from ticketing.webinars import service as webinars

routes = web.RouteTableDef()


async def _noted(request: web.Request):
    organizer = await organizer_of(request)
    order_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        note, webinar = await order_lifecycle.own_order_note(db, organizer, order_id)
        tickets = await order_tickets(db, order_id)
    return organizer, note, webinar, tickets


@routes.get("/org/orders/{id}/restore")
async def restore_confirm(request: web.Request) -> web.Response:
    organizer, note, webinar, tickets = await _noted(request)
    revoked = [t for t in tickets if t.revoked_reason == "disputed"]
    t = words(request, organizer)
    buyer = note.order.email or t.gettext("an unknown buyer")
    return await page(request, "confirm.html", {
        "heading": t.gettext("Give this order's tickets back?"),
        "lines": [t.ngettext("The dispute over the order of %(buyer)s was won. Restoring takes %(num)d ticket again and "
                             "mails its holder a new join link; the old link stays dead.",
                             "The dispute over the order of %(buyer)s was won. Restoring takes %(num)d tickets again "
                             "and mails each holder a new join link; the old links stay dead.",
                             len(revoked)) % {"buyer": buyer, "num": len(revoked)}],
        "action": request.path, "button": t.gettext("Restore the tickets"), "danger": False,
        "back": f"/org/webinars/{webinar.id}", "back_label": t.gettext("Back"),
    }, organizer=organizer)


@routes.post("/org/orders/{id}/restore")
async def restore(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    order_id = webinars.parse_id(request.match_info["id"])
    await checked_form(request)
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            tickets = await order_lifecycle.restore_order(db, organizer, order_id,
                                                          grace_minutes=request.app[SETTINGS].join_grace_minutes)
            webinar_id = tickets[0].webinar_id
    except Conflict as error:
        _, _, webinar, _ = await _noted(request)
        return await refused(request, organizer, error, f"/org/webinars/{webinar.id}")
    return await _flash_and_go(request, words(request, organizer).ngettext(
        "%(num)d ticket valid again; a new link is on its way.",
        "%(num)d tickets valid again; new links are on their way.", len(tickets)) % {"num": len(tickets)},
        f"/org/webinars/{webinar_id}")


async def _seats_page(request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
    organizer, note, webinar, tickets = await _noted(request)
    refunded = note.refunded
    return await page(request, "order_seats.html", {
        "order": note.order, "webinar": webinar, "refunded": refunded, "error": error,
        "amount": i18n.money(refunded.amount, note.order.currency or webinar.currency,
                             console_language(request, organizer)) if refunded else None,
        "seats": [t for t in tickets if t.status.value == "valid"],
    }, status=status, organizer=organizer)


@routes.get("/org/orders/{id}/seats")
async def seats_form(request: web.Request) -> web.Response:
    return await _seats_page(request)


@routes.post("/org/orders/{id}/seats")
async def seats_take(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    order_id = webinars.parse_id(request.match_info["id"])
    form = await checked_form(request)
    try:
        chosen = [uuid.UUID(str(value)) for value in form.getall("seat", [])]
    except ValueError:
        chosen = None
    try:
        if chosen is None:
            raise Invalid(Text(N_("choose among this order's valid seats")), field="seats")
        async with request.app[SESSIONMAKER].begin() as db:
            tickets = await order_lifecycle.take_refunded_seats(db, organizer, order_id, chosen)
    except Invalid as error:
        return await _seats_page(request, error=forms.in_form_words(error.message, console_language(request, organizer)),
                                 status=422)
    except Conflict as error:
        _, _, webinar, _ = await _noted(request)
        return await refused(request, organizer, error, f"/org/webinars/{webinar.id}")
    who = ", ".join(t.email for t in tickets)
    return await _flash_and_go(request, words(request, organizer).ngettext(
        "Access withdrawn for the refunded seat (%(who)s); its holder is told.",
        "Access withdrawn for the refunded seats (%(who)s); each holder is told.", len(tickets)) % {"who": who},
        f"/org/webinars/{tickets[0].webinar_id}")
