"""Languages of buyer pages and mails: gettext catalogs (compiled at build time), Babel's
formats for dates and money in the webinar's language, and the time zone a webinar is shown in.

A webinar's `language` picks the catalog and the formats. Templates get `gettext`,
`ngettext` and `_` for that language in their context (Jinja2's i18n extension reads them
from there), plus `lang`, which the formatting filters below read.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext as gettext_module
import logging
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_currency, get_currency_precision
from babel.support import NullTranslations, Translations

logger = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"
# language → (Babel locale for money and names, date pattern). English names days the
# British way ("Thursday 31 January 2030") with a 24-hour clock, like the German.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("en", "EEEE d MMMM y"),
    "de": ("de_DE", "EEEE, d. MMMM y"),
}
TIME_PATTERN = "HH:mm"


def zone(name: str) -> dt.tzinfo:
    """The tzinfo of a stored `timezone`: an IANA zone or a fixed offset."""
    if name[:1] in "+-":
        hours, minutes = name[1:].split(":")
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
        return dt.timezone(delta if name[0] == "+" else -delta)
    return zoneinfo.ZoneInfo(name)


class CatalogMissing(RuntimeError):
    """A compiled catalog (.mo) is missing: the package was not built (pip install compiles them)."""


def language(value: str | None) -> str:
    """A supported language, or the default for anything else."""
    return value if value in LANGUAGES else DEFAULT


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalog of `lang`; English is the source language, so its catalog may be empty."""
    lang = language(lang)
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not path.is_file():
        raise CatalogMissing(f"no compiled catalog at {path}; reinstall the package (pip install -e .) to build it")
    with path.open("rb") as file:
        return Translations(file, domain=DOMAIN)


def gettext_context(lang: str) -> dict[str, Any]:
    """What a template needs to speak `lang`: the gettext callables and `lang` itself."""
    catalog = translations(lang)
    lang = language(lang)
    return {"gettext": catalog.gettext, "ngettext": catalog.ngettext, "_": catalog.gettext, "lang": lang,
            "intl_locale": INTL_LOCALES[lang]}


def zone_label(zone_name: str) -> str:
    """The IANA name, or `UTC+01:00` for a fixed offset."""
    return zone_name if zone_name[:1] not in "+-" else f"UTC{zone_name}"


def offset_minutes(value: dt.datetime, zone_name: str) -> int:
    """The zone's UTC offset at `value`, in minutes (pages compare it with the viewer's)."""
    offset = value.astimezone(zone(zone_name)).utcoffset() or dt.timedelta(0)
    return int(offset.total_seconds() // 60)


# The browser locale a page's script formats the viewer's time with: the page's language,
# never the browser's own, so a German page stays German everywhere.
INTL_LOCALES = {"en": "en-GB", "de": "de-DE"}


# Cached: every mail and page of a webinar formats the same few times and prices, and
# Babel's formatting is a large share of rendering one.
@functools.lru_cache(maxsize=1024)
def date_text(value: dt.datetime, zone_name: str, lang: str) -> str:
    """`Thursday 31 January 2030` / `Donnerstag, 31. Januar 2030` in the given zone."""
    babel_locale, pattern = LANGUAGES[language(lang)]
    return format_datetime(value.astimezone(zone(zone_name)), pattern, locale=babel_locale)


@functools.lru_cache(maxsize=1024)
def time_text(value: dt.datetime, zone_name: str, lang: str) -> str:
    return format_datetime(value.astimezone(zone(zone_name)), TIME_PATTERN, locale=LANGUAGES[language(lang)][0])


def local_time(value: dt.datetime, zone_name: str, lang: str = DEFAULT) -> str:
    """Date and time in the webinar's zone, the zone named once: `… 2030, 18:00 (Europe/Berlin)`."""
    return f"{date_text(value, zone_name, lang)}, {time_text(value, zone_name, lang)} ({zone_label(zone_name)})"


def utc_time(value: dt.datetime, lang: str = DEFAULT) -> str:
    return f"{date_text(value, 'UTC', lang)}, {time_text(value, 'UTC', lang)} UTC"


@functools.lru_cache(maxsize=1024)
def money(amount: int, currency: str, lang: str = DEFAULT) -> str:
    """Minor units as the reader expects them: 2500 EUR → €25.00 (en), 25,00 € (de)."""
    code = currency.upper()
    return format_currency(Decimal(amount).scaleb(-get_currency_precision(code)), code,
                           locale=LANGUAGES[language(lang)][0])


def warm_up() -> None:
    """Load each language's catalog and Babel's locale data now. Babel reads a locale's data
    from disk on first use, and under a flash sale that first use was the first mail: about a
    second of CPU while the queue grew behind it."""
    for lang in LANGUAGES:
        translations(lang)
        date_text(dt.datetime(2030, 1, 31, tzinfo=dt.UTC), "UTC", lang)
        time_text(dt.datetime(2030, 1, 31, tzinfo=dt.UTC), "UTC", lang)
        money(100, "EUR", lang)


def preferred_language(accept_language: str | None) -> str:
    """The supported language a browser's `Accept-Language` header ranks highest, else the default."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, position, primary))
    return min(ranked)[2] if ranked else DEFAULT


def null_gettext_context() -> dict[str, Any]:
    """English without a catalog, for templates outside the buyer's path."""
    plain = gettext_module.NullTranslations()
    return {"gettext": plain.gettext, "ngettext": plain.ngettext, "_": plain.gettext, "lang": DEFAULT}


def install(env: Any) -> None:
    """Add the i18n extension and the language-aware filters to a Jinja2 environment.

    Outside a buyer's page or mail (no `gettext` in the context) templates speak English.
    """
    import jinja2

    env.add_extension("jinja2.ext.i18n")
    env.install_null_translations(newstyle=False)

    def lang_of(context: Any) -> str:
        return language(context.get("lang"))

    env.filters.update(
        local_time=jinja2.pass_context(lambda c, v, z: local_time(v, z, lang_of(c))),
        utc_time=jinja2.pass_context(lambda c, v: utc_time(v, lang_of(c))),
        date_text=jinja2.pass_context(lambda c, v, z: date_text(v, z, lang_of(c))),
        time_text=jinja2.pass_context(lambda c, v, z: time_text(v, z, lang_of(c))),
        money=jinja2.pass_context(lambda c, a, cur: money(a, cur, lang_of(c))),
        zone_label=zone_label,
        offset_minutes=offset_minutes,
    )
