"""Jinja2 for pages: autoescaped templates and the filters they use for money and time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import jinja2
from babel.numbers import format_currency, get_currency_precision

from ticketing import i18n
from ticketing.webinars.description import description_html


def money(amount: int, currency: str) -> str:
    """Minor units as the reader expects them: 1999 EUR → €19.99, 500 JPY → ¥500."""
    code = currency.upper()
    return format_currency(Decimal(amount).scaleb(-get_currency_precision(code)), code, locale="en_US")


@jinja2.pass_context
def in_zone(context: jinja2.runtime.Context, value: dt.datetime, zone_name: str, time_only: bool = False) -> str:
    """Date and time in the zone, in the page's language by Babel (`Wednesday 2 December 2026, 18:00`,
    `Mittwoch, 2. Dezember 2026, 18:00`); `time_only` gives `19:00 (Europe/Berlin)`."""
    lang = i18n.language(context.get("lang"))
    if time_only:
        return f"{i18n.time_text(value, zone_name, lang)} ({i18n.zone_label(zone_name)})"
    return f"{i18n.date_text(value, zone_name, lang)}, {i18n.time_text(value, zone_name, lang)}"


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
