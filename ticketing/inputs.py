"""Checks shared by every way input arrives (API, pages, CLI): email addresses, plain text, and
values no database column can hold."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email

from ticketing.errors import N_, Invalid, NotFound, Text

# Far enough from datetime's limits that windows, reminders and tokens never overflow.
YEARS = (2000, 9000)


def has_control(value: str, *, allow_newlines: bool = False) -> bool:
    """True when `value` holds a control character (NUL included) or a lone surrogate (JSON's
    `\\ud800` alone, which no encoding can write), neither of which any field here needs."""
    allowed = "\n\r\t" if allow_newlines else ""
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in allowed for c in value)


def plain(value: str) -> str:
    """`value` without control characters: for text from elsewhere (Stripe) that we keep."""
    return "".join(c for c in value if unicodedata.category(c) != "Cc")


def email_address(value: str, *, field: str = "email") -> str:
    """`value` as the plain address mail goes to, or Invalid saying why not.

    email-validator checks the syntax and the domain (IDNA, no special-use names such as
    localhost; no DNS look-up); what comes back is the address as it is stored and mailed:
    domain lower-case and in its ASCII form. Quoted local parts, comments, display names and
    non-ASCII local parts (which need SMTPUTF8) are refused, as the mail composer would."""
    value = value.strip()
    if len(value) > 320 or has_control(value):
        raise Invalid(Text(N_("not an email address: %(value)r"), value=value[:320]), field=field)
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False,
                                 allow_quoted_local=False, allow_domain_literal=False, allow_display_name=False)
    except EmailNotValidError as error:
        reason = str(error).rstrip(".")
        raise Invalid(Text(N_("not an email address: %(value)r (%(reason)s)"), value=value,
                           reason=reason[:1].lower() + reason[1:]), field=field) from None
    return checked.ascii_email or checked.normalized


# The widest integer column (BIGINT) on either database.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")


def path_number(value: str, *, what: str = "item") -> int:
    """A positive number from a URL path (a seat, a page): ASCII digits that fit the database's
    INTEGER; anything else names nothing here, so it is NotFound rather than a failed query."""
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= INT32_MAX:
        raise NotFound(f"no such {what}")
    return int(value)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 32


def check_storable(data: Any) -> None:
    """Invalid (naming the field) when a string in `data` holds a NUL byte or a lone surrogate,
    an integer lies outside 64 bits, or the nesting is deeper than any input here needs.

    The databases refuse such values (PostgreSQL: NUL and integer range; both drivers: lone
    surrogates), so input is checked once where it arrives, JSON body or form, and a bad
    value is a 422 rather than an error deep in a transaction.
    """
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        field = path or None
        if depth > MAX_DEPTH:
            raise Invalid(f"{path or 'the input'} is nested too deeply", field=field)
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise Invalid(f"{path or 'the input'} must not contain NUL bytes or lone surrogates", field=field)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise Invalid(f"{path or 'the input'} is out of range", field=field)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                if _UNSTORABLE.search(str(key)):
                    raise Invalid("a field name must not contain NUL bytes or lone surrogates")
                stack.append((name, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))


def whole_number(data: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    """`data[name]` as an int (never a bool), None when absent and not required."""
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid(Text(N_("%(name)s is required"), name=name), field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(Text(N_("%(name)s must be a whole number"), name=name), field=name)
    return value


def iso_time(value: str, name: str) -> dt.datetime:
    """An ISO 8601 time with its UTC offset (kept as given), within YEARS once in UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(Text(N_("%(name)s is not an ISO 8601 time: %(value)r"), name=name, value=value), field=name) from None
    if parsed.tzinfo is None:
        raise Invalid(Text(N_("%(name)s needs a UTC offset, e.g. %(value)s+00:00 or %(value)sZ"), name=name, value=value),
                      field=name)
    try:
        in_range = YEARS[0] <= parsed.astimezone(dt.UTC).year <= YEARS[1]
    except OverflowError:
        in_range = False
    if not in_range:
        raise Invalid(Text(N_("%(name)s must be between the years %(first)d and %(last)d"), name=name, first=YEARS[0],
                           last=YEARS[1]), field=name)
    return parsed
