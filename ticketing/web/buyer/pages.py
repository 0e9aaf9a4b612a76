"""Buyer pages: the public webinar page, checkout, and dev mode's test-payment page."""

from __future__ import annotations

import logging

from aiohttp import web

from ticketing.db import utcnow
from ticketing.errors import Conflict, Invalid, NotFound
from ticketing.inputs import email_address, has_control
from ticketing.orders import registrations
from ticketing.orders import service as orders
from ticketing.payments import simulated
from ticketing.payments.signature import sign
from ticketing.payments.stripe_api import checkout_session_params, create_checkout_session
from ticketing.webinars import service as webinars
from ticketing.web.keys import HTTP, REGISTER_LIMIT, SESSIONMAKER, SETTINGS, STRIPE
from ticketing.web.responses import read_form, read_json, render

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()
dev_routes = web.RouteTableDef()


def _on_sale_problem(webinar) -> str | None:
    try:
        orders.check_on_sale(webinar, 1, now=utcnow())
    except Conflict as error:
        return error.message
    return None


@routes.get("/w/{id}")
async def webinar_page(request: web.Request) -> web.Response:
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        webinar = await webinars.get_webinar(session, webinar_id)
    return render(request, "buyer/webinar.html", {
        "webinar": webinar,
        "seats_left": webinars.seats_left(webinar),
        "problem": _on_sale_problem(webinar),
        "max_quantity": orders.MAX_QUANTITY,
    })


async def _checkout_input(request: web.Request) -> tuple[int, str | None]:
    if request.content_type == "application/json":
        data = await read_json(request)
    else:
        data = await read_form(request)
    quantity = data.get("quantity", 1)
    if isinstance(quantity, str):
        try:
            quantity = int(quantity.strip() or "1")
        except ValueError:
            raise Invalid("quantity must be a whole number", field="quantity") from None
    email = data.get("email")
    if email is not None and not isinstance(email, str):
        raise Invalid("email must be a string", field="email")
    return quantity, email_address(email) if email and email.strip() else None


@routes.post("/w/{id}/checkout")
async def checkout(request: web.Request) -> web.Response:
    """Start a Stripe Checkout (or the dev test payment) and send the buyer there."""
    webinar_id = webinars.parse_id(request.match_info["id"])
    quantity, email = await _checkout_input(request)
    settings = request.app[SETTINGS]
    async with request.app[SESSIONMAKER]() as session:
        free = (await webinars.get_webinar(session, webinar_id)).price_amount == 0
    if free:
        await _register(request, webinar_id, quantity, email)
        raise web.HTTPSeeOther("/checkout/success?registered=1")
    async with request.app[SESSIONMAKER].begin() as session:
        order, webinar = await orders.start_order(session, webinar_id, quantity, email)
    client = request.app[STRIPE]
    if client is None:
        session_id = simulated.new_session_id()
        url = f"{settings.base_url}/dev/checkout/{session_id}"
    else:
        params = checkout_session_params(settings, order, webinar, now=utcnow())
        session_id, url = await create_checkout_session(client, params, order)
    async with request.app[SESSIONMAKER].begin() as session:
        await orders.attach_checkout_session(session, order.id, session_id)
    raise web.HTTPSeeOther(url)


async def _register(request: web.Request, webinar_id, quantity: int, email: str | None) -> None:
    """A free registration: one seat for the address, confirmed by the link mailed to it."""
    wait = request.app[REGISTER_LIMIT].hit(request.remote or "unknown")
    if wait:
        raise web.HTTPTooManyRequests(text="Too many registrations from your network; try again in a minute.",
                                      headers={"Retry-After": str(wait)})
    async with request.app[SESSIONMAKER].begin() as session:
        await registrations.register(session, webinar_id, email, quantity=quantity, now=utcnow())


@routes.get("/r/{code}")
async def confirm_registration(request: web.Request) -> web.Response:
    """The confirmation link of a free registration: takes the seat (once) and mails the join link."""
    async with request.app[SESSIONMAKER].begin() as session:
        confirmed = await registrations.confirm(session, request.match_info["code"], now=utcnow())
    response = render(request, "buyer/confirmed.html", {"webinar": confirmed.webinar, "new": confirmed.new})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@routes.get("/checkout/success")
async def checkout_success(request: web.Request) -> web.Response:
    return render(request, "buyer/success.html", {"registered": request.query.get("registered") == "1"})


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
    event = simulated.checkout_completed_event(
        session_id=order.stripe_session_id, webinar_id=str(webinar.id), quantity=order.quantity, email=email,
        amount_total=order.expected_amount, currency=webinar.currency, order_id=str(order.id), name=name or None,
    )
    body = simulated.encode(event)
    settings = request.app[SETTINGS]
    webhook_url = f"{request.url.origin()}/webhooks/stripe"
    async with request.app[HTTP].post(webhook_url, data=body, headers={
        "Content-Type": "application/json", "Stripe-Signature": sign(body, settings.stripe_webhook_secrets[0]),
    }) as response:
        if response.status != 200:
            logger.error("dev webhook was refused", extra={"status": response.status})
            raise web.HTTPServiceUnavailable(text="the test payment could not be recorded; try again")
    raise web.HTTPSeeOther(f"/checkout/success?session_id={order.stripe_session_id}")
