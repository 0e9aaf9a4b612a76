"""Checks shared by every way input arrives (API, pages, CLI): email addresses and plain text."""

from __future__ import annotations

import unicodedata

from ticketing.errors import Invalid


def has_control(value: str, *, allow_newlines: bool = False) -> bool:
    """True when `value` holds a control character (NUL included), which no field here needs."""
    allowed = "\n\r\t" if allow_newlines else ""
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in value)


def plain(value: str) -> str:
    """`value` without control characters: for text from elsewhere (Stripe) that we keep."""
    return "".join(c for c in value if unicodedata.category(c) != "Cc")


def email_address(value: str, *, field: str = "email") -> str:
    """`value` as a plain address (`name@domain`), or Invalid saying why not."""
    value = value.strip()
    local, _, domain = value.partition("@")
    if (value.count("@") != 1 or not local or not domain.strip(".") or len(value) > 320
            or any(c.isspace() for c in value) or has_control(value)):
        raise Invalid(f"not an email address: {value!r}", field=field)
    return value
