"""Stripe's minimum charge per currency (its "minimum and maximum charge amounts" table).

Amounts are in the minor units Stripe's API takes (HUF counts in hundredths there, JPY has
none). Stripe refuses a smaller charge; for a currency not in the table the minimum is
about 0.50 USD after conversion to the account's currency, which only Stripe can tell.
"""

from __future__ import annotations

from decimal import Decimal

MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500,
    "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000,
    "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300, "sgd": 50, "thb": 1000,
}
# The one currency of the table Stripe counts in whole units; the others take hundredths.
_WHOLE_UNITS = {"jpy"}


def minimum_charge(currency: str) -> int | None:
    """Stripe's smallest charge in `currency`, in minor units; None when it publishes none."""
    return MINIMUM_CHARGE.get(currency.lower())


def describe(amount: int, currency: str) -> str:
    """`EUR 0.50 (50 in minor units)`: an amount as an organizer reads it and as the API takes it."""
    major = Decimal(amount) if currency.lower() in _WHOLE_UNITS else Decimal(amount).scaleb(-2)
    return f"{currency.upper()} {major} ({amount} in minor units)"
