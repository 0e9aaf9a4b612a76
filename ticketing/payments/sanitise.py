"""Making a verified Stripe event storable whatever it holds.

A signed event is Stripe's word and must be kept even when a value in it is one the
database refuses: PostgreSQL takes no NUL byte in text or JSON and no lone UTF-16 surrogate
(JSON may carry `\\ud800` alone, which decodes to a code point no encoding can write), and a
short column takes no longer string. Storing the event with those values removed or cut
loses nothing that matters for processing and keeps the purchase.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import String

from ticketing.db.models import StripeEvent

# NUL and every surrogate code point: a Python str holds a surrogate only when it is lone
# (json.loads joins a valid pair into one character).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Deeper than any Stripe object; a payload nested further is cut there.
MAX_DEPTH = 64


def clean_text(value: str, limit: int | None = None) -> str:
    """`value` without NUL bytes and lone surrogates, cut to `limit` characters when given."""
    value = _UNSTORABLE.sub("", value)
    return value[:limit] if limit is not None else value


def clean_json(value: Any, depth: int = 0) -> Any:
    """A JSON value with every string (keys too) cleaned, and NaN or infinite numbers as null."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def storable_row(row: dict[str, Any]) -> dict[str, Any]:
    """A `stripe_events` row the database accepts: text cleaned and cut to its column's length,
    the payload cleaned throughout."""
    columns = StripeEvent.__table__.columns
    clean: dict[str, Any] = {}
    for name, value in row.items():
        if name == "payload":
            value = clean_json(value)
        elif isinstance(value, str):
            column_type = columns[name].type
            value = clean_text(value, column_type.length if isinstance(column_type, String) else None)
        clean[name] = value
    return clean
