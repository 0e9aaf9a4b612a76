"""Order references people can read aloud: `K7Q-M4X-RT2`, the first 45 bits of the order's
random id in Crockford's base32.

Derived from the id, so every order has one from the moment it exists, nothing is stored,
and an order is found by a range of ids on the primary key. The alphabet leaves out I, L,
O and U; what a caller reads back is forgiven the usual mix-ups (O for 0, I and L for 1),
spaces, dashes and case.
"""

from __future__ import annotations

import uuid

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 9
BITS = LENGTH * 5  # 45: inside the 48 random bits a version-4 UUID starts with
_MISREAD = str.maketrans({"O": "0", "I": "1", "L": "1"})


def order_reference(order_id: uuid.UUID) -> str:
    """The reference of an order, as printed in the console, the buyer's mail and order page."""
    value = order_id.int >> (128 - BITS)
    chars = "".join(ALPHABET[(value >> shift) & 31] for shift in range(BITS - 5, -1, -5))
    return f"{chars[:3]}-{chars[3:6]}-{chars[6:]}"


def parse_reference(text: str) -> int | None:
    """The 45 bits a typed or spoken reference stands for, or None when it is not one."""
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_MISREAD)
    if len(cleaned) != LENGTH or any(c not in ALPHABET for c in cleaned):
        return None
    value = 0
    for char in cleaned:
        value = value << 5 | ALPHABET.index(char)
    return value


def id_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The lowest and highest order id with this reference (for `Order.id.between`), or None.

    Ids compare byte by byte on PostgreSQL's uuid and as lower-case hex on SQLite, so the
    range is a contiguous stretch of the primary key on both."""
    value = parse_reference(text)
    if value is None:
        return None
    low = value << (128 - BITS)
    return uuid.UUID(int=low), uuid.UUID(int=low | ((1 << (128 - BITS)) - 1))
