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
    Double,
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
    LATE = "late"  # paid after sales closed or the webinar ended: refund due


class TicketStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"


class TicketDelivery(enum.StrEnum):
    QUEUED = "queued"  # a mail with the ticket's link is on its way
    SENT = "sent"  # the mail server accepted the latest one
    FAILED = "failed"  # the mail server refused it for good (see delivery_error)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class Organizer(Base):
    __tablename__ = "organizers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # The sign-in address, stored lower-case: one organizer per address, whatever its case.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # SHA-256 of the API key: the key has 256 random bits, so a fast hash is enough.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What buyers see: the address they may write to (Reply-To of every mail; the sign-in
    # address when unset) and the legal pages linked in the footer of buyer pages and mails.
    contact_email: Mapped[str | None] = mapped_column(String(320))
    imprint_url: Mapped[str | None] = mapped_column(String(500))
    terms_url: Mapped[str | None] = mapped_column(String(500))
    # The console's language as the organizer chose it; NULL: the browser's preference.
    console_language: Mapped[str | None] = mapped_column(String(5))
    # Invoices and tax, passed to each Checkout Session: an invoice for every paid order (with
    # `invoice_footer` on it), the buyer's VAT id, Stripe Tax, and whether prices include tax.
    invoices: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    collect_tax_id: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    automatic_tax: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    prices_include_tax: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    invoice_footer: Mapped[str | None] = mapped_column(String(500))

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
        CheckConstraint("sales_end IS NULL OR sales_end <= ends_at", name="sales_end_not_after_end"),
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
    # One device per ticket: a second browser is refused while the first is in the room.
    one_device: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Attendees present at least this share of the scheduled time get a certificate; NULL = none.
    certificate_min_percent: Mapped[int | None] = mapped_column(Integer)

    # When sales close; NULL: at `ends_at` (see ticketing.webinars.sales).
    sales_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    organizer: Mapped[Organizer] = relationship(lazy="raise_on_sql")
    # The language of its buyer pages and mails (a locale with a catalog, e.g. "en", "de").
    language: Mapped[str] = mapped_column(String(10), default="en", server_default="en")
    # False while the webinar sells only its default type without a capacity or window of its
    # own: seats are then counted on the webinar alone (the flash sale's fast path needs that).
    # Set once, for good, when the organizer adds a type or limits the default one; its
    # seats_taken then starts from the webinar's (see ticketing.orders.ticket_types).
    typed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Once sold out, the public page takes names for a waitlist and freed seats go to it first.
    waitlist: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # How long an offer to the waitlist holds its seats (never past the sales end).
    offer_hours: Mapped[int] = mapped_column(Integer, default=12, server_default="12")


class TicketType(Base):
    """A kind of seat with its own price, and optionally its own capacity and sale window."""

    __tablename__ = "ticket_types"
    __table_args__ = (
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        CheckConstraint("seats_taken >= 0", name="seats_taken_not_negative"),
        CheckConstraint("sales_start IS NULL OR sales_end IS NULL OR sales_end > sales_start",
                        name="window_not_empty"),
        # One default type per webinar: the price the webinar's own `price_amount` names.
        Index("uq_ticket_types_default", "webinar_id", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    price_amount: Mapped[int] = mapped_column(BigInteger)
    capacity: Mapped[int | None] = mapped_column(Integer)
    # Seats of this type held by paid, unrevoked tickets (or, later, by holds), raised by a
    # conditional UPDATE; counted only once the webinar is `typed`.
    seats_taken: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sales_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sales_end: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    # Stripe Tax's part of amount_total (Checkout's total_details.amount_tax): on top of the
    # expected amount when prices exclude tax, inside it when they include it.
    amount_tax: Mapped[int | None] = mapped_column(BigInteger)
    # The waitlist entry whose offer this order is a checkout of (a second tab makes a second one).
    waitlist_entry_id: Mapped[uuid.UUID | None] = mapped_column()
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.PENDING)
    # Facts, each set once and never unset, so events converge whatever their order.
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    payment_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # fully refunded
    disputed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # a chargeback, not an inquiry
    dispute_won_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dispute_lost_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A card issuer's inquiry (no money taken yet): shown to the organizer, revokes nothing.
    inquiry_opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    inquiry_closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
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
    # The promo code the order was priced with, and where its use stands: "reserved" while the
    # checkout is open, "used" once paid, "released" when it expired or failed.
    promo_code_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("promo_codes.id", ondelete="SET NULL"),
                                                            index=True)
    promo_use: Mapped[str | None] = mapped_column(String(10))
    # The invoice Stripe issued for the order (Checkout's `invoice_creation`), and the credit
    # note issued after a refund; the id comes first, the rest from the event or a lookup.
    invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    invoice_number: Mapped[str | None] = mapped_column(String(100))
    invoice_url: Mapped[str | None] = mapped_column(String(1000))
    invoice_pdf: Mapped[str | None] = mapped_column(String(1000))
    credit_note_number: Mapped[str | None] = mapped_column(String(100))
    credit_note_pdf: Mapped[str | None] = mapped_column(String(1000))


