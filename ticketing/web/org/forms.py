"""Parsing the console's forms into the same input the API takes, and back for display.

Only parsing lives here (a local date-time in a zone, a price in major units); every rule
about what a webinar may be is the webinar service's, which the API calls too.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision

from ticketing import i18n
from ticketing.db.models import Webinar
from ticketing.errors import N_, Text
from ticketing.i18n import zone

FIELDS = ("title", "description", "starts_at", "ends_at", "time_zone", "price", "currency", "capacity", "room",
          "sales_end", "one_device", "certificate_min_percent", "language", "waitlist", "offer_hours")
# The service's (and the API's) names for the form fields that are named differently.
FORM_FIELD_OF = {"price_amount": "price", "timezone": "time_zone"}
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# The service speaks of its input's names; the form's reader knows the labels.
_WORDS = (("ends_at", "the end"), ("starts_at", "the start"), ("price_amount", "the price"),
          ("timezone", "the time zone"), ("capacity", "the number of seats"), ("null for no limit", "empty for no limit"),
          ("sales_end", "the end of sales"), ("certificate_min_percent", "the certificate's share"),
          ("one_device", "one device per ticket"), ("or null for no certificates", "or empty for no certificates"),
          ("offer_hours", "the hours an offer holds its seats"))


# The form's labels for the names a service message puts in its values, in other languages.
FIELD_WORDS = {"title": N_("the title"), "description": N_("the description"), "name": N_("the name"),
               "subject": N_("the subject"), "body": N_("the text"), "email": N_("the address"),
               "contact_email": N_("the contact email"), "imprint_url": N_("the imprint link"),
               "terms_url": N_("the terms link"), "starts_at": N_("the start"), "ends_at": N_("the end"),
               "sales_start": N_("the start of sales"), "sales_end": N_("the end of sales"), "position": N_("the place"),
               "price_amount": N_("the price"), "capacity": N_("the number of seats"), "timezone": N_("the time zone"),
               "offer_hours": N_("the hours an offer holds its seats")}


def in_form_words(message: str, lang: str = i18n.DEFAULT) -> str:
    """A service or form message as a sentence in the console's language, with the form's labels
    for the API's field names."""
    if i18n.language(lang) != i18n.DEFAULT:
        t = i18n.translations(lang)
        if isinstance(message, Text):
            values = {key: t.gettext(FIELD_WORDS[value]) if key == "name" and value in FIELD_WORDS
                      else t.gettext(value) if key == "state" else value for key, value in message.params.items()}
            template = (t.ngettext(message.template, *message.plural) if message.plural
                        else t.gettext(message.template))
            message = template % values if values else template
        else:
            message = t.gettext(message)
    for name, words in _WORDS:
        message = message.replace(name, words)
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "?", "!")) else ".")


@functools.cache
def time_zones() -> tuple[str, ...]:
    """IANA zone names for the form's list: regions and UTC, without the legacy aliases."""
    names = {n for n in zoneinfo.available_timezones()
             if "/" in n and not n.startswith(("Etc/", "posix/", "right/", "SystemV/", "US/", "Canada/", "Mexico/",
                                               "Brazil/", "Chile/"))}
    return ("UTC", *sorted(names))


