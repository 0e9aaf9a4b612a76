"""Console pages: webinars (list, create, edit, one webinar with its attendees and orders),
ticket actions, cancelling, the organizer's settings and API keys. Each handler reads its
form and calls the same service function as its API twin."""

from __future__ import annotations

from aiohttp import web

from ticketing import i18n
from ticketing.access import join as access
from ticketing.accounts import apikeys, sessions
from ticketing.attendance import figures as attendance
from ticketing.db import utcnow
from ticketing.db.models import Organizer, Ticket, TicketType, Webinar, WebinarStatus
from ticketing.errors import Conflict, DomainError, Invalid, NotFound, RateLimited, Text
from ticketing.lifecycle import orders as order_lifecycle
from ticketing.lifecycle import tickets as ticket_lifecycle
from ticketing.lifecycle import webinars as webinar_lifecycle
from ticketing.mail.compose import N_
from ticketing.messages import service as messages
from ticketing.orders import attendees as attendee_list
from ticketing.orders import ticket_types
from ticketing.orders.references import order_reference
from ticketing.organizers import BILLING_FIELDS, BILLING_SWITCHES, PROFILE_FIELDS, set_console_language, update_profile
from ticketing.tickets import service as ticket_service
from ticketing.waitlist import service as waitlist
from ticketing.web.api.routes import _csv, ticket_json
from ticketing.web.keys import SESSIONMAKER, SETTINGS, TOKENS
from ticketing.web.middlewares import status_of
from ticketing.web.org import forms
from ticketing.web.org.auth import checked_form, console_language, organizer_of, page, session_of
from ticketing.webinars import figures
from ticketing.webinars import sales as sales_rules
from ticketing.webinars import service as webinars

routes = web.RouteTableDef()
ORDERS_SHOWN = 100


def _sent_notice(lang: str, count: int) -> str:
    return i18n.translations(lang).ngettext("The message is on its way to %(num)d ticket holder.",
                                            "The message is on its way to %(num)d ticket holders.", count) % {"num": count}


# Each language by its own name, as people look for theirs.
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch"}


def words(request: web.Request, organizer: Organizer):
    """The console's catalog in the organizer's language, for flash lines and confirmation pages."""
    return i18n.translations(console_language(request, organizer))


async def _flash_and_go(request: web.Request, message: str, target: str) -> web.Response:
    sessions.flash(await session_of(request), message)
    raise web.HTTPSeeOther(target)


def _revenue_text(amounts: dict[str, int], lang: str) -> str:
    """Amounts by currency as the console's language writes them."""
    return ", ".join(i18n.money(amount, currency, lang) for currency, amount in amounts.items()) or "—"


