"""Buyer pages: the public webinar page, checkout, the success page with add-to-calendar,
the buyer's order page (assigning seats), and dev mode's test-payment page."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ticketing.db import utcnow
from ticketing.db.models import Order, Webinar
from ticketing.errors import Conflict, DomainError, Invalid, NotFound, RateLimited
from ticketing.inputs import email_address, has_control, path_number
from ticketing.mail.calendar import google_calendar_url, webinar_event
from ticketing.mail.compose import REFUND_DAYS, mail_domain
from ticketing.orders import promo_codes, registrations, seats, ticket_types
from ticketing.orders import service as orders
from ticketing.orders.references import order_reference
from ticketing.payments import simulated
from ticketing.payments.signature import sign
from ticketing.payments.stripe_api import checkout_session_params, create_checkout_session
from ticketing.tickets import sealing
from ticketing.waitlist import service as waitlist
from ticketing.web import middlewares
from ticketing.web.buyer.common import organizer_of, render_page
from ticketing.web.keys import BUYER_PAGE, HTTP, REGISTER_LIMIT, SESSIONMAKER, SETTINGS, STRIPE
from ticketing.web.responses import read_form, read_json, render
from ticketing.webinars import sales
from ticketing.webinars import service as webinars

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()
dev_routes = web.RouteTableDef()


@routes.get("/w/{id}")
async def webinar_page(request: web.Request) -> web.Response:
    return await _webinar_page(request, webinars.parse_id(request.match_info["id"]))


async def _webinar_page(request: web.Request, webinar_id: uuid.UUID, *, email: str = "", email_error: bool = False,
                        code_text: str | None = None, code_error: DomainError | None = None,
                        waitlist_error: str | None = None, waitlist_type: uuid.UUID | None = None,
                        status: int = 200) -> web.Response:
    if code_text is None:
        code_text = request.query.get("code", "").strip()[:64]
    now = utcnow()
    code = None
    async with request.app[SESSIONMAKER]() as session:
        webinar = await webinars.get_webinar(session, webinar_id)
        organizer = await organizer_of(session, webinar)
        kinds = await ticket_types.types_of(session, webinar.id) if webinar.typed else []
        default = await ticket_types.default_type(session, webinar.id)
        waiting = await webinars.waitlist_waiting(session, webinar)
        waitlist_open = await waitlist.can_join(session, webinar, now)
        waited = await webinars.types_waited_for(session, webinar)
        waitlist_types = [kind for kind in kinds if not waitlist_open and await waitlist.can_join(session, webinar, now, kind)]
        if code_text and code_error is None:
            try:
                code = await promo_codes.find_code(session, webinar, code_text, now=now)
            except (NotFound, Conflict) as problem:
                code_error = problem
    revealed = frozenset(code.ticket_type_ids) if code is not None else frozenset()
    # A type whose freed seats belong to the people waiting for it is sold out to the public.
    offers = [dataclasses.replace(offer, on_sale=False, seats_left=0) if offer.kind.id in waited else offer
              for offer in ticket_types.offers(kinds, webinar, now, revealed=revealed)]
    prices = {kind.id: promo_codes.unit_price(code, kind) for kind in [*kinds, default]}
    return render_page(request, "buyer/webinar.html", {
        "code": code_text, "code_applied": code is not None,
        "code_error": code_error.reason if code_error is not None else None,
        "prices": prices, "default_price": prices[default.id],
        "seats_left": 0 if waiting else webinars.seats_left(webinar),
        # Freed seats belong to the people in line: the public sees the webinar sold out.
        "sales": "sold_out" if waiting and sales.sales_state(webinar, now) == "on_sale" else sales.sales_state(webinar, now),
        "waitlist_open": waitlist_open, "waitlist_error": waitlist_error, "waitlist_types": waitlist_types,
        "waitlist_type": waitlist_type,
        "sales_close": sales.checkout_closes_at(webinar),
        "max_quantity": orders.MAX_QUANTITY,
        "offers": offers,
        "any_on_sale": any(offer.on_sale for offer in offers),
        "type_field": TYPE_FIELD,
        "email": email, "email_error": email_error,
    }, webinar=webinar, organizer=organizer, status=status)


@routes.get("/w/{id}/calendar.ics")
async def webinar_calendar(request: web.Request) -> web.Response:
    """The webinar as a calendar entry (no personal link: that is in the buyer's mail)."""
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar = await webinars.get_webinar(session, webinar_id)
    settings = request.app[SETTINGS]
    body = webinar_event(webinar, domain=mail_domain(settings), page_url=f"{settings.base_url}/w/{webinar.id}")
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="webinar.ics"'})


# A form field per ticket type: "quantity.<type id>" = seats of that type.
TYPE_FIELD = "quantity."


def _text(data: Mapping[str, Any], name: str) -> str | None:
    """A form or JSON field that must be text when given."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{name} must be a string", field=name)
    return value


def _whole(value: object, *, empty: int) -> object:
    if isinstance(value, str):
        try:
            return int(value.strip() or str(empty))
        except ValueError:
            raise Invalid("quantity must be a whole number", field="quantity") from None
    return value


def _type_lines(data: dict) -> dict[uuid.UUID, object] | None:
    """Seats by ticket type: JSON `{"types": {"<id>": n}}` or form fields `quantity.<id>`;
    None when the request names no type (then `quantity` seats of the default type)."""
    if request_types := data.get("types"):
        if not isinstance(request_types, dict):
            raise Invalid("types must map ticket type ids to numbers of seats", field="types")
        pairs = list(request_types.items())
    else:
        pairs = [(name[len(TYPE_FIELD):], value) for name, value in data.items() if name.startswith(TYPE_FIELD)]
    if not pairs:
        return None
    lines: dict[uuid.UUID, object] = {}
    for key, value in pairs:
        try:
            type_id = uuid.UUID(str(key))
        except ValueError:
            raise NotFound("this webinar has no such ticket type") from None
        lines[type_id] = _whole(value, empty=0)
    return lines


async def _checkout_input(request: web.Request) -> tuple[int, str | None, dict[uuid.UUID, object] | None, str | None]:
    if request.content_type == "application/json":
        data = await read_json(request)
    else:
        data = await read_form(request)
    quantity = _whole(data.get("quantity", 1), empty=1)
    email, code = _text(data, "email"), _text(data, "code")
    return (quantity, email_address(email) if email and email.strip() else None, _type_lines(data),
            code.strip() if code and code.strip() else None)


@routes.post("/w/{id}/checkout")
async def checkout(request: web.Request) -> web.Response:
    """Start a Stripe Checkout (or the dev test payment) and send the buyer there."""
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar = await webinars.get_webinar(session, webinar_id)
        request[BUYER_PAGE] = (webinar, await organizer_of(session, webinar))
    # One free type alone is a free webinar: one confirmed seat per address, no payment.
    free = webinar.price_amount == 0 and not webinar.typed
    try:
        quantity, email, lines, code = await _checkout_input(request)
        if free:
            await _register(request, webinar_id, quantity, email)
    except Invalid as problem:
        if problem.field != "email" or request.content_type == "application/json":
            raise
        # A form: the page again, with what was typed and the message next to the field.
        typed = str((await request.post()).get("email") or "")
        return await _webinar_page(request, webinar_id, email=typed, email_error=True, status=422)
    if free:
        raise web.HTTPSeeOther("/checkout/success?registered=1")
    # The browser keeps a private key; the order page code is sealed to its public half.
    browser = sealing.new_private_key()
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            order, webinar = await orders.start_order(session, webinar_id, quantity, email,
                                                      browser_key=sealing.public_key(browser), lines=lines, code=code)
            if code and order.expected_amount == 0:
                # The code makes the order free: there is nothing to pay, so no checkout either.
                await orders.register_free(session, order, webinar)
            chosen = await orders.priced_lines(session, order)
            promo = code if order.promo_code_id is not None else None
    except (NotFound, Conflict, Invalid) as problem:
        if problem.field != "code" or request.content_type == "application/json":
            raise
        # A form: the page again, saying what is wrong with the code.
        return await _webinar_page(request, webinar_id, code_text=code or "", code_error=problem,
                                   status=middlewares.status_of(problem))
    return await send_to_payment(request, order, webinar, chosen, promo, browser)


async def send_to_payment(request: web.Request, order: Order, webinar: Webinar, chosen, promo: str | None,
                          browser, *, until=None, settled: bool = False) -> web.Response:
    """303 to the order's Stripe Checkout (or dev test payment); to the success page when a
    promo code left nothing to pay, or the order is `settled` already (free). `until`: the
    session ends with the waitlist offer it pays."""
    settings = request.app[SETTINGS]
    if order.expected_amount == 0 and (promo or settled):
        return _see_other(request, f"{settings.base_url}/checkout/success?order={order.id}", order, browser)
    client = request.app[STRIPE]
    if client is None:
        session_id = simulated.new_session_id()
        url = f"{settings.base_url}/dev/checkout/{session_id}"
    else:
        _, organizer = request[BUYER_PAGE]
        params = checkout_session_params(settings, order, webinar, now=utcnow(), lines=chosen, code=promo,
                                         organizer=organizer, until=until)
        session_id, url = await create_checkout_session(client, params, order)
    async with request.app[SESSIONMAKER].begin() as session:
        await orders.attach_checkout_session(session, order.id, session_id)
    return _see_other(request, url, order, browser)


def _cookie_name(order_id: uuid.UUID) -> str:
    return f"checkout_{order_id.hex}"


def _see_other(request: web.Request, url: str, order: Order, browser) -> web.Response:
    """303 to `url`, leaving the browser's private key in a cookie only the success page receives."""
    response = web.Response(status=303, headers={"Location": url})
    response.set_cookie(_cookie_name(order.id), sealing.private_key_text(browser), path="/checkout/success",
                        max_age=2 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=request.app[SETTINGS].base_url.startswith("https://"))
    return response


async def _register(request: web.Request, webinar_id, quantity: int, email: str | None) -> None:
    """A free registration: one seat for the address, confirmed by the link mailed to it."""
    wait = await request.app[REGISTER_LIMIT].hit(request.app[SESSIONMAKER], request.remote or "unknown")
    if wait:
        raise web.HTTPTooManyRequests(text="Too many registrations from your network; try again in a minute.",
                                      headers={"Retry-After": str(wait)})
    async with request.app[SESSIONMAKER].begin() as session:
        await registrations.register(session, webinar_id, email, quantity=quantity, now=utcnow())


@routes.get("/r/{code}")
async def confirm_registration(request: web.Request) -> web.Response:
    """The confirmation link of a free registration: takes the seat (once) and mails the join link."""
    code = request.match_info["code"]
    async with request.app[SESSIONMAKER]() as session:
        if (webinar := await registrations.webinar_of_code(session, code)) is not None:
            request[BUYER_PAGE] = (webinar, await organizer_of(session, webinar))
    async with request.app[SESSIONMAKER].begin() as session:
        confirmed = await registrations.confirm(session, code, now=utcnow())
    _, organizer = request[BUYER_PAGE]
    response = render_page(request, "buyer/confirmed.html", {"new": confirmed.new}, webinar=confirmed.webinar,
                           organizer=organizer)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@routes.get("/checkout/success")
async def checkout_success(request: web.Request) -> web.Response:
    """The order's summary and add-to-calendar links; the order page link once the order is paid
    and only in the browser that bought (it holds the key the order code is sealed to)."""
    registered = request.query.get("registered") == "1"
    session_id = request.query.get("session_id")
    async with request.app[SESSIONMAKER]() as session:
        order = None
        if session_id:
            order = await orders.find_order_by_session(session, session_id)
        elif request.query.get("order"):
            try:
                order = await session.get(Order, uuid.UUID(request.query["order"]))
            except ValueError:
                order = None
        webinar = await session.get(Webinar, order.webinar_id) if order is not None else None
        organizer = await organizer_of(session, webinar) if webinar is not None else None
    private = None
    if order is not None and (text := request.cookies.get(_cookie_name(order.id))):
        private = sealing.private_key_from_text(text)
        if private is not None and sealing.public_key(private) != order.browser_key:
            private = None
    if order is None or webinar is None or (not session_id and private is None):
        return render(request, "buyer/success.html", {"registered": registered, "order": None})
    settings = request.app[SETTINGS]
    page_url = f"{settings.base_url}/w/{webinar.id}"
    outcome, reason = orders.buyer_outcome(order)
    order_code = sealing.unseal(private, order.code_sealed) if private is not None and outcome == "paid" else None
    return render_page(request, "buyer/success.html", {
        "registered": registered or webinar.price_amount == 0,
        "order": order,
        "outcome": outcome,
        "reason": reason,
        "reference": order_reference(order.id),
        "check_url": request.path_qs,
        "refund_amount": orders.refund_amount(order),
        "refund_days": REFUND_DAYS,
        "order_link": f"{settings.base_url}/o/{order_code}" if order_code else None,
        "google_url": google_calendar_url(webinar, page_url=page_url),
    }, webinar=webinar, organizer=organizer)


@routes.get("/o/{code}")
async def order_page(request: web.Request) -> web.Response:
    """The buyer's order page: every seat, who holds it, and forms to give seats away."""
    async with request.app[SESSIONMAKER]() as session:
        view = await seats.order_view(session, request.match_info["code"], now=utcnow())
    return _order_page(request, view)


def _order_page(request: web.Request, view: seats.OrderView, *, error: str | None = None, error_seq: int | None = None,
                status: int = 200, retry_after: int = 0) -> web.Response:
    done = request.query.get("assigned")
    response = render_page(request, "buyer/order.html", {
        "view": view, "order": view.order, "code": request.match_info["code"], "reference": order_reference(view.order.id),
        "error": error, "error_seq": error_seq, "assigned": _seat_number(done),
        "retry_minutes": max(1, -(-retry_after // 60)),
    }, webinar=view.webinar, organizer=view.organizer, status=status)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _seat_number(value: str | None) -> int | None:
    try:
        return path_number(value) if value else None
    except NotFound:
        return None


@routes.post("/o/{code}/seats/{seq}")
async def assign_seat(request: web.Request) -> web.Response:
    """Give one seat to an attendee (name and email), or keep it: 303 back to the order page."""
    code = request.match_info["code"]
    seq = path_number(request.match_info["seq"], what="seat in this order") - 1
    form = await request.post()
    name, email = str(form.get("name") or ""), str(form.get("email") or "")
    keep = form.get("keep") == "1"
    rates = seats.ReassignLimits.from_settings(request.app[SETTINGS])
    try:
        async with request.app[SESSIONMAKER].begin() as session:
            await seats.assign_seat(session, code, seq, name=name, email=email, keep=keep, now=utcnow(), rates=rates)
    except Invalid as problem:
        async with request.app[SESSIONMAKER]() as session:
            view = await seats.order_view(session, code, now=utcnow())
        return _order_page(request, view, error=problem.field or "email", error_seq=seq, status=422)
    except RateLimited as limited:
        async with request.app[SESSIONMAKER]() as session:
            view = await seats.order_view(session, code, now=utcnow())
        return _order_page(request, view, error="rate", status=429, retry_after=limited.retry_after)
    raise web.HTTPSeeOther(f"/o/{code}?assigned={seq + 1}#seat-{seq + 1}")


async def _dev_order(request: web.Request):
    session_id = request.match_info["session_id"]
    async with request.app[SESSIONMAKER]() as session:
        order = await orders.find_order_by_session(session, session_id)
        if order is None:
            raise NotFound("no such test checkout")
        webinar = await webinars.get_webinar(session, order.webinar_id)
    return order, webinar


@dev_routes.get("/dev/checkout/{session_id}")
async def dev_checkout_page(request: web.Request) -> web.Response:
    order, webinar = await _dev_order(request)
    return render(request, "buyer/dev_checkout.html", {"order": order, "webinar": webinar})


@dev_routes.post("/dev/checkout/{session_id}")
async def dev_checkout_pay(request: web.Request) -> web.Response:
    """Pay a test checkout: sign a `checkout.session.completed` and post it to our own webhook."""
    order, webinar = await _dev_order(request)
    form = await read_form(request)
    name = str(form.get("name") or "").strip()
    try:
        email = email_address(str(form.get("email") or order.email or ""))
    except Invalid:
        return render(request, "buyer/dev_checkout.html", {"order": order, "webinar": webinar,
                                                     "error": "Enter the email address the tickets go to."}, status=422)
    if has_control(name) or len(name) > 200:
        return render(request, "buyer/dev_checkout.html", {"order": order, "webinar": webinar,
                                                     "error": "Enter a name of at most 200 plain characters."}, status=422)
    async with request.app[SESSIONMAKER]() as session:
        organizer = await organizer_of(session, webinar)
    settings = request.app[SETTINGS]
    invoice_id = None
    if organizer.invoices:
        # What Stripe would issue: a numbered invoice, announced by its own event, here before the
        # checkout's (events come in any order), so the order has its number and needs no lookup.
        invoice_id = simulated.new_invoice_id()
        await _post_to_webhook(request, simulated.invoice_paid_event(
            invoice_id=invoice_id, number=f"TEST-{order_reference(order.id)}",
            url=f"{settings.base_url}/dev/invoices/{invoice_id}", order_id=str(order.id), webinar_id=str(webinar.id),
            email=email, amount=order.expected_amount, currency=webinar.currency))
    await _post_to_webhook(request, simulated.checkout_completed_event(
        session_id=order.stripe_session_id, webinar_id=str(webinar.id), quantity=order.quantity, email=email,
        amount_total=order.expected_amount, currency=webinar.currency, order_id=str(order.id), name=name or None,
        invoice=invoice_id,
    ))
    raise web.HTTPSeeOther(f"/checkout/success?session_id={order.stripe_session_id}")


async def _post_to_webhook(request: web.Request, event: dict) -> None:
    """Sign `event` as Stripe does and post it to our own webhook, so the real path runs."""
    body = simulated.encode(event)
    webhook_url = f"{request.url.origin()}/webhooks/stripe"
    async with request.app[HTTP].post(webhook_url, data=body, headers={
        "Content-Type": "application/json",
        "Stripe-Signature": sign(body, request.app[SETTINGS].stripe_webhook_secrets[0]),
    }) as response:
        if response.status != 200:
            logger.error("dev webhook was refused", extra={"status": response.status})
            raise web.HTTPServiceUnavailable(text="the test payment could not be recorded; try again")


@dev_routes.get("/dev/invoices/{invoice_id}")
async def dev_invoice_page(request: web.Request) -> web.Response:
    """Dev mode's stand-in for Stripe's hosted invoice page."""
    async with request.app[SESSIONMAKER]() as session:
        order = await orders.order_by_invoice(session, request.match_info["invoice_id"])
        if order is None:
            raise NotFound("no such test invoice")
        webinar = await webinars.get_webinar(session, order.webinar_id)
        organizer = await organizer_of(session, webinar)
        lines = await orders.priced_lines(session, order)
    return render(request, "buyer/dev_invoice.html", {"order": order, "webinar": webinar, "organizer": organizer,
                                                      "lines": lines, "reference": order_reference(order.id)})
