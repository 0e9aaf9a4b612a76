"""Mail jobs end to end: signed webhooks in, a real SMTP server on loopback out."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from sqlalchemy import select, update

from tests import factories
from ticketing.db import utcnow
from ticketing.db.models import Job, JobStatus, Ticket, TicketDelivery
from ticketing.jobs import enqueue
from ticketing.mail.jobs import MAIL_ATTEMPTS
from ticketing.tickets.service import seat_code, ticket_for_code

LINK = re.compile(r"/j/([A-Za-z0-9_-]{43})")
ORDER_LINK = re.compile(r"/o/([A-Za-z0-9_-]{43})")


def links(message) -> list[str]:
    return LINK.findall(message.get_body(preferencelist=("plain",)).get_content())


async def buy(client, webinar, *, quantity=1, email="buyer@example.com", times=1):
    evt = factories.event("checkout.session.completed",
                          factories.checkout_session(webinar, quantity=quantity, email=email))
    for _ in range(times):
        response = await factories.post_event(client, evt)
        assert response.status == 200, await response.text()
    return evt


async def jobs(sessionmaker, kind=None) -> list[Job]:
    async with sessionmaker() as session:
        query = select(Job).order_by(Job.id)
        if kind:
            query = query.where(Job.kind == kind)
        return list(await session.scalars(query))


async def test_one_mail_per_order_however_many_duplicate_webhooks(make_settings, smtp, start_client, sessionmaker,
                                                                   make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    evt = factories.event("checkout.session.completed", factories.checkout_session(webinar, quantity=2))
    for _ in range(3):
        assert (await factories.post_event(client, evt)).status == 200
    # and a burst of the same delivery at once, as Stripe's retries can overlap
    responses = await asyncio.gather(*(factories.post_event(client, evt) for _ in range(4)))
    assert all(r.status == 200 for r in responses)

    worker = make_worker(settings)
    assert await worker.run_until_idle() == 1
    assert await worker.run_until_idle() == 0
    [message] = smtp.to("buyer@example.com")
    text = message.get_body(preferencelist=("plain",)).get_content()
    # Two seats: no join link in the mail (each seat's link is on the order page), one order page link.
    assert links(message) == []
    [order_code] = ORDER_LINK.findall(text)
    async with sessionmaker() as session:
        codes = [seat_code(order_code, t) for t in await session.scalars(select(Ticket).order_by(Ticket.seq))]
        assert len(set(codes)) == 2 and None not in codes
        for code in codes:
            assert (await ticket_for_code(session, code)) is not None
    # The order code is gone from the finished job; only its hash remains on the order.
    for job in await jobs(sessionmaker, "mail.order"):
        assert job.status == JobStatus.DONE and "code" not in job.payload


async def test_smtp_down_then_up_delivers_once(make_settings, smtp, start_client, sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    smtp.stop()
    await buy(client, webinar)
    worker = make_worker(settings)
    now = utcnow()
    assert await worker.run_until_idle(now=now) == 1
    [job] = await jobs(sessionmaker, "mail.order")
    assert job.status == JobStatus.QUEUED and job.attempts == 1
    assert "Connect" in job.last_error or "refused" in job.last_error.lower()
    assert now + dt.timedelta(seconds=2) <= job.due_at <= now + dt.timedelta(seconds=5)

    # Still down an hour later: every try fails and backs off further; nothing is lost.
    later = now
    for _ in range(8):
        later += dt.timedelta(minutes=10)
        await worker.run_until_idle(now=later)
    [job] = await jobs(sessionmaker, "mail.order")
    assert job.status == JobStatus.QUEUED and job.attempts > 2

    smtp.start()
    await worker.run_until_idle(now=later + dt.timedelta(hours=2))
    await worker.run_until_idle(now=later + dt.timedelta(hours=4))
    assert len(smtp.to("buyer@example.com")) == 1
    [job] = await jobs(sessionmaker, "mail.order")
    assert job.status == JobStatus.DONE


async def test_temporary_refusal_retries(make_settings, smtp, start_client, sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    smtp.mode = "tempfail"
    await buy(client, webinar)
    worker = make_worker(settings)
    await worker.run_until_idle()
    [job] = await jobs(sessionmaker, "mail.order")
    assert job.status == JobStatus.QUEUED and "451" in job.last_error
    smtp.mode = "accept"
    await worker.run_until_idle(now=utcnow() + dt.timedelta(minutes=1))
    assert len(smtp.messages) == 1


async def test_permanent_refusal_parks_the_job_with_the_reason(make_settings, smtp, start_client, sessionmaker,
                                                                make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    smtp.refuse.add("nobody@example.com")
    await buy(client, webinar, email="nobody@example.com")
    worker = make_worker(settings)
    assert await worker.run_until_idle() == 1
    [job] = await jobs(sessionmaker, "mail.order")
    assert job.status == JobStatus.DEAD
    assert job.attempts == 1
    assert "550" in job.last_error and "mailbox unavailable" in job.last_error
    # Parked, not retried: nothing is due hours later (the reminders come a day before the start).
    assert await worker.run_until_idle(now=utcnow() + dt.timedelta(hours=6)) == 0
    [job] = await jobs(sessionmaker, "mail.order")
    assert job.status == JobStatus.DEAD
    assert smtp.messages == []


async def test_join_mail_of_a_revoked_ticket_is_not_sent(make_settings, smtp, start_client, sessionmaker,
                                                          make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    evt = await buy(client, webinar)
    payment_intent = evt["data"]["object"]["payment_intent"]
    refund = factories.event("charge.refunded", factories.charge(payment_intent, amount=2500, amount_refunded=2500))
    assert (await factories.post_event(client, refund)).status == 200
    await make_worker(settings).run_until_idle()
    [message] = smtp.to("buyer@example.com")
    assert str(message["Subject"]) == "Refunded: Intro to Widgets"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "was refunded, so the ticket has been cancelled" in text and "Refund: €25.00" in text
    assert "5–10 business days" in text and "/j/" not in text
    assert "/j/" not in message.get_body(preferencelist=("html",)).get_content()


async def _abandon(sessionmaker, job_id) -> None:
    """As if the worker running the job's last try had died an hour ago (its lease long out)."""
    async with sessionmaker.begin() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(
            status=JobStatus.RUNNING, attempts=MAIL_ATTEMPTS, locked_by="gone", locked_at=utcnow() - dt.timedelta(hours=1)))


async def test_a_mail_whose_worker_died_during_its_last_try_shows_as_failed(make_settings, smtp, start_client,
                                                                           sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    await buy(client, webinar)
    [order_job] = await jobs(sessionmaker, "mail.order")
    await _abandon(sessionmaker, order_job.id)
    await make_worker(settings).run_until_idle()

    [parked] = await jobs(sessionmaker, "mail.order")
    assert parked.status == JobStatus.DEAD and "stopped responding" in parked.last_error
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.webinar_id == webinar.id))
    assert ticket.delivery_status == TicketDelivery.FAILED
    assert "stopped during its last try" in ticket.delivery_error
    assert smtp.messages == []

    # The same for a ticket's own mail (here a resend of the seat's link).
    async with sessionmaker.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(
            delivery_status=TicketDelivery.QUEUED, delivery_error=None))
        await enqueue(session, "mail.resend", {"ticket_id": str(ticket.id),
                                               "code": seat_code(order_job.payload["code"], ticket)})
    [resend] = await jobs(sessionmaker, "mail.resend")
    await _abandon(sessionmaker, resend.id)
    await make_worker(settings).run_until_idle()
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket.id))
    assert ticket.delivery_status == TicketDelivery.FAILED
    assert smtp.messages == []
