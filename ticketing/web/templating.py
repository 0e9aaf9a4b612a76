"""Jinja2 for pages: autoescaped templates and the filters they use for money and time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import jinja2
from babel.numbers import format_currency, get_currency_precision

from ticketing import i18n
from ticketing.i18n import zone
from ticketing.webinars.description import description_html


def money(amount: int, currency: str) -> str:
    """Minor units as the reader expects them: 1999 EUR → €19.99, 500 JPY → ¥500."""
    code = currency.upper()
    return format_currency(Decimal(amount).scaleb(-get_currency_precision(code)), code, locale="en_US")


def in_zone(value: dt.datetime, zone_name: str, time_only: bool = False) -> str:
    local = value.astimezone(zone(zone_name))
    label = zone_name if zone_name[:1] not in "+-" else f"UTC{zone_name}"
    if time_only:
        return f"{local:%H:%M} ({label})"
    return f"{local:%A %d %B %Y, %H:%M}"


def iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


WEB = Path(__file__).parent
# Each area of the web layer keeps its templates beside its handlers, named "<area>/<file>";
# the shared layout (base.html, error.html) lives in web/templates.
AREAS = ("buyer", "org")


def create_templates() -> jinja2.Environment:
    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(WEB / "templates"),
        jinja2.PrefixLoader({area: jinja2.FileSystemLoader(WEB / area / "templates") for area in AREAS}),
    ])
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(money=money, in_zone=in_zone, iso=iso)
    # Buyer pages speak their webinar's language: gettext in the context, Babel's formats.
    i18n.install(env)
    env.filters.update(markdown=description_html)
    return env
