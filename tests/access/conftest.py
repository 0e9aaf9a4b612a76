"""Helpers for the access tests: RSA key files, tickets with known codes, webinars placed in time."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db.models import Order, OrderStatus, Ticket, TicketStatus, Webinar
from ticketing.orders.ticket_types import default_type
from ticketing.tickets.capacity import take_seats
from ticketing.tickets.service import new_code

SECRET = "s" * 40


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh 2048-bit RSA key: (private PEM file, public PEM file)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two RSA key pairs, made once per run: "current" and "next"."""
    directory = tmp_path_factory.mktemp("keys")
    write_key_pair(directory, "current")
    write_key_pair(directory, "next")
    return directory


@pytest.fixture
def rs256(key_dir: Path) -> dict[str, str]:
    """make_settings(**rs256) configures RS256 with the current key and the next one."""
    return {"jitsi_private_key_file": str(key_dir / "current.key"), "jitsi_key_id": "ticketing/2030-01",
            "jitsi_next_public_key_file": str(key_dir / "next.pub"), "jitsi_next_key_id": "ticketing/2030-07"}


async def add_ticket(sessionmaker: async_sessionmaker[AsyncSession], webinar: Webinar, *, name: str = "Bea Buyer",
                     email: str = "bea@example.com", status: TicketStatus = TicketStatus.VALID,
                     revoked_reason: str | None = None) -> tuple[Ticket, str]:
    """A paid order with one ticket; returns the ticket and its plain join code. A valid ticket
    takes its seat as a sale does, so that revoking it later gives back a seat that was counted."""
    code, code_hash = new_code()
    async with sessionmaker.begin() as session:
        order = Order(id=uuid.uuid4(), webinar_id=webinar.id, quantity=1, email=email, expected_amount=webinar.price_amount,
                      amount_total=webinar.price_amount, currency=webinar.currency, amount_refunded=0,
                      status=OrderStatus.PAID)
        session.add(order)
        await session.flush()
        default = await default_type(session, webinar.id)
        if status == TicketStatus.VALID:
            assert await take_seats(session, webinar.id, {default.id: 1}), "the webinar is full"
        ticket = Ticket(id=uuid.uuid4(), order_id=order.id, webinar_id=webinar.id, ticket_type_id=default.id, seq=0,
                        email=email, name=name,
                        code_hash=code_hash, status=status, revoked_reason=revoked_reason, join_count=0)
        session.add(ticket)
    return ticket, code


async def move_webinar(sessionmaker: async_sessionmaker[AsyncSession], webinar: Webinar, starts_at: dt.datetime,
                       ends_at: dt.datetime, **values) -> None:
    """Put a webinar anywhere in time (the API refuses one already over), plus other column values."""
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id)
                              .values(starts_at=starts_at, ends_at=ends_at, **values))
    webinar.starts_at, webinar.ends_at = starts_at, ends_at
    for name, value in values.items():
        setattr(webinar, name, value)
