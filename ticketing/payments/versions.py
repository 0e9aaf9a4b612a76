"""The Stripe API versions whose events this service reads, and the one it is written for.

A webhook endpoint renders its events in the API version it was created with (or the
account's default), so a real account sends one of many versions. The fields this service
reads are shaped the same way in every version listed here:

- Checkout Session: `id`, `metadata`, `client_reference_id`, `customer_details.email` and
  `.name` (else `customer_email`), `amount_total`, `currency`, `payment_status`,
  `payment_intent` (an id, or null: from 2022-08-01 a session gets its payment intent only
  when the buyer pays, so expired and unpaid sessions have none), `livemode`. What moved
  between versions is not read: `shipping` (until 2022-08-01), `shipping_details` (until
  2025-03-31.basil), `collected_information.shipping_details` (since).
- Charge (`charge.refunded`): `id`, `amount`, `amount_refunded`, `refunded`, `payment_intent`,
  `metadata`; the embedded `refunds` list (gone by default since 2022-11-15) is not read.
- Dispute: `id`, `charge`, `payment_intent` (may be null: then the charge is looked up),
  `amount`, `status`.

A version outside the table is still processed, by the full path, and logged once per
process and version.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

logger = logging.getLogger(__name__)

# The version this code is written and tested for: new webhook endpoints are made with it,
# and the Stripe client sends it. pyproject.toml pins `stripe` to the releases that pin it too.
API_VERSION = "2026-10-28.endive"

# Versions before Stripe named its releases, each read the same way for our fields.
DATED_VERSIONS = ("2020-08-27", "2022-08-01", "2022-11-15", "2023-08-16", "2023-10-16", "2024-04-10",
                  "2024-06-20")

# Named releases and the date of their first version; the monthly versions of a release
# (`YYYY-MM-DD.name`) change nothing that is not additive, so each is supported from that
# date to the next release's, and never past API_VERSION.
RELEASES = (("acacia", dt.date(2024, 9, 30)), ("basil", dt.date(2025, 3, 31)), ("clover", dt.date(2025, 9, 30)),
            ("dahlia", dt.date(2026, 3, 25)), ("endive", dt.date(2026, 10, 28)))

_NAMED = re.compile(r"(\d{4}-\d{2}-\d{2})\.([a-z]+)")


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


_NEWEST = _date(API_VERSION.partition(".")[0])


def is_supported(version: str | None) -> bool:
    """True for a version this code reads (None: an event without one, as our own test events)."""
    if version is None or version == API_VERSION or version in DATED_VERSIONS:
        return True
    match = _NAMED.fullmatch(version)
    if match is None:
        return False
    day, name = _date(match[1]), match[2]
    if day is None or _NEWEST is None or day > _NEWEST:
        return False
    for i, (release, first) in enumerate(RELEASES):
        if release == name:
            until = RELEASES[i + 1][1] if i + 1 < len(RELEASES) else None
            return first <= day and (until is None or day < until)
    return False


_WARNED: set[str] = set()


def check_version(version: str | None) -> bool:
    """Whether `version` is supported; the first event of an unsupported one in this process
    is logged (once: a real account sends every event in its endpoint's version)."""
    if is_supported(version):
        return True
    if version not in _WARNED:
        _WARNED.add(version)
        logger.warning("Stripe events of an API version this service does not know; processing them the long way",
                       extra={"api_version": version, "expected": API_VERSION})
    return False
