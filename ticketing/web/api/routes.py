"""The organizer API under /api: thin handlers over the webinar and ticket services."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from aiohttp import web

from ticketing.access import join as access
from ticketing.attendance import figures as attendance
from ticketing.db import utcnow
from ticketing.db.models import Organizer, PromoCode, Ticket, TicketType, Webinar
from ticketing.errors import Invalid
from ticketing.lifecycle import orders as order_lifecycle
from ticketing.lifecycle import tickets as ticket_lifecycle
from ticketing.lifecycle import webinars as webinar_lifecycle
from ticketing.messages import service as messages
from ticketing.orders import promo_codes, ticket_types
from ticketing.orders.references import order_reference
from ticketing.organizers import BILLING_FIELDS, update_profile
from ticketing.tickets import service as ticket_service
from ticketing.waitlist import service as waitlist
from ticketing.web.api.auth import organizer_of_request
from ticketing.web.keys import SESSIONMAKER, SETTINGS, TOKENS
from ticketing.web.responses import json_response, read_json
from ticketing.webinars import options as attendance_options
from ticketing.webinars import sales
from ticketing.webinars import service as webinars

routes = web.RouteTableDef()

TICKET_COLUMNS = ("id", "order_id", "email", "name", "status", "revoked_reason", "created_at",
                  "first_joined_at", "last_joined_at", "join_count", "delivery_status", "delivery_error")
# Added after every earlier column (the attendance ones included), so CSV readers that count
# columns keep working.
TYPE_COLUMNS = ("ticket_type_id", "ticket_type")
# The order's reference people read aloud (ticketing.orders.references), last for the same reason.
REFERENCE_COLUMNS = ("reference",)


async def authenticate(request: web.Request) -> Organizer:
    """The organizer whose API key is in `Authorization: Bearer …`, or 401 (429 after too many
    failed attempts from the address: web/api/auth.py)."""
    return await organizer_of_request(request)


def webinar_json(request: web.Request, webinar: Webinar) -> dict[str, Any]:
    base = request.app[SETTINGS].base_url
    return {
        "id": webinar.id,
        "title": webinar.title,
        "description": webinar.description,
        "starts_at": webinar.starts_at,
        "ends_at": webinar.ends_at,
        "timezone": webinar.timezone,
        "price_amount": webinar.price_amount,
        "currency": webinar.currency.upper(),
        "capacity": webinar.capacity,
        "tickets_sold": webinar.seats_taken,
        "seats_left": webinars.seats_left(webinar),
        "room": webinar.room,
        "status": webinar.status.value,
        "public_url": f"{base}/w/{webinar.id}",
        "created_at": webinar.created_at,
        "updated_at": webinar.updated_at,
        "sales_end": sales.sales_end(webinar),
        **attendance_options.as_json(webinar),
        "language": webinar.language,
        "waitlist": webinar.waitlist,
        "offer_hours": webinar.offer_hours,
    }


def ticket_json(ticket: Ticket, type_names: dict[Any, str] | None = None) -> dict[str, Any]:
    """A ticket for the API and the CSV; `type_names` (by type id) names its ticket type."""
    data = {name: getattr(ticket, name) for name in TICKET_COLUMNS}
    data["status"] = ticket.status.value
    data["ticket_type_id"] = ticket.ticket_type_id
    data["ticket_type"] = (type_names or {}).get(ticket.ticket_type_id)
    data["reference"] = order_reference(ticket.order_id)
    return data


def ticket_type_json(kind: TicketType, webinar: Webinar) -> dict[str, Any]:
    # Seats of the default type of an untyped webinar are counted on the webinar alone.
    sold = kind.seats_taken if webinar.typed else webinar.seats_taken
    return {
        "id": kind.id,
        "webinar_id": kind.webinar_id,
        "name": kind.name,
        "description": kind.description,
        "price_amount": kind.price_amount,
        "currency": webinar.currency.upper(),
        "capacity": kind.capacity,
        "sales_start": kind.sales_start,
        "sales_end": kind.sales_end,
        "hidden": kind.hidden,
        "position": kind.position,
        "default": kind.is_default,
        "tickets_sold": sold,
        "seats_left": ticket_types.seats_left(kind, webinar),
        "on_sale": ticket_types.checkout_open(kind, webinar, utcnow()),
        "created_at": kind.created_at,
    }


@routes.get("/api/webinars/{id}/ticket-types")
async def list_ticket_types(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar, kinds = await ticket_types.list_types(session, organizer, webinar_id)
    return json_response({"ticket_types": [ticket_type_json(kind, webinar) for kind in kinds]})


@routes.post("/api/webinars/{id}/ticket-types")
async def create_ticket_type(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        kind, webinar = await ticket_types.create_type(session, organizer, webinar_id, data)
    response = json_response(ticket_type_json(kind, webinar), status=201)
    response.headers["Location"] = f"/api/ticket-types/{kind.id}"
    return response


@routes.patch("/api/ticket-types/{id}")
async def update_ticket_type(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    type_id = webinars.parse_id(request.match_info["id"])
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        kind, webinar = await ticket_types.update_type(session, organizer, type_id, data)
    return json_response(ticket_type_json(kind, webinar))


@routes.delete("/api/ticket-types/{id}")
async def delete_ticket_type(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    type_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER].begin() as session:
        await ticket_types.delete_type(session, organizer, type_id)
    return web.Response(status=204)


def promo_code_json(code: PromoCode, net: dict[uuid.UUID, dict[str, int]]) -> dict[str, Any]:
    """A code as the organizer sees it: its terms, its paid uses (`uses`), the uses held by open
    checkouts (`uses_reserved`), what its paid orders brought (`revenue`, minor units, as paid)
    and what stays of it after refunds and lost chargebacks, by currency (`net_revenue`: a code
    for all of an organizer's webinars may sell in several)."""
    return {
        "id": str(code.id),
        "code": code.code,
        "percent_off": code.percent_off,
        "amount_off": code.amount_off,
        "fixed_price": code.fixed_price,
        "max_uses": code.max_uses,
        "valid_from": code.valid_from,
        "valid_until": code.valid_until,
        "webinar_id": str(code.webinar_id) if code.webinar_id else None,
        "ticket_type_ids": list(code.ticket_type_ids or []),
        "uses": code.uses_paid,
        "uses_reserved": code.uses_reserved,
        "revenue": code.revenue,
        "net_revenue": net.get(code.id, {}),
        "created_at": code.created_at,
    }


@routes.get("/api/promo-codes")
async def list_promo_codes(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    async with request.app[SESSIONMAKER]() as session:
        codes = await promo_codes.list_codes(session, organizer)
        net = await promo_codes.net_revenue(session, organizer)
    return json_response({"promo_codes": [promo_code_json(code, net) for code in codes]})


@routes.post("/api/promo-codes")
async def create_promo_code(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        code = await promo_codes.create_code(session, organizer, data)
    response = json_response(promo_code_json(code, {}), status=201)
    response.headers["Location"] = f"/api/promo-codes/{code.id}"
    return response


@routes.patch("/api/promo-codes/{id}")
async def update_promo_code(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    code_id = webinars.parse_id(request.match_info["id"])
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        code = await promo_codes.update_code(session, organizer, code_id, data)
        net = await promo_codes.net_revenue(session, organizer)
    return json_response(promo_code_json(code, net))


@routes.delete("/api/promo-codes/{id}")
async def delete_promo_code(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    code_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER].begin() as session:
        await promo_codes.delete_code(session, organizer, code_id)
    return web.Response(status=204)


@routes.post("/api/webinars")
async def create_webinar(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        webinar = await webinars.create_webinar(session, organizer, data)
    response = json_response(webinar_json(request, webinar), status=201)
    response.headers["Location"] = f"/api/webinars/{webinar.id}"
    return response


@routes.get("/api/webinars")
async def list_webinars(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    async with request.app[SESSIONMAKER]() as session:
        found = await webinars.list_webinars(session, organizer)
    return json_response({"webinars": [webinar_json(request, w) for w in found]})


@routes.get("/api/webinars/{id}")
async def get_webinar(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar = await webinars.get_own_webinar(session, organizer, webinar_id)
    return json_response(webinar_json(request, webinar))


@routes.patch("/api/webinars/{id}")
async def update_webinar(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        webinar = await webinars.update_webinar(session, organizer, webinar_id, data)
    return json_response(webinar_json(request, webinar))


@routes.get("/api/webinars/{id}/tickets")
async def list_tickets(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        tickets = await webinars.list_tickets(session, organizer, webinar_id)
        attended = await attendance.for_tickets(session, webinar_id, request.app[SETTINGS])
        disputes = await order_lifecycle.ticket_disputes(session, tickets)
        names = await ticket_types.type_names(session, webinar_id)
        invoices = await order_lifecycle.ticket_invoices(session, tickets)

    def order_fields(ticket: Ticket) -> dict[str, Any]:
        return {"order_dispute": disputes.get(ticket.order_id), "invoice_number": invoices.get(ticket.order_id)}

    if "text/csv" in request.headers.get("Accept", ""):
        return _csv([ticket_json(t, names) | order_fields(t) | attendance.ticket_fields(attended.get(t.id), csv=True)
                     for t in tickets], filename=f"tickets-{webinar_id}.csv")
    return json_response({"tickets": [ticket_json(t, names) | order_fields(t)
                                      | attendance.ticket_fields(attended.get(t.id)) for t in tickets]})


ORDER_COLUMNS = ("id", "status", "email", "buyer_name", "quantity", "expected_amount", "amount_total", "currency",
                 "amount_refunded", "problem", "stripe_session_id", "created_at", "paid_at")


@routes.post("/api/webinars/{id}/messages")
async def send_message(request: web.Request) -> web.Response:
    """A message to every current ticket holder, one queued mail each; 429 over the hourly limit."""
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        sent = await messages.send_message(session, organizer, webinar_id, data,
                                           per_hour=request.app[SETTINGS].messages_per_hour)
    return json_response(messages.message_json(sent), status=201)


@routes.get("/api/webinars/{id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        found = await messages.list_messages(session, organizer, webinar_id)
    return json_response({"messages": [messages.message_json(m) for m in found]})


@routes.get("/api/webinars/{id}/orders")
async def list_orders(request: web.Request) -> web.Response:
    """The webinar's orders, newest first; `?status=flagged` narrows them to one status,
    `?status=problem` to those that need a look."""
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        noted = await order_lifecycle.orders_with_notes(session, organizer, webinar_id, status=request.query.get("status"))
    return json_response({"orders": [order_json(note) for note in noted]})


def order_json(note: order_lifecycle.OrderNote) -> dict[str, Any]:
    """An order as the API shows it: its columns, where its dispute stands ("inquiry",
    "inquiry_closed", "open", "won", "lost" or null) and a refund made in Stripe's dashboard."""
    order, refunded = note.order, note.refunded
    return {name: getattr(order, name) for name in ORDER_COLUMNS} | {
        "reference": order_reference(order.id),
        "status": order.status.value, "currency": (order.currency or "").upper() or None,
        "dispute": note.dispute, "can_restore": note.can_restore,
        "refunded_outside": None if refunded is None else {
            "amount": refunded.amount, "seats": refunded.seats, "seats_to_choose": refunded.to_choose},
    }


@routes.get("/api/webinars/{id}/host-link")
async def host_link(request: web.Request) -> web.Response:
    """A Jitsi link that enters the webinar's room as moderator, valid for the webinar's window."""
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        link = await access.host_link(session, request.app[TOKENS], organizer, webinar_id, now=utcnow())
    response = json_response({"url": link.url, "room": link.room, "opens_at": link.opens_at,
                              "expires_at": link.expires_at})
    response.headers["Cache-Control"] = "no-store"
    return response



@routes.post("/api/webinars/{id}/cancel")
async def cancel_webinar(request: web.Request) -> web.Response:
    """Cancel at once (no more checkouts, links answer 410); paid orders are refunded by jobs."""
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    settings = request.app[SETTINGS]
    webinar = await webinar_lifecycle.cancel_webinar(request.app[SESSIONMAKER], organizer, webinar_id,
                                                     grace_minutes=settings.join_grace_minutes, settings=settings)
    return json_response(webinar_json(request, webinar))


async def _optional_json(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, or {} when there is no body at all."""
    if not request.body_exists:
        return {}
    return await read_json(request)


@routes.post("/api/tickets/{id}/revoke")
async def revoke_ticket(request: web.Request) -> web.Response:
    """Revoke one ticket; `{"refund": true}` also refunds its share of the order."""
    organizer = await authenticate(request)
    ticket_id = webinars.parse_id(request.match_info["id"])
    data = await _optional_json(request)
    refund = data.get("refund", False)
    if not isinstance(refund, bool):
        raise Invalid("refund must be true or false", field="refund")
    async with request.app[SESSIONMAKER].begin() as session:
        ticket, refund_queued = await ticket_lifecycle.revoke_ticket(session, organizer, ticket_id, refund=refund)
    return json_response({**ticket_json(ticket), "refund_queued": refund_queued})


@routes.post("/api/tickets/{id}/restore")
async def restore_ticket(request: web.Request) -> web.Response:
    """Restore a ticket a dispute revoked, once the dispute is won; the buyer gets a new link."""
    organizer = await authenticate(request)
    ticket_id = webinars.parse_id(request.match_info["id"])
    settings = request.app[SETTINGS]
    async with request.app[SESSIONMAKER].begin() as session:
        ticket = await ticket_lifecycle.restore_ticket(session, organizer, ticket_id,
                                                       grace_minutes=settings.join_grace_minutes)
    return json_response(ticket_json(ticket))


@routes.post("/api/tickets/{id}/resend")
async def resend_ticket(request: web.Request) -> web.Response:
    """Send the join mail again with a new link; the old link stops working."""
    organizer = await authenticate(request)
    ticket_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER].begin() as session:
        ticket = await ticket_service.resend_ticket(session, organizer, ticket_id)
    return json_response({**ticket_json(ticket), "resent": True})


@routes.patch("/api/tickets/{id}")
async def update_ticket(request: web.Request) -> web.Response:
    """Correct a ticket's `email` (e.g. one the mail server refused); then resend."""
    organizer = await authenticate(request)
    ticket_id = webinars.parse_id(request.match_info["id"])
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        ticket = await ticket_service.update_ticket(session, organizer, ticket_id, data)
    return json_response(ticket_json(ticket))


WAITLIST_COLUMNS = ("id", "position", "email", "name", "quantity", "ticket_type_id", "created_at", "confirmed",
                    "confirmed_at", "offered_until", "outcome")


def waitlist_json(row: waitlist.Row) -> dict[str, Any]:
    entry = row.entry
    return {"id": entry.id, "position": row.position, "email": entry.email, "name": entry.name,
            "quantity": entry.quantity, "ticket_type_id": entry.ticket_type_id, "created_at": entry.created_at,
            "confirmed": entry.confirmed_at is not None, "confirmed_at": entry.confirmed_at,
            "offered_until": entry.offered_until, "outcome": entry.outcome.value if entry.outcome else None}


@routes.get("/api/webinars/{id}/waitlist")
async def list_waitlist(request: web.Request) -> web.Response:
    """The webinar's waitlist in line order with its figures (`Accept: text/csv`: the entries as CSV)."""
    organizer = await authenticate(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar, rows = await waitlist.list_entries(session, organizer, webinar_id)
    entries = [waitlist_json(row) for row in rows]
    if "text/csv" in request.headers.get("Accept", ""):
        return _csv(entries, f"waitlist-{webinar_id}.csv", columns=WAITLIST_COLUMNS)
    figures = waitlist.figures(rows)
    return json_response({"waitlist": webinar.waitlist, "offer_hours": webinar.offer_hours, "entries": entries,
                          "figures": {"waited": figures.waited, "offered": figures.offered, "bought": figures.bought,
                                      "waiting": figures.waiting}})


@routes.delete("/api/waitlist/{id}")
async def remove_waitlist_entry(request: web.Request) -> web.Response:
    """Take an entry off the list; seats held for its offer go to the next in line."""
    organizer = await authenticate(request)
    entry_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER].begin() as session:
        await waitlist.remove(session, organizer, entry_id, now=utcnow())
    return web.Response(status=204)


@routes.post("/api/waitlist/{id}/offer")
async def offer_waitlist_entry(request: web.Request) -> web.Response:
    """Offer seats to this entry now, out of turn; 409 with the reason when none can be offered."""
    organizer = await authenticate(request)
    entry_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER].begin() as session:
        entry = await waitlist.offer_by_hand(session, organizer, entry_id, now=utcnow())
    return json_response(waitlist_json(waitlist.Row(entry, None)))


def _csv(rows: list[dict[str, Any]], filename: str, *, columns: tuple[str, ...] | None = None) -> web.Response:
    out = io.StringIO()
    columns = columns or (*TICKET_COLUMNS, "order_dispute", "invoice_number", *attendance.TICKET_COLUMNS,
                          *TYPE_COLUMNS, *REFERENCE_COLUMNS)
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    response = web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    text = str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet; quote it as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def organizer_json(organizer: Organizer) -> dict[str, Any]:
    return {
        "id": organizer.id,
        "name": organizer.name,
        "email": organizer.email,
        "contact_email": organizer.contact_email,
        "reply_to": organizer.reply_to,
        "imprint_url": organizer.imprint_url,
        "terms_url": organizer.terms_url,
        **{name: getattr(organizer, name) for name in BILLING_FIELDS},
        "created_at": organizer.created_at,
    }


@routes.get("/api/organizer")
async def get_organizer(request: web.Request) -> web.Response:
    """The signed-in organizer's profile: what buyers see of them."""
    organizer = await authenticate(request)
    return json_response(organizer_json(organizer))


@routes.patch("/api/organizer")
async def patch_organizer(request: web.Request) -> web.Response:
    """Change the display name, contact address, imprint or terms link, or the invoice and tax settings."""
    organizer = await authenticate(request)
    data = await read_json(request)
    async with request.app[SESSIONMAKER].begin() as session:
        organizer = await update_profile(session, organizer.id, data)
    return json_response(organizer_json(organizer))