class PromoCode(Base):
    """An organizer's discount: for one webinar or all of theirs, optionally for certain types."""

    __tablename__ = "promo_codes"
    __table_args__ = (
        UniqueConstraint("organizer_id", "code_key"),
        CheckConstraint("uses_reserved >= 0 AND uses_paid >= 0", name="uses_not_negative"),
        # The last guard against over-use: counters only move by conditional UPDATEs, and
        # this holds even if one were wrong.
        CheckConstraint("max_uses IS NULL OR uses_reserved + uses_paid <= max_uses", name="uses_within_max"),
        CheckConstraint("(CASE WHEN percent_off IS NULL THEN 0 ELSE 1 END) + (CASE WHEN amount_off IS NULL THEN 0 ELSE 1 END)"
                        " + (CASE WHEN fixed_price IS NULL THEN 0 ELSE 1 END) = 1",
                        name="one_discount"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizers.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    # The code in lower case: codes are matched regardless of case.
    code_key: Mapped[str] = mapped_column(String(64))
    percent_off: Mapped[int | None] = mapped_column(Integer)
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    fixed_price: Mapped[int | None] = mapped_column(BigInteger)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses_reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    uses_paid: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    revenue: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    webinar_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"), index=True)
    ticket_type_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderLine(Base):
    """How many seats of one ticket type an order holds, at the unit price fixed when it started.

    Orders of a webinar that is not `typed` (and orders made before types existed) have no
    lines: their `quantity` seats are all of the webinar's default type, at its price."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_amount >= 0", name="unit_amount_not_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ticket_types.id"), primary_key=True, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)


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
    ticket_type_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ticket_types.id"), index=True)
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
    # What became of the latest mail carrying the ticket's link, so the organizer sees a refused address.
    delivery_status: Mapped[TicketDelivery] = mapped_column(_enum(TicketDelivery), default=TicketDelivery.QUEUED,
                                                            server_default=TicketDelivery.QUEUED.value)
    delivery_error: Mapped[str | None] = mapped_column(Text)

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
    # Failed processing is retried with backoff (payments/retries.py): how many tries failed,
    # when the next may run, and when the event was parked for an operator after the last.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    parked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


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


class Registration(Base):
    """A free webinar's registration: one address, confirmed by the link mailed to it before a
    seat is taken. Only the SHA-256 of the confirmation code is kept, as for join codes."""

    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("webinar_id", "email_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    # The address lower-cased: one registration per mailbox, however it is spelled.
    email_key: Mapped[str] = mapped_column(String(320))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The free order (and so the ticket) the confirmation made.
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
class LoginToken(Base):
    """A one-time sign-in link for the organizer console; only its SHA-256 is kept."""

    __tablename__ = "login_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizers.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Set once, by a conditional UPDATE: a link signs in at most one browser.
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """One of an organizer's API keys (several may be live at once); only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The key's first characters, so an organizer can tell keys apart; not enough to use one.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A signed-in browser. The encrypted cookie names it; signing out ends it here too, so a
    copy of the cookie taken before stops working."""

    __tablename__ = "console_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organizer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
class JitsiEvent(Base):
    """Every event Prosody's event_sync_component posted, kept as received; the fingerprint dedupes retries."""

    __tablename__ = "jitsi_events"
    __table_args__ = (Index("ix_jitsi_events_processed_at", "processed_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    # SHA-256 of the kind and the canonical JSON body: a retried post is the same event.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    room_name: Mapped[str | None] = mapped_column(String(255))
    webinar_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("webinars.id", ondelete="SET NULL"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)


class AttendanceSession(Base):
    """One stay of one occupant in a webinar's room (or one of its breakout rooms)."""

    __tablename__ = "attendance_sessions"
    __table_args__ = (
        # What identifies a stay in every event that mentions it, so any order of arrival meets the same row.
        UniqueConstraint("webinar_id", "space", "occupant_jid", "joined_at"),
        Index("ix_attendance_sessions_ticket_id_left_at", "ticket_id", "left_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"))
    # NULL when the occupant's token named no ticket of this webinar (a host, a guest, a hand-made token).
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # "" for the main room, else the breakout room's id.
    space: Mapped[str] = mapped_column(String(255), default="")
    occupant_jid: Mapped[str] = mapped_column(String(512))
    # The occupant's in-room nick when an event carried it: what mod_muc_kick_participant needs.
    nick: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Whether left_at came from the occupant's own leave (or the room's record of it), not the room's end.
    left_exact: Mapped[bool] = mapped_column(Boolean, default=False)


class TicketDevice(Base):
    """A browser (by its signed device cookie) that opened a ticket's link; the latest bound one holds it."""

    __tablename__ = "ticket_devices"

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    # When this browser became the ticket's device (first join, or a move); NULL = never admitted.
    bound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeviceMove(Base):
    """A one-time "move here" link mailed to a ticket holder whose ticket is in use on another device."""

    __tablename__ = "device_moves"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the link's token; the token itself is only in the mail (and its queued job).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    requested_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[str | None] = mapped_column(String(64))
    # What happened to the old device: "kick_queued" (Jitsi asked to remove it) or "recorded".
    outcome: Mapped[str | None] = mapped_column(String(40))


class Certificate(Base):
    """A certificate of attendance: one per ticket, verifiable at /c/{code}."""

    __tablename__ = "certificates"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    # As printed: the name, the minutes and the share at the time of issue.
    name: Mapped[str] = mapped_column(String(200))
    minutes: Mapped[int] = mapped_column(Integer)
    percent: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
class ReplacedCode(Base):
    """A join code that a newer one replaced (time change, resend, seat reassigned): kept as
    its hash, so the old link can say what happened instead of "not known"."""

    __tablename__ = "replaced_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # "rescheduled", "resent", "reassigned" or "restored"
    reason: Mapped[str] = mapped_column(String(20))
    replaced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """An organizer's message to the current holders of a webinar's tickets."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_webinar_id_created_at", "webinar_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # Markdown, rendered like descriptions
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageRecipient(Base):
    """One holder a message goes to, and what became of their mail (one row, one mail)."""

    __tablename__ = "message_recipients"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True,
                                                 index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[TicketDelivery] = mapped_column(_enum(TicketDelivery), default=TicketDelivery.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)


class RateCounter(Base):
    """One key of one rate limit, shared by every process: the moment (Unix seconds) by which
    its allowance is whole again. The key is the limit's name and a hash of what it counts by
    (a client address, an email address, a code), never the value itself."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    full_at: Mapped[float] = mapped_column(Double, index=True)


class WaitlistOutcome(enum.StrEnum):
    BOUGHT = "bought"  # the offer's checkout was paid
    EXPIRED = "expired"  # the offer ran out unpaid; its seats went on
    DECLINED = "declined"  # the person declined the offer, or left the list
    REMOVED = "removed"  # the organizer took the entry off the list
    CLOSED = "closed"  # sales ended while the entry was still waiting


class WaitlistEntry(Base):
    """A place on a sold-out webinar's waitlist: one address per webinar. Confirmed by the link
    mailed first; its place is its confirmation time. An offer takes `quantity` seats against
    capacity (`held`) until `offered_until`; the offer's checkout then settles without taking
    them again. Only the SHA-256 of the personal link's code is kept, like join codes."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        UniqueConstraint("webinar_id", "email_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_waitlist_entries_webinar_id_confirmed_at", "webinar_id", "confirmed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    webinar_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webinars.id", ondelete="CASCADE"))
    ticket_type_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ticket_types.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    quantity: Mapped[int] = mapped_column(Integer)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    offered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    offered_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # True while the offer's seats are taken against capacity for this entry.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The checkout the offer started (the order that converts the held seats).
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    outcome: Mapped[WaitlistOutcome | None] = mapped_column(_enum(WaitlistOutcome))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