class FormErrors(Exception):
    """Fields that could not be read, each with what to fix; `data` is the input as far as it
    could be read (None for each field that could not), for the service to find the rest."""

    def __init__(self, errors: dict[str, str], data: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.data = data or {}


def form_errors(service_errors: dict[str, str], lang: str = i18n.DEFAULT) -> tuple[dict[str, str], str | None]:
    """The service's errors next to the form fields they are about, in the form's words; one
    about no field of the form stands above it."""
    errors: dict[str, str] = {}
    general = None
    for name, message in service_errors.items():
        field = FORM_FIELD_OF.get(name, name)
        if field in FIELDS:
            errors.setdefault(field, in_form_words(message, lang))
        else:
            general = general or in_form_words(message, lang)
    return errors, general


def _local_time(text: str, zone_name: str, field: str, errors: dict[str, str]) -> str | None:
    text = text.strip()
    if not text:
        errors[field] = Text(N_("Enter a date and time."))
        return None
    try:
        local = dt.datetime.fromisoformat(text)
    except ValueError:
        errors[field] = Text(N_("Enter a date and time like 2030-01-31 18:00."))
        return None
    if local.tzinfo is not None:
        return local.isoformat()
    try:
        tz = zone(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, KeyError):
        # Without a zone the local time cannot be read at all.
        errors["time_zone"] = Text(N_("Unknown time zone %(zone)r; use an IANA name like Europe/Berlin."), zone=zone_name)
        return None
    aware = local.replace(tzinfo=tz)
    # A wall time skipped by a clock change does not survive the round trip through UTC.
    if aware.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != local:
        errors[field] = Text(N_("%(time)s does not exist in %(zone)s (the clocks change then)."),
                             time=f"{local:%Y-%m-%d %H:%M}", zone=zone_name)
        return None
    return aware.isoformat()


def _price(text: str, currency: str, errors: dict[str, str]) -> int | None:
    text = text.strip().replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        # No price has 30 digits; a longer number would only cost time (or overflow) to scale.
        amount = Decimal(text if text and len(text) <= 30 else "x")
    except InvalidOperation:
        errors["price"] = Text(N_("Enter a price like 25.00 (0 for free)."))
        return None
    if not amount.is_finite() or abs(amount.adjusted()) > 30:
        errors["price"] = Text(N_("Enter a price like 25.00 (0 for free)."))
        return None
    places = get_currency_precision(currency.upper()) if currency.strip() else 2
    minor = amount.scaleb(places)
    if minor != minor.to_integral_value():
        errors["price"] = (Text(N_("%(currency)s has %(num)d decimal places at most."), currency=currency.upper(), num=places)
                           if currency.strip() else Text(N_("This currency has %(num)d decimal places at most."), num=places))
        return None
    return int(minor)


def webinar_input(form: Any, *, editing: bool) -> dict[str, Any]:
    """The API's input for a webinar from the form; FormErrors for fields that cannot be read."""
    values = {name: str(form.get(name) or "") for name in FIELDS}
    errors: dict[str, str] = {}
    zone_name = values["time_zone"].strip() or "UTC"
    data: dict[str, Any] = {
        "title": values["title"],
        "description": values["description"].replace("\r\n", "\n"),
        "timezone": zone_name,
        "currency": values["currency"].strip().upper(),
    }
    # Absent (an older form, a hand-made post): unchanged when editing, the service's default when creating.
    if values["language"].strip():
        data["language"] = values["language"].strip()
    for name in ("starts_at", "ends_at"):
        data[name] = _local_time(values[name], zone_name, name, errors)
    # Optional: empty means sales close when the webinar ends (the service's default).
    sales_end = values["sales_end"].strip()
    data["sales_end"] = _local_time(sales_end, zone_name, "sales_end", errors) if sales_end else None
    data["price_amount"] = _price(values["price"], values["currency"], errors)
    capacity = values["capacity"].strip()
    if capacity:
        try:
            data["capacity"] = int(capacity)
        except ValueError:
            errors["capacity"] = Text(N_("Enter a whole number of seats, or leave it empty for no limit."))
    else:
        data["capacity"] = None
    # A checkbox sends its value only when ticked; the move confirmation resends it as "on" or "".
    data["one_device"] = bool(values["one_device"])
    percent = values["certificate_min_percent"].strip()
    data["certificate_min_percent"] = None
    if percent:
        try:
            data["certificate_min_percent"] = int(percent)
        except ValueError:
            errors["certificate_min_percent"] = Text(
                N_("Enter a whole percent from 1 to 100, or leave it empty for no certificates."))
    data["waitlist"] = bool(values["waitlist"])
    hours = values["offer_hours"].strip()
    if hours:
        try:
            data["offer_hours"] = int(hours)
        except ValueError:
            errors["offer_hours"] = Text(N_("Enter whole hours from 1 to 168."))
    room = values["room"].strip()
    if room:
        data["room"] = room
    elif not editing:
        pass  # the service makes one up
    if errors:
        raise FormErrors(errors, data)
    return data


def form_values(webinar: Webinar) -> dict[str, str]:
    """A webinar as the form shows it: local times in its zone, the price in major units."""
    tz = zone(webinar.timezone)
    places = get_currency_precision(webinar.currency.upper())
    return {
        "title": webinar.title,
        "description": webinar.description,
        "starts_at": webinar.starts_at.astimezone(tz).strftime(LOCAL_FORMAT),
        "ends_at": webinar.ends_at.astimezone(tz).strftime(LOCAL_FORMAT),
        "time_zone": webinar.timezone,
        "price": f"{Decimal(webinar.price_amount).scaleb(-places):.{places}f}",
        "currency": webinar.currency.upper(),
        "capacity": "" if webinar.capacity is None else str(webinar.capacity),
        "room": webinar.room,
        "sales_end": "" if webinar.sales_end is None else webinar.sales_end.astimezone(tz).strftime(LOCAL_FORMAT),
        "one_device": "on" if webinar.one_device else "",
        "certificate_min_percent": "" if webinar.certificate_min_percent is None else str(webinar.certificate_min_percent),
        "language": webinar.language,
        "waitlist": "on" if webinar.waitlist else "",
        "offer_hours": str(webinar.offer_hours),
    }


def blank_values(time_zone: str = "UTC", language: str = "en") -> dict[str, str]:
    """A new webinar's form: its language is the console's until the organizer picks another."""
    return {"title": "", "description": "", "starts_at": "", "ends_at": "", "time_zone": time_zone,
            "price": "", "currency": "EUR", "capacity": "", "room": "", "sales_end": "",
            "one_device": "", "certificate_min_percent": "", "language": language, "waitlist": "on", "offer_hours": "12"}


def typed_values(form: Any) -> dict[str, str]:
    """What was typed, to show again next to the errors."""
    return {name: str(form.get(name) or "") for name in FIELDS}


TYPE_FIELDS = ("name", "description", "price", "capacity", "sales_start", "sales_end", "hidden", "position")


def ticket_type_input(form: Any, webinar: Webinar) -> dict[str, Any]:
    """The API's input for a ticket type from the console's form: the price in the webinar's
    currency, times local to the webinar's zone; FormErrors for fields that cannot be read."""
    values = {name: str(form.get(name) or "") for name in TYPE_FIELDS}
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"name": values["name"], "description": values["description"].replace("\r\n", "\n"),
                            "price_amount": _price(values["price"], webinar.currency, errors),
                            "hidden": bool(values["hidden"])}
    for name in ("sales_start", "sales_end"):
        text = values[name].strip()
        data[name] = _local_time(text, webinar.timezone, name, errors) if text else None
    for name, empty in (("capacity", None), ("position", 0)):
        text = values[name].strip()
        try:
            data[name] = int(text) if text else empty
        except ValueError:
            errors[name] = Text(N_("Enter a whole number, or leave it empty."))
    if errors:
        raise FormErrors(errors)
    return data