@routes.get("/org")
async def webinar_list(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    async with request.app[SESSIONMAKER]() as db:
        found = await webinars.list_webinars(db, organizer)
        sales = await figures.sales_by_webinar(db, found)
    now = utcnow()
    lang = console_language(request, organizer)
    base_url = request.app[SETTINGS].base_url
    rows = [{"webinar": w, "status": figures.status_label(w, now=now), "sales": sales[w.id],
             "revenue": _revenue_text(sales[w.id].revenue, lang), "public_url": f"{base_url}/w/{w.id}"} for w in found]
    # Upcoming soonest first; the rest (over or cancelled) latest first.
    upcoming = sorted((r for r in rows if r["status"] not in ("ended", "cancelled")), key=lambda r: r["webinar"].starts_at)
    past = sorted((r for r in rows if r["status"] in ("ended", "cancelled")), key=lambda r: r["webinar"].starts_at,
                  reverse=True)
    return await page(request, "webinars.html", {"upcoming": upcoming, "past": past, "languages": LANGUAGE_NAMES},
                      organizer=organizer)


def _form_page(request, organizer, *, webinar: Webinar | None, values: dict[str, str], errors: dict[str, str],
               status: int = 200, general: str | None = None):
    return page(request, "webinar_form.html", {
        "webinar": webinar, "values": values, "errors": errors, "general": general,
        "zones": forms.time_zones(), "languages": LANGUAGE_NAMES,
    }, status=status, organizer=organizer)


def _field_errors(error: DomainError, lang: str) -> tuple[dict[str, str], str | None]:
    """A service error next to the form field it is about (every field, when several are at
    fault), or above the form, in the form's words."""
    return forms.form_errors(getattr(error, "errors", None) or {error.field or "": error.message}, lang)


def _all_errors(error: forms.FormErrors, lang: str, base: dict | None = None) -> dict[str, str]:
    """The fields the form could not read, and whatever the service finds in the rest."""
    found, _ = forms.form_errors(webinars.webinar_errors(error.data, base), lang)
    return {**found, **{field: forms.in_form_words(message, lang) for field, message in error.errors.items()}}


@routes.get("/org/webinars/new")
async def new_webinar(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    return await _form_page(request, organizer, webinar=None, errors={},
                            values=forms.blank_values(language=console_language(request, organizer)))


@routes.post("/org/webinars")
async def create_webinar(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    form = await checked_form(request)
    try:
        data = forms.webinar_input(form, editing=False)
        async with request.app[SESSIONMAKER].begin() as db:
            webinar = await webinars.create_webinar(db, organizer, data)
    except forms.FormErrors as error:
        return await _form_page(request, organizer, webinar=None, values=forms.typed_values(form),
                                errors=_all_errors(error, console_language(request, organizer)), status=422)
    except (Invalid, Conflict) as error:
        errors, general = _field_errors(error, console_language(request, organizer))
        return await _form_page(request, organizer, webinar=None, values=forms.typed_values(form), errors=errors,
                                general=general, status=422)
    return await _flash_and_go(request, words(request, organizer).gettext("“%(title)s” is on sale.")
                               % {"title": webinar.title}, f"/org/webinars/{webinar.id}")


@routes.get("/org/webinars/{id}/edit")
async def edit_webinar(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
    return await _form_page(request, organizer, webinar=webinar, values=forms.form_values(webinar), errors={})


@routes.post("/org/webinars/{id}/edit")
async def update_webinar(request: web.Request) -> web.Response:
    """Save the form. A change of time is checked by the service in a transaction that is
    rolled back, then confirmed by the organizer, since every attendee gets a new mail."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    form = await checked_form(request)
    confirmed = form.get("confirm") == "time"
    async with request.app[SESSIONMAKER]() as db:
        current = await webinars.get_own_webinar(db, organizer, webinar_id)
    old = {"starts_at": current.starts_at, "ends_at": current.ends_at, "timezone": current.timezone,
           "sequence": current.sequence}
    async with request.app[SESSIONMAKER]() as db:
        try:
            data = forms.webinar_input(form, editing=True)
            async with db.begin() as transaction:
                webinar = await webinars.update_webinar(db, organizer, webinar_id, data)
                moved = webinar.sequence != old["sequence"]
                if moved and not confirmed:
                    new = {"starts_at": webinar.starts_at, "ends_at": webinar.ends_at, "timezone": webinar.timezone}
                    valid = await db.scalar(figures.valid_ticket_count(webinar.id))
                    title = webinar.title
                    await transaction.rollback()
                    return await page(request, "webinar_move.html", {
                        "webinar_id": webinar_id, "title": title, "old": old, "new": new, "attendees": valid,
                        "values": forms.typed_values(form)}, organizer=organizer)
        except forms.FormErrors as error:
            return await _form_page(request, organizer, webinar=current, values=forms.typed_values(form),
                                    errors=_all_errors(error, console_language(request, organizer),
                                                       webinars.editable_fields(current)), status=422)
        except (Invalid, Conflict) as error:
            errors, general = _field_errors(error, console_language(request, organizer))
            return await _form_page(request, organizer, webinar=current, values=forms.typed_values(form),
                                    errors=errors, general=general, status=422 if isinstance(error, Invalid) else 409)
    t = words(request, organizer)
    message = t.gettext("Saved. Every attendee is being sent the new time and a new link.") if moved else t.gettext("Saved.")
    return await _flash_and_go(request, message, f"/org/webinars/{webinar_id}")


@routes.get("/org/webinars/{id}")
async def webinar_page(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
        sales = (await figures.sales_by_webinar(db, [webinar]))[webinar.id]
        people = await attendee_list.attendee_page(db, organizer, webinar_id, attendee_list.Query.parse(request.query))
        problems = await order_lifecycle.orders_with_notes(db, organizer, webinar_id, status=webinars.NEEDS_A_LOOK)
        # The newest orders only: a large webinar has thousands (the CSV and the API have them all).
        orders = await webinars.list_orders(db, organizer, webinar_id, limit=ORDERS_SHOWN + 1)
        # The same figures as GET /api/webinars/{id}/attendance and the attendee list's fields.
        presence = await attendance.summary(db, organizer, webinar_id, request.app[SETTINGS])
        attended = await attendance.for_tickets(db, webinar_id, request.app[SETTINGS])
        kinds = await ticket_types.types_of(db, webinar_id)
        _, waitlist_rows = await waitlist.list_entries(db, organizer, webinar_id)
    settings = request.app[SETTINGS]
    lang = console_language(request, organizer)
    return await page(request, "webinar.html", {
        "kinds": [(kind, kind.seats_taken if webinar.typed else webinar.seats_taken,
                   ticket_types.seats_left(kind, webinar)) for kind in kinds],
        "type_names": {kind.id: kind.name for kind in kinds} if webinar.typed else {},
        "webinar": webinar, "status": figures.status_label(webinar), "sales": sales,
        "sales_end": sales_rules.sales_end(webinar), "checkout_closes": sales_rules.checkout_closes_at(webinar),
        "revenue": _revenue_text(sales.revenue, lang), "refunded": _revenue_text(sales.refunded, lang),
        "paid": _revenue_text(sales.paid, lang), "languages": LANGUAGE_NAMES,
        "attendees": people, "presence": presence if presence.attendees else None,
        "attended": {t: attendance.ticket_fields(f) for t, f in attended.items()},
        "problems": problems, "orders": orders[:ORDERS_SHOWN], "more_orders": len(orders) > ORDERS_SHOWN,
        "reference": order_reference, "public_url": f"{settings.base_url}/w/{webinar.id}",
        "editable": webinar.status == WebinarStatus.SCHEDULED and webinar.ends_at > utcnow(),
        "waitlist_rows": waitlist_rows, "waitlist_figures": waitlist.figures(waitlist_rows),
    }, organizer=organizer)


def _type_form_page(request, organizer, *, webinar: Webinar, kind, values: dict[str, str], errors: dict[str, str],
                    status: int = 200, general: str | None = None):
    return page(request, "ticket_type_form.html", {"webinar": webinar, "kind": kind, "values": values,
                                                   "errors": errors, "general": general}, status=status,
                organizer=organizer)


def _type_form_refused(request, organizer, form, error: forms.FormErrors | DomainError, *, webinar: Webinar, kind):
    """The ticket type form again (422) with what was typed and why it was refused: the form's own
    field errors, or the service's refusal next to its field (or above the form)."""
    errors: dict[str, str]
    general = None
    lang = console_language(request, organizer)
    if isinstance(error, forms.FormErrors):
        errors = {field: forms.in_form_words(message, lang) for field, message in error.errors.items()}
    else:
        field = {"price_amount": "price"}.get(error.field or "", error.field)
        message = error.message if isinstance(error.message, Text) else error.message.replace("sales_start",
                                                                                                "the start of sales")
        message = forms.in_form_words(message, lang)
        errors, general = ({field: message}, None) if field in forms.TYPE_FIELDS else ({}, message)
    return _type_form_page(request, organizer, webinar=webinar, kind=kind, errors=errors, general=general,
                           values=forms.typed_ticket_type_values(form), status=422)


@routes.get("/org/webinars/{id}/ticket-types/new")
async def new_ticket_type(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
    return await _type_form_page(request, organizer, webinar=webinar, kind=None,
                                 values=forms.blank_ticket_type_values(), errors={})


@routes.post("/org/webinars/{id}/ticket-types")
async def create_ticket_type(request: web.Request) -> web.Response:
    """The console's twin of POST /api/webinars/{id}/ticket-types."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    form = await checked_form(request)
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
    try:
        data = forms.ticket_type_input(form, webinar)
        async with request.app[SESSIONMAKER].begin() as db:
            kind, _ = await ticket_types.create_type(db, organizer, webinar_id, data)
    except (forms.FormErrors, Invalid, Conflict) as error:
        return await _type_form_refused(request, organizer, form, error, webinar=webinar, kind=None)
    return await _flash_and_go(request, words(request, organizer).gettext("Ticket type “%(name)s” added.")
                               % {"name": kind.name}, f"/org/webinars/{webinar_id}#ticket-types")


async def _own_type(request: web.Request, organizer: Organizer):
    type_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        kind = await db.get(TicketType, type_id)
        if kind is None:
            raise NotFound("no such ticket type")
        webinar = await webinars.get_own_webinar(db, organizer, kind.webinar_id)
    return kind, webinar


@routes.get("/org/ticket-types/{id}/edit")
async def edit_ticket_type(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    kind, webinar = await _own_type(request, organizer)
    return await _type_form_page(request, organizer, webinar=webinar, kind=kind,
                                 values=forms.ticket_type_values(kind, webinar), errors={})


@routes.post("/org/ticket-types/{id}/edit")
async def update_ticket_type(request: web.Request) -> web.Response:
    """The console's twin of PATCH /api/ticket-types/{id}."""
    organizer = await organizer_of(request)
    kind, webinar = await _own_type(request, organizer)
    form = await checked_form(request)
    try:
        data = forms.ticket_type_input(form, webinar)
        async with request.app[SESSIONMAKER].begin() as db:
            kind, _ = await ticket_types.update_type(db, organizer, kind.id, data)
    except (forms.FormErrors, Invalid, Conflict) as error:
        return await _type_form_refused(request, organizer, form, error, webinar=webinar, kind=kind)
    return await _flash_and_go(request, words(request, organizer).gettext("Ticket type “%(name)s” saved.")
                               % {"name": kind.name}, f"/org/webinars/{webinar.id}#ticket-types")


@routes.get("/org/webinars/{id}/sales.json")
async def webinar_sales(request: web.Request) -> web.Response:
    """The live sales figure the webinar page refreshes itself with."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
        sales = (await figures.sales_by_webinar(db, [webinar]))[webinar.id]
    response = web.json_response({"tickets_sold": sales.tickets_sold, "seats_left": sales.seats_left,
                                  "revenue": _revenue_text(sales.revenue, console_language(request, organizer)),
                                  "paid_orders": sales.paid_orders,
                                  "pending_registrations": sales.pending_registrations})
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/org/webinars/{id}/attendees.csv")
async def attendees_csv(request: web.Request) -> web.Response:
    """The same CSV as `GET /api/webinars/{id}/tickets` with `Accept: text/csv`."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        tickets = await webinars.list_tickets(db, organizer, webinar_id)
        attended = await attendance.for_tickets(db, webinar_id, request.app[SETTINGS])
        disputes = await order_lifecycle.ticket_disputes(db, tickets)
        names = await ticket_types.type_names(db, webinar_id)
        invoices = await order_lifecycle.ticket_invoices(db, tickets)
    return _csv([ticket_json(t, names) | {"order_dispute": disputes.get(t.order_id),
                                          "invoice_number": invoices.get(t.order_id)}
                 | attendance.ticket_fields(attended.get(t.id), csv=True) for t in tickets],
                filename=f"tickets-{webinar_id}.csv")


@routes.post("/org/webinars/{id}/host-link")
async def host_link(request: web.Request) -> web.Response:
    """Into the room as moderator: a fresh host link, straight away."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    await checked_form(request)
    async with request.app[SESSIONMAKER]() as db:
        link = await access.host_link(db, request.app[TOKENS], organizer, webinar_id, now=utcnow())
    raise web.HTTPSeeOther(link.url)


@routes.get("/org/webinars/{id}/cancel")
async def cancel_confirm(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
        preview = await figures.cancel_preview(db, organizer, webinar_id)
    t = words(request, organizer)
    refunds = t.ngettext("%(num)d paid order will be refunded", "%(num)d paid orders will be refunded",
                         preview.refunds) % {"num": preview.refunds}
    mails = t.ngettext("%(num)d attendee will get a mail saying so", "%(num)d attendees will get a mail saying so",
                       preview.mails) % {"num": preview.mails}
    return await page(request, "confirm.html", {
        "heading": t.gettext("Cancel “%(title)s”?") % {"title": webinar.title},
        "lines": [t.gettext("%(refunds)s, and %(mails)s.") % {"refunds": refunds, "mails": mails},
                  t.gettext("Sales stop and every join link stops working at once. This cannot be undone.")],
        "action": f"/org/webinars/{webinar_id}/cancel", "button": t.gettext("Cancel the webinar"), "danger": True,
        "back": f"/org/webinars/{webinar_id}", "back_label": t.gettext("Keep it"),
    }, organizer=organizer)


async def refused(request: web.Request, organizer: Organizer, error: DomainError, back: str) -> web.Response:
    """A console action the service refused, with nothing changed: why, in the console's
    language, with the error's status and a way back to the page the action started from."""
    return await page(request, "refused.html", {
        "why": forms.in_form_words(error.message, console_language(request, organizer)), "back": back,
        "back_label": words(request, organizer).gettext("Back")}, status=status_of(error), organizer=organizer)


@routes.post("/org/webinars/{id}/cancel")
async def cancel_webinar(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    await checked_form(request)
    settings = request.app[SETTINGS]
    try:
        await webinar_lifecycle.cancel_webinar(request.app[SESSIONMAKER], organizer, webinar_id,
                                               grace_minutes=settings.join_grace_minutes, settings=settings)
    except Conflict as error:
        return await refused(request, organizer, error, f"/org/webinars/{webinar_id}")
    return await _flash_and_go(request, words(request, organizer).gettext(
                               "The webinar is cancelled; refunds and mails are on their way."),
                               f"/org/webinars/{webinar_id}")


TICKET_ACTIONS = {
    # action: (heading, what happens, button)
    "resend": (N_("Send the join link again?"),
               N_("%(email)s gets a mail with a new link; the old link stops working at once."), N_("Send a new link")),
    "revoke": (N_("Revoke this ticket?"),
               N_("%(email)s can no longer join and gets a mail saying so. No money is refunded."),
               N_("Revoke the ticket")),
    "restore": (N_("Give this ticket back?"),
                N_("The dispute over this order was won: %(email)s gets the seat back and a mail with a new join link."),
                N_("Restore the ticket")),
    "refund": (N_("Revoke and refund this ticket?"),
               N_("%(email)s can no longer join, gets a mail saying so, and this ticket's share of the order "
                  "(%(amount)s) is refunded."),
               N_("Revoke and refund")),
}


async def _ticket(request: web.Request, organizer: Organizer) -> tuple[Ticket, Webinar]:
    action = request.match_info["action"]
    if action not in TICKET_ACTIONS:
        raise NotFound("no such action")
    ticket_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        return await figures.own_ticket(db, organizer, ticket_id)


async def _address_page(request: web.Request, organizer: Organizer, ticket: Ticket, webinar: Webinar, *,
                        email: str, error: str | None = None, status: int = 200) -> web.Response:
    return await page(request, "ticket_address.html", {"ticket": ticket, "webinar": webinar, "email": email,
                                                       "error": error}, status=status, organizer=organizer)


@routes.get("/org/tickets/{id}/address")
async def address_form(request: web.Request) -> web.Response:
    """Correct a ticket's address (e.g. one the mail server refused), as `PATCH /api/tickets/{id}`."""
    organizer = await organizer_of(request)
    async with request.app[SESSIONMAKER]() as db:
        ticket, webinar = await figures.own_ticket(db, organizer, webinars.parse_id(request.match_info["id"]))
    return await _address_page(request, organizer, ticket, webinar, email=ticket.email)


@routes.post("/org/tickets/{id}/address")
async def address_save(request: web.Request) -> web.Response:
    """Save the new address through `update_ticket`, then offer the resend that mails the link there."""
    organizer = await organizer_of(request)
    ticket_id = webinars.parse_id(request.match_info["id"])
    form = await checked_form(request)
    email = str(form.get("email") or "")
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            ticket = await ticket_service.update_ticket(db, organizer, ticket_id, {"email": email})
    except Invalid as error:
        async with request.app[SESSIONMAKER]() as db:
            ticket, webinar = await figures.own_ticket(db, organizer, ticket_id)
        return await _address_page(request, organizer, ticket, webinar, email=email,
                                   error=forms.in_form_words(error.message, console_language(request, organizer)), status=422)
    return await _flash_and_go(request, words(request, organizer).gettext(
                               "The ticket's address is now %(email)s. Send the link there?") % {"email": ticket.email},
                               f"/org/tickets/{ticket.id}/resend")


@routes.get("/org/tickets/{id}/{action}")
async def ticket_confirm(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    ticket, webinar = await _ticket(request, organizer)
    heading, what, button = TICKET_ACTIONS[request.match_info["action"]]
    t = words(request, organizer)
    amount = i18n.money(webinar.price_amount, webinar.currency, console_language(request, organizer))
    return await page(request, "confirm.html", {
        "heading": t.gettext(heading),
        "lines": [t.gettext(what) % {"email": ticket.email, "amount": amount}],
        "action": request.path, "button": t.gettext(button),
        "danger": request.match_info["action"] in ("revoke", "refund"),
        "back": f"/org/webinars/{webinar.id}#attendees", "back_label": t.gettext("Back"),
    }, organizer=organizer)


@routes.post("/org/tickets/{id}/{action}")
async def ticket_action(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    ticket, webinar = await _ticket(request, organizer)
    await checked_form(request)
    action = request.match_info["action"]
    t = words(request, organizer)
    back = f"/org/webinars/{webinar.id}#attendees"
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            if action == "resend":
                await ticket_service.resend_ticket(db, organizer, ticket.id)
                message = t.gettext("A new link is on its way to %(email)s.")
            elif action == "restore":
                await ticket_lifecycle.restore_ticket(db, organizer, ticket.id,
                                                      grace_minutes=request.app[SETTINGS].join_grace_minutes)
                message = t.gettext("The ticket of %(email)s is valid again; a new link is on its way.")
            else:
                _, refunded = await ticket_lifecycle.revoke_ticket(db, organizer, ticket.id, refund=action == "refund",
                                                                   refund_required=action == "refund")
                message = (t.gettext("The ticket of %(email)s is revoked; the refund is on its way.") if refunded
                           else t.gettext("The ticket of %(email)s is revoked."))
    except (Conflict, Invalid) as error:
        return await refused(request, organizer, error, back)
    return await _flash_and_go(request, message % {"email": ticket.email}, back)


@routes.post("/org/waitlist/{id}/{action:remove|offer}")
async def waitlist_action(request: web.Request) -> web.Response:
    """Remove an entry from the waitlist, or offer it seats now; the same calls as the API's."""
    organizer = await organizer_of(request)
    entry_id = webinars.parse_id(request.match_info["id"])
    await checked_form(request)
    t = words(request, organizer)
    async with request.app[SESSIONMAKER]() as db:
        webinar_id = await waitlist.webinar_of_entry(db, organizer, entry_id)
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            if request.match_info["action"] == "offer":
                entry = await waitlist.offer_by_hand(db, organizer, entry_id, now=utcnow())
                message = t.gettext("An offer is on its way to %(email)s; its seats are held for them.")
            else:
                entry = await waitlist.remove(db, organizer, entry_id, now=utcnow())
                message = t.gettext("%(email)s is off the waitlist.")
    except Conflict as refused:
        return await _flash_and_go(request, forms.in_form_words(refused.message, console_language(request, organizer)),
                                   f"/org/webinars/{webinar_id}#waitlist")
    return await _flash_and_go(request, message % {"email": entry.email}, f"/org/webinars/{webinar_id}#waitlist")


@routes.get("/org/settings")
async def settings_form(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    values = {name: getattr(organizer, name) or "" for name in PROFILE_FIELDS}
    values |= {name: getattr(organizer, name) for name in BILLING_SWITCHES}
    values["invoice_footer"] = organizer.invoice_footer or ""
    values["console_language"] = organizer.console_language or ""
    return await page(request, "settings.html", {"values": values, "errors": {}, "languages": LANGUAGE_NAMES},
                      organizer=organizer)


@routes.post("/org/settings")
async def settings_save(request: web.Request) -> web.Response:
    """The profile, through `update_profile` as `PATCH /api/organizer`."""
    organizer = await organizer_of(request)
    form = await checked_form(request)
    data: dict[str, str | bool] = {name: str(form.get(name) or "") for name in (*PROFILE_FIELDS, "invoice_footer")}
    # A checkbox left unticked is not sent at all: absent means off.
    data |= {name: form.get(name) == "1" for name in BILLING_SWITCHES}
    language = str(form.get("console_language") or "")
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            await update_profile(db, organizer.id, data)
            await set_console_language(db, organizer.id, language)
    except Invalid as error:
        field = error.field if error.field in (*PROFILE_FIELDS, *BILLING_FIELDS, "console_language") else "name"
        message = forms.in_form_words(error.message, console_language(request, organizer))
        return await page(request, "settings.html", {"values": {**data, "console_language": language},
                                                     "errors": {field: message}, "languages": LANGUAGE_NAMES},
                          status=422, organizer=organizer)
    return await _flash_and_go(request, words(request, organizer).gettext("Settings saved."), "/org/settings")


async def _keys_page(request: web.Request, organizer: Organizer, *, new_key: str | None = None,
                     new_name: str = "", error: str | None = None, status: int = 200) -> web.Response:
    async with request.app[SESSIONMAKER]() as db:
        keys = await apikeys.list_keys(db, organizer)
    response = await page(request, "keys.html", {"keys": keys, "new_key": new_key, "name": new_name, "error": error},
                          status=status, organizer=organizer)
    return response


@routes.get("/org/keys")
async def keys_page(request: web.Request) -> web.Response:
    return await _keys_page(request, await organizer_of(request))


@routes.post("/org/keys")
async def create_key(request: web.Request) -> web.Response:
    """A new key, shown on this one page and never again."""
    organizer = await organizer_of(request)
    form = await checked_form(request)
    name = str(form.get("name") or "")
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            _, key = await apikeys.create_key(db, organizer, name)
    except (Invalid, Conflict) as error:
        return await _keys_page(request, organizer, new_name=name, status=422,
                                error=forms.in_form_words(error.message, console_language(request, organizer)))
    return await _keys_page(request, organizer, new_key=key)


@routes.get("/org/keys/{id}/revoke")
async def revoke_key_confirm(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    key_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        key = next((k for k in await apikeys.list_keys(db, organizer) if k.id == key_id), None)
    if key is None:
        raise NotFound("no such API key")
    t = words(request, organizer)
    return await page(request, "confirm.html", {
        "heading": t.gettext("Revoke the key “%(name)s”?") % {"name": key.name},
        "lines": [t.gettext("Programs using the key starting %(prefix)s… stop working at once. This cannot be undone.")
                  % {"prefix": key.prefix}],
        "action": request.path, "button": t.gettext("Revoke the key"), "danger": True, "back": "/org/keys",
        "back_label": t.gettext("Keep it"),
    }, organizer=organizer)


@routes.post("/org/keys/{id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    key_id = webinars.parse_id(request.match_info["id"])
    await checked_form(request)
    async with request.app[SESSIONMAKER].begin() as db:
        key = await apikeys.revoke_key(db, organizer, key_id)
    return await _flash_and_go(request, words(request, organizer).gettext("The key “%(name)s” is revoked.")
                               % {"name": key.name}, "/org/keys")


async def _messages_page(request: web.Request, organizer: Organizer, webinar_id, *, values: dict[str, str],
                         errors: dict[str, str] | None = None, draft=None, status: int = 200,
                         general: str | None = None) -> web.Response:
    async with request.app[SESSIONMAKER]() as db:
        webinar = await webinars.get_own_webinar(db, organizer, webinar_id)
        sent = await messages.list_messages(db, organizer, webinar_id)
    return await page(request, "messages.html", {
        "webinar": webinar, "values": values, "errors": errors or {}, "draft": draft, "sent": sent,
        "general": general, "per_hour": request.app[SETTINGS].messages_per_hour,
    }, status=status, organizer=organizer)


def _message_values(form) -> dict[str, str]:
    return {"subject": str(form.get("subject") or ""), "body": str(form.get("body") or "")}


@routes.get("/org/webinars/{id}/messages")
async def messages_page(request: web.Request) -> web.Response:
    """Write to the webinar's ticket holders, and the messages sent so far with their mails' state."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    return await _messages_page(request, organizer, webinar_id, values={"subject": "", "body": ""})


@routes.post("/org/webinars/{id}/messages/preview")
async def message_preview(request: web.Request) -> web.Response:
    """The message as it will read, and to how many, before anything is sent."""
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    values = _message_values(await checked_form(request))
    try:
        async with request.app[SESSIONMAKER]() as db:
            draft = await messages.preview(db, organizer, webinar_id, values)
    except Invalid as error:
        return await _messages_page(request, organizer, webinar_id, values=values, status=422, errors={
            error.field or "body": forms.in_form_words(error.message, console_language(request, organizer))})
    return await _messages_page(request, organizer, webinar_id, values=values, draft=draft)


@routes.post("/org/webinars/{id}/messages")
async def message_send(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    webinar_id = webinars.parse_id(request.match_info["id"])
    values = _message_values(await checked_form(request))
    try:
        async with request.app[SESSIONMAKER].begin() as db:
            sent = await messages.send_message(db, organizer, webinar_id, values,
                                               per_hour=request.app[SETTINGS].messages_per_hour)
    except Invalid as error:
        return await _messages_page(request, organizer, webinar_id, values=values, status=422, errors={
            error.field or "body": forms.in_form_words(error.message, console_language(request, organizer))})
    except (Conflict, RateLimited) as error:
        return await _messages_page(request, organizer, webinar_id, values=values,
                                    status=429 if isinstance(error, RateLimited) else 409,
                                    general=forms.in_form_words(error.message, console_language(request, organizer)))
    return await _flash_and_go(request, _sent_notice(console_language(request, organizer), sent.recipients),
                               f"/org/webinars/{webinar_id}/messages")
