"""The console's promo codes: the organizer's codes with their uses and revenue, and the forms
that add, change and remove them through the same service as /api/promo-codes."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from ticketing.db.models import Organizer, PromoCode, TicketType, Webinar
from ticketing.errors import Conflict, Invalid
from ticketing.orders import promo_codes, ticket_types
from ticketing.web.keys import SESSIONMAKER
from ticketing.web.org import forms
from ticketing.web.org.auth import checked_form, console_language, organizer_of, page
from ticketing.web.org.pages import _flash_and_go, _revenue_text, words
from ticketing.webinars import service as webinars

routes = web.RouteTableDef()


async def _choices(request: web.Request, organizer: Organizer) -> tuple[list[Webinar], list[tuple[Webinar, TicketType]]]:
    """The organizer's webinars, and the ticket types a code may be limited to (of typed webinars)."""
    async with request.app[SESSIONMAKER]() as db:
        own = await webinars.list_webinars(db, organizer)
        kinds = [(webinar, kind) for webinar in own if webinar.typed
                 for kind in await ticket_types.types_of(db, webinar.id)]
    return own, kinds


def _discount(code: PromoCode, webinar: Webinar | None) -> dict[str, Any]:
    """The code's discount for the list: its kind, and the amount in the webinar's currency (a
    code for all webinars is shown in plain figures, the currency being each webinar's)."""
    kind = next(name for name in ("percent_off", "amount_off", "fixed_price") if getattr(code, name) is not None)
    return {"kind": kind, "amount": getattr(code, kind), "currency": webinar.currency if webinar else None}


@routes.get("/org/promo-codes")
async def list_page(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    async with request.app[SESSIONMAKER]() as db:
        codes = await promo_codes.list_codes(db, organizer)
        revenue = await promo_codes.net_revenue(db, organizer)
        own = {webinar.id: webinar for webinar in await webinars.list_webinars(db, organizer)}
        names = {kind.id: kind.name for webinar in own.values() if webinar.typed
                 for kind in await ticket_types.types_of(db, webinar.id)}
    lang = console_language(request, organizer)
    rows = [{"code": code, "webinar": own.get(code.webinar_id), "discount": _discount(code, own.get(code.webinar_id)),
             "types": [names.get(_uuid(value), "?") for value in code.ticket_type_ids or []],
             "revenue": _revenue_text(revenue.get(code.id, {}), lang)} for code in codes]
    return await page(request, "promo_codes.html", {"rows": rows}, organizer=organizer)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _form_page(request: web.Request, organizer: Organizer, *, code: PromoCode | None, values: dict[str, Any],
                     errors: dict[str, str], status: int = 200) -> web.Response:
    own, kinds = await _choices(request, organizer)
    return await page(request, "promo_code_form.html", {
        "code": code, "values": values, "errors": errors, "webinars": own, "kinds": kinds,
    }, status=status, organizer=organizer)


async def _save(request: web.Request, organizer: Organizer, code: PromoCode | None) -> web.Response:
    """Create or change a code from the form; the form again with every problem beside its field."""
    form = await checked_form(request)
    own, _ = await _choices(request, organizer)
    data, errors = forms.promo_code_input(form, {str(webinar.id): webinar for webinar in own})
    # What the form could read goes to the service's checks too, so every problem shows at once.
    readable = {name: value for name, value in data.items() if forms.PROMO_FIELD_OF.get(name, name) not in errors}
    async with request.app[SESSIONMAKER]() as db:
        errors = {**forms.promo_form_errors(await promo_codes.code_errors(db, organizer, readable, code)), **errors}
    status = 422
    if not errors:
        try:
            async with request.app[SESSIONMAKER].begin() as db:
                if code is None:
                    saved = await promo_codes.create_code(db, organizer, data)
                else:
                    saved = await promo_codes.update_code(db, organizer, code.id, data)
        except (Invalid, Conflict) as error:
            # Decided only when saving: the code taken meanwhile, or uses already beyond a new limit.
            errors = forms.promo_form_errors({error.field or "code": error.message})
            status = 409 if isinstance(error, Conflict) else 422
    if errors:
        return await _form_page(request, organizer, code=code, values=forms.typed_promo_values(form), errors=errors,
                                status=status)
    t = words(request, organizer)
    message = t.gettext("Promo code “%(code)s” added.") if code is None else t.gettext("Promo code “%(code)s” saved.")
    return await _flash_and_go(request, message % {"code": saved.code}, "/org/promo-codes")


@routes.get("/org/promo-codes/new")
async def new_form(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    return await _form_page(request, organizer, code=None, values=forms.blank_promo_values(), errors={})


@routes.post("/org/promo-codes")
async def create(request: web.Request) -> web.Response:
    """The console's twin of POST /api/promo-codes."""
    organizer = await organizer_of(request)
    return await _save(request, organizer, None)


async def _own(request: web.Request, organizer: Organizer) -> tuple[PromoCode, Webinar | None]:
    code_id = webinars.parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as db:
        code = await promo_codes.own_code(db, organizer, code_id)
        webinar = await db.get(Webinar, code.webinar_id) if code.webinar_id else None
    return code, webinar


@routes.get("/org/promo-codes/{id}/edit")
async def edit_form(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    code, webinar = await _own(request, organizer)
    return await _form_page(request, organizer, code=code, values=forms.promo_code_values(code, webinar), errors={})


@routes.post("/org/promo-codes/{id}/edit")
async def update(request: web.Request) -> web.Response:
    """The console's twin of PATCH /api/promo-codes/{id}."""
    organizer = await organizer_of(request)
    code, _ = await _own(request, organizer)
    return await _save(request, organizer, code)


@routes.get("/org/promo-codes/{id}/delete")
async def delete_confirm(request: web.Request) -> web.Response:
    organizer = await organizer_of(request)
    code, _ = await _own(request, organizer)
    t = words(request, organizer)
    return await page(request, "confirm.html", {
        "heading": t.gettext("Delete the promo code “%(code)s”?") % {"code": code.code},
        "lines": [t.gettext("Buyers can no longer use it. Orders already priced with it keep their prices.")],
        "action": request.path, "button": t.gettext("Delete the code"), "danger": True,
        "back": "/org/promo-codes", "back_label": t.gettext("Keep it"),
    }, organizer=organizer)


@routes.post("/org/promo-codes/{id}/delete")
async def delete(request: web.Request) -> web.Response:
    """The console's twin of DELETE /api/promo-codes/{id}."""
    organizer = await organizer_of(request)
    code, _ = await _own(request, organizer)
    await checked_form(request)
    async with request.app[SESSIONMAKER].begin() as db:
        await promo_codes.delete_code(db, organizer, code.id)
    return await _flash_and_go(request, words(request, organizer).gettext("Promo code “%(code)s” deleted.")
                               % {"code": code.code}, "/org/promo-codes")