def ticket_type_values(kind: Any, webinar: Webinar) -> dict[str, str]:
    """A ticket type as the console's form shows it."""
    tz = zone(webinar.timezone)
    places = get_currency_precision(webinar.currency.upper())

    def local(value: dt.datetime | None) -> str:
        return "" if value is None else value.astimezone(tz).strftime(LOCAL_FORMAT)

    return {"name": kind.name, "description": kind.description,
            "price": f"{Decimal(kind.price_amount).scaleb(-places):.{places}f}",
            "capacity": "" if kind.capacity is None else str(kind.capacity),
            "sales_start": local(kind.sales_start), "sales_end": local(kind.sales_end),
            "hidden": "on" if kind.hidden else "", "position": str(kind.position)}


def blank_ticket_type_values() -> dict[str, str]:
    return dict.fromkeys(TYPE_FIELDS, "") | {"position": "0"}


def typed_ticket_type_values(form: Any) -> dict[str, str]:
    return {name: str(form.get(name) or "") for name in TYPE_FIELDS}


PROMO_FIELDS = ("code", "discount_kind", "discount", "webinar_id", "ticket_type_ids", "max_uses", "valid_from",
                "valid_until")
# The form's names for the service's fields it reports errors about.
PROMO_FIELD_OF = {"percent_off": "discount", "amount_off": "discount", "fixed_price": "discount"}
_PROMO_WORDS = (("percent_off, amount_off or fixed_price", "a percentage, an amount off or a fixed price"),
                ("percent_off", "the percentage"), ("amount_off", "the amount off"), ("fixed_price", "the fixed price"),
                ("max_uses", "the number of uses"), ("null for no limit", "empty for no limit"),
                ("valid_until", "the end of validity"), ("valid_from", "the start of validity"),
                ("ticket_type_ids", "the ticket types"), ("webinar_id", "the webinar"),
                (" of minor units", ""))


