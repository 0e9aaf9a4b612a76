"""The tables: organizers, webinars, orders, tickets, stored Stripe events and queued jobs."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing.db.base import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    # Plain VARCHAR plus a CHECK on both backends, so adding a value is a small migration.
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e],
                validate_strings=True, create_constraint=True, name=cls.__name__.lower())


class WebinarStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    ENDED = "ended"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"  # checkout started, or completed but not yet paid (async payment)
    PAID = "paid"  # paid and tickets issued
    FAILED = "failed"  # async payment failed
    EXPIRED = "expired"  # the checkout session expired unpaid
    FLAGGED = "flagged"  # paid, but amount or currency did not match: no tickets
    OVERSOLD = "oversold"  # paid for a full webinar: refund due
    REFUNDED = "refunded"  # fully refunded: tickets revoked
    DISPUTED = "disputed"  # a dispute was opened: tickets revoked
    CANCELLED = "cancelled"  # the webinar was cancelled: refund due or done


class TicketStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class Organizer(Base):
    __tablename__ = "organizers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    # SHA-256 of the API key: the key has 256 random bits, so a fast hash is enough.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What buyers see: the address they may write to (Reply-To of every mail; the sign-in
    # address when unset) and the legal pages linked in the footer of buyer pages and mails.
    contact_email: Mapped[str | None] = mapped_column(String(320))
    imprint_url: Mapped[str | None] = mapped_column(String(500))
    terms_url: Mapped[str | None] = mapped_column(String(500))

    @property
    def reply_to(self) -> str:
        """The address buyers reach the organizer at."""
        return self.contact_email or self.email


class Webinar(Base):
    __tablename__ = "webinars"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        CheckConstraint("seats_taken >= 0", name="seats_taken_not_negative"),
        # A room is unique among webinars that can still be joined.
        Index("uq_webinars_live_room", "room", unique=True,
              sqlite_where=text("status = 'scheduled'"), postgresql_where=text("status = 'scheduled'")),
        Index("ix_webinars_status_ends_at", "status", "ends_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizers.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # IANA zone name, or a fixed offset like "+02:00" taken from starts_at when none is given.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))  # lower-case, as Stripe writes it
    capacity: Mapped[int | None] = mapped_column(Integer)
    # Seats held by paid, unrevoked tickets; raised by a conditional UPDATE so it never passes capacity.
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    room: Mapped[str] = mapped_column(String(63))
    status: Mapped[WebinarStatus] = mapped_column(_enum(WebinarStatus), default=WebinarStatus.SCHEDULED)
    # Raised on every time change; the SEQUENCE of the calendar invitation.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    organizer: Mapped[Organizer] = relationship(lazy="raise_on_sql")
    # The language of its buyer pages and mails (a locale with a catalog, e.g. "en", "de").
    language: Mapped[str] = mapped_column(String(10), default="en", server_default="en")


class Order(Base):
    """One checkout: the facts Stripe told us, and the status derived from them."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("amount_refunded >= 0", name="amount_refunded_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"), index=True)
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    buyer_name: Mapped[str | None] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    # What the buyer was asked to pay, and what Stripe says was paid.
    expected_amount: Mapped[int | None] = mapped_column(BigInteger)
    amount_total: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.PENDING)
    # Facts, each set once and never unset, so events converge whatever their order.
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    payment_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # fully refunded
    disputed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dispute_won_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    livemode: Mapped[bool | None] = mapped_column(Boolean)
    # Why the organizer should look at this order (amount mismatch, oversold, …).
    problem: Mapped[str | None] = mapped_column(Text)
    refund_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    webinar: Mapped[Webinar] = relationship(lazy="raise_on_sql")
    tickets: Mapped[list[Ticket]] = relationship(lazy="raise_on_sql", back_populates="order", order_by="Ticket.seq")
    # The order page /o/{code}: SHA-256 of its code (made with the tickets, mailed to the buyer).
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # X25519 public key whose private half is derived from the order code: join codes of the
    # buyer's own seats are sealed to it, so only the order page (which has the code) shows them.
    page_key: Mapped[str | None] = mapped_column(String(64))
    # X25519 public key of the browser that started the checkout (its private half is in a
    # cookie); the order code sealed to it lets that browser's success page link the order page.
    browser_key: Mapped[str | None] = mapped_column(String(64))
    code_sealed: Mapped[str | None] = mapped_column(Text)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # One ticket per seat of an order: fulfilment can run twice and still make `quantity`.
        UniqueConstraint("order_id", "seq"),
        Index("ix_tickets_webinar_id_status", "webinar_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    # SHA-256 of the join code; the code itself is only ever in the mail (and its queued job).
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.VALID)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_joined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_joined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    join_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(lazy="raise_on_sql", back_populates="tickets")
    webinar: Mapped[Webinar] = relationship(lazy="raise_on_sql")
    # When the seat was given to its holder by mail (one-seat orders: at payment; otherwise
    # when the buyer assigned it); NULL while the seat waits on the buyer's order page.
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The join code sealed to the order's page_key while the buyer holds the seat.
    code_sealed: Mapped[str | None] = mapped_column(Text)


class StripeEvent(Base):
    """Every verified webhook event, stored before it is answered; the primary key dedupes."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    api_version: Mapped[str | None] = mapped_column(String(40))
    livemode: Mapped[bool] = mapped_column(Boolean)
    created: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the event points at, so an event that came before its order can be replayed.
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    """Work for later, written in the transaction that causes it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_due_at", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.QUEUED)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    # The same job for the same thing is queued once: e.g. "mail.join:<ticket id>".
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Refund(Base):
    """A refund this service made, keyed by Stripe's refund id so a retried job records it once."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    # Stripe's `re_…` id; dev mode's test refunds get a `re_test_…` id derived from the order or ticket.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    # Set when one ticket's share was refunded; NULL for the whole order.
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(40))
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncCursor(Base):
    """How far a periodic task has read an outside feed (e.g. Stripe's event list)."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReplacedCode(Base):
    """A join code that a newer one replaced (time change, resend, seat reassigned): kept as
    its hash, so the old link can say what happened instead of "not known"."""

    __tablename__ = "replaced_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # "rescheduled", "resent", "reassigned" or "restored"
    reason: Mapped[str] = mapped_column(String(20))
    replaced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
