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

from ticketing.db.models import Webinar
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


def in_form_words(message: str) -> str:
    """A service message with the form's labels for the API's field names, as a sentence."""
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


def form_errors(service_errors: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """The service's errors next to the form fields they are about, in the form's words; one
    about no field of the form stands above it."""
    errors: dict[str, str] = {}
    general = None
    for name, message in service_errors.items():
        field = FORM_FIELD_OF.get(name, name)
        if field in FIELDS:
            errors.setdefault(field, in_form_words(message))
        else:
            general = general or in_form_words(message)
    return errors, general


def _local_time(text: str, zone_name: str, field: str, errors: dict[str, str]) -> str | None:
    text = text.strip()
    if not text:
        errors[field] = "Enter a date and time."
        return None
    try:
        local = dt.datetime.fromisoformat(text)
    except ValueError:
        errors[field] = "Enter a date and time like 2030-01-31 18:00."
        return None
    if local.tzinfo is not None:
        return local.isoformat()
    try:
        tz = zone(zone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, KeyError):
        # Without a zone the local time cannot be read at all.
        errors["time_zone"] = f"Unknown time zone {zone_name!r}; use an IANA name like Europe/Berlin."
        return None
    aware = local.replace(tzinfo=tz)
    # A wall time skipped by a clock change does not survive the round trip through UTC.
    if aware.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != local:
        errors[field] = f"{local:%Y-%m-%d %H:%M} does not exist in {zone_name} (the clocks change then)."
        return None
    return aware.isoformat()


def _price(text: str, currency: str, errors: dict[str, str]) -> int | None:
    text = text.strip().replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        amount = Decimal(text or "x")
    except InvalidOperation:
        errors["price"] = "Enter a price like 25.00 (0 for free)."
        return None
    if not amount.is_finite():
        errors["price"] = "Enter a price like 25.00 (0 for free)."
        return None
    places = get_currency_precision(currency.upper()) if currency.strip() else 2
    minor = amount.scaleb(places)
    if minor != minor.to_integral_value():
        errors["price"] = f"{currency.upper() or 'This currency'} has {places} decimal places at most."
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
            errors["capacity"] = "Enter a whole number of seats, or leave it empty for no limit."
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
            errors["certificate_min_percent"] = "Enter a whole percent from 1 to 100, or leave it empty for no certificates."
    data["waitlist"] = bool(values["waitlist"])
    hours = values["offer_hours"].strip()
    if hours:
        try:
            data["offer_hours"] = int(hours)
        except ValueError:
            errors["offer_hours"] = "Enter whole hours from 1 to 168."
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
            errors[name] = "Enter a whole number, or leave it empty."
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