def promo_form_errors(service_errors: dict[str, str]) -> dict[str, str]:
    """The service's errors next to the form's fields, in the form's words."""
    errors: dict[str, str] = {}
    for name, message in service_errors.items():
        for words, plain_words in _PROMO_WORDS:
            message = message.replace(words, plain_words)
        errors.setdefault(PROMO_FIELD_OF.get(name, name), message[:1].upper() + message[1:] + ".")
    return errors


def promo_code_input(form: Any, webinars: dict[str, Webinar]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API's input for a promo code from the console's form (amounts in the chosen webinar's
    currency, times local to its zone, else UTC), and the errors of fields that cannot be read."""
    values = typed_promo_values(form)
    errors: dict[str, str] = {}
    webinar = webinars.get(values["webinar_id"])
    if values["webinar_id"] and webinar is None:
        errors["webinar_id"] = "Choose one of your webinars, or all of them."
    data: dict[str, Any] = {"code": values["code"], "webinar_id": str(webinar.id) if webinar else None,
                            "ticket_type_ids": list(form.getall("ticket_type_ids", []))}
    kind = values["discount_kind"]
    for name in ("percent_off", "amount_off", "fixed_price"):
        data[name] = None
    text = values["discount"].strip()
    if kind not in ("percent_off", "amount_off", "fixed_price"):
        errors["discount"] = "Choose a percentage, an amount off or a fixed price."
    elif not text:
        errors["discount"] = "Enter the discount."
    elif kind == "percent_off":
        try:
            data[kind] = int(text.rstrip("% "))
        except ValueError:
            errors["discount"] = "Enter a whole percentage from 1 to 100."
    else:
        found: dict[str, str] = {}
        data[kind] = _price(text, webinar.currency if webinar else "", found)
        if found:
            errors["discount"] = found["price"].replace("a price like 25.00 (0 for free)", "an amount like 5.00")
    uses = values["max_uses"].strip()
    try:
        data["max_uses"] = int(uses) if uses else None
    except ValueError:
        errors["max_uses"] = "Enter a whole number, or leave it empty for no limit."
    zone_name = webinar.timezone if webinar else "UTC"
    for name in ("valid_from", "valid_until"):
        text = values[name].strip()
        data[name] = _local_time(text, zone_name, name, errors) if text else None
    return data, errors


def promo_code_values(code: Any, webinar: Webinar | None) -> dict[str, Any]:
    """A promo code as the console's form shows it."""
    tz = zone(webinar.timezone) if webinar else dt.UTC
    places = get_currency_precision(webinar.currency.upper()) if webinar else 2
    kind = next(name for name in ("percent_off", "amount_off", "fixed_price") if getattr(code, name) is not None)
    amount = getattr(code, kind)
    return {"code": code.code, "discount_kind": kind,
            "discount": str(amount) if kind == "percent_off" else f"{Decimal(amount).scaleb(-places):.{places}f}",
            "webinar_id": str(code.webinar_id or ""), "ticket_type_ids": list(code.ticket_type_ids or []),
            "max_uses": "" if code.max_uses is None else str(code.max_uses),
            "valid_from": "" if code.valid_from is None else code.valid_from.astimezone(tz).strftime(LOCAL_FORMAT),
            "valid_until": "" if code.valid_until is None else code.valid_until.astimezone(tz).strftime(LOCAL_FORMAT)}


def blank_promo_values() -> dict[str, Any]:
    return dict.fromkeys(PROMO_FIELDS, "") | {"discount_kind": "percent_off", "ticket_type_ids": []}


def typed_promo_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: str(form.get(name) or "") for name in PROMO_FIELDS}
    values["ticket_type_ids"] = [str(value) for value in form.getall("ticket_type_ids", [])]
    return values
