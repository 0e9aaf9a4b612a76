"""Reminders, time changes, resends, refund notices and the dev mail sink."""

from __future__ import annotations

import datetime as dt
import uuid

import icalendar
from sqlalchemy import select

from tests import factories
from tests.mail.test_delivery import buy, jobs, links
from ticketing.db import utcnow
from ticketing.db.models import JobStatus, Order, OrderStatus, Ticket
from ticketing.jobs import enqueue
from ticketing.tickets.service import revoke_tickets, ticket_for_code


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def bought(make_settings, smtp, start_client, sessionmaker, *, starts_in=dt.timedelta(days=2), **settings):
    settings = make_settings(smtp_url=smtp.url, **settings)
    client = await start_client(settings)
    owner, key = await factories.organizer(sessionmaker)
    starts = (utcnow() + starts_in).replace(microsecond=0)
    webinar = await factories.webinar(sessionmaker, owner, starts_at=starts.isoformat(),
                                      ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    await buy(client, webinar)
    async with sessionmaker() as session:
        [ticket] = list(await session.scalars(select(Ticket).where(Ticket.webinar_id == webinar.id)))
    return settings, client, key, webinar, ticket


async def test_reminders_go_out_24_hours_and_15_minutes_before_the_start(make_settings, smtp, start_client,
                                                                         sessionmaker, make_worker):
    settings, _, _, webinar, _ = await bought(make_settings, smtp, start_client, sessionmaker)
    reminders = await jobs(sessionmaker, "mail.reminder")
    assert sorted(j.due_at for j in reminders) == [webinar.starts_at - dt.timedelta(hours=24),
                                                   webinar.starts_at - dt.timedelta(minutes=15)]
    worker = make_worker(settings)
    await worker.run_until_idle()
    assert [m["Subject"] for m in smtp.messages] == ["Your order for Intro to Widgets"]

    day_before = webinar.starts_at - dt.timedelta(hours=24)
    assert await worker.run_until_idle(now=day_before - dt.timedelta(seconds=1)) == 0
    assert await worker.run_until_idle(now=day_before) == 1
    assert smtp.messages[-1]["Subject"] == "Tomorrow: Intro to Widgets"
    quarter = webinar.starts_at - dt.timedelta(minutes=15)
    assert await worker.run_until_idle(now=quarter - dt.timedelta(seconds=1)) == 0
    assert await worker.run_until_idle(now=quarter) == 1
    assert smtp.messages[-1]["Subject"] == "Starting in 15 minutes: Intro to Widgets"
    # The reminder carries the same working link as the join mail.
    assert links(smtp.messages[-1]) == links(smtp.messages[0])
    assert len(smtp.messages) == 3


async def test_reminders_already_past_at_purchase_are_skipped(make_settings, smtp, start_client, sessionmaker):
    await bought(make_settings, smtp, start_client, sessionmaker, starts_in=dt.timedelta(hours=3))
    [reminder] = await jobs(sessionmaker, "mail.reminder")
    assert reminder.payload["which"] == "15m"


async def test_time_change_sends_an_update_with_a_new_link_and_moves_the_reminders(
        make_settings, smtp, start_client, sessionmaker, make_worker):
    settings, client, key, webinar, _ = await bought(make_settings, smtp, start_client, sessionmaker)
    worker = make_worker(settings)
    await worker.run_until_idle()
    [old_code] = links(smtp.messages[0])

    new_start = webinar.starts_at + dt.timedelta(days=3)
    response = await client.patch(f"/api/webinars/{webinar.id}", headers=auth(key),
                                  json={"starts_at": new_start.isoformat(),
                                        "ends_at": (new_start + dt.timedelta(hours=1)).isoformat()})
    assert response.status == 200, await response.text()
    await worker.run_until_idle()
    [update] = smtp.messages[1:]
    assert update["Subject"] == "New time: Intro to Widgets"
    [new_code] = links(update)
    async with sessionmaker() as session:
        assert await ticket_for_code(session, old_code) is None  # the old link stops working
        assert await ticket_for_code(session, new_code) is not None
    [part] = [p for p in update.iter_attachments() if p.get_content_type() == "text/calendar"]
    [event] = icalendar.Calendar.from_ical(part.get_payload(decode=True)).walk("VEVENT")
    [first_part] = [p for p in smtp.messages[0].iter_attachments() if p.get_content_type() == "text/calendar"]
    [first] = icalendar.Calendar.from_ical(first_part.get_payload(decode=True)).walk("VEVENT")
    assert event["UID"] == first["UID"] and int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART") == new_start

    pending = [j for j in await jobs(sessionmaker, "mail.reminder") if j.status == JobStatus.QUEUED]
    assert sorted(j.due_at for j in pending) == [new_start - dt.timedelta(hours=24),
                                                 new_start - dt.timedelta(minutes=15)]
    assert all(j.payload["sequence"] == 1 for j in pending)
    # The old reminder time passes quietly; the new one carries the new link.
    assert await worker.run_until_idle(now=webinar.starts_at - dt.timedelta(hours=23)) == 0
    await worker.run_until_idle(now=new_start - dt.timedelta(hours=24))
    assert links(smtp.messages[-1]) == [new_code]
    assert len(smtp.messages) == 3


async def test_resend_rotates_the_code_and_mails_the_new_link(make_settings, smtp, start_client, sessionmaker,
                                                              make_worker):
    settings, client, key, webinar, ticket = await bought(make_settings, smtp, start_client, sessionmaker)
    worker = make_worker(settings)
    await worker.run_until_idle()
    [old_code] = links(smtp.messages[0])

    response = await client.post(f"/api/tickets/{ticket.id}/resend", headers=auth(key))
    assert response.status == 200, await response.text()
    assert (await response.json())["id"] == str(ticket.id)
    await worker.run_until_idle()
    assert len(smtp.messages) == 2
    assert smtp.messages[1]["Subject"] == "Your new link for Intro to Widgets"
    assert smtp.messages[1]["Message-ID"] != smtp.messages[0]["Message-ID"]
    [new_code] = links(smtp.messages[1])
    async with sessionmaker() as session:
        assert await ticket_for_code(session, old_code) is None
        assert (await ticket_for_code(session, new_code)).id == ticket.id
    # Pending reminders now carry the new link too.
    await worker.run_until_idle(now=webinar.starts_at - dt.timedelta(hours=24))
    assert links(smtp.messages[-1]) == [new_code]


async def test_resend_refuses_other_organizers_unknown_and_revoked_tickets(make_settings, smtp, start_client,
                                                                           sessionmaker):
    _, client, key, _, ticket = await bought(make_settings, smtp, start_client, sessionmaker)
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    response = await client.post(f"/api/tickets/{ticket.id}/resend", headers=auth(other_key))
    assert response.status == 403 and (await response.json())["error"]["code"] == "forbidden"
    response = await client.post(f"/api/tickets/{uuid.uuid4()}/resend", headers=auth(key))
    assert response.status == 404
    response = await client.post("/api/tickets/not-an-id/resend", headers=auth(key))
    assert response.status == 404
    response = await client.post(f"/api/tickets/{ticket.id}/resend")
    assert response.status == 401
    async with sessionmaker.begin() as session:
        row = await session.get(Ticket, ticket.id)
        await revoke_tickets(session, [row], "organizer")
    response = await client.post(f"/api/tickets/{ticket.id}/resend", headers=auth(key))
    assert response.status == 409 and "revoked" in (await response.json())["error"]["message"]


async def test_order_refunded_mail(make_settings, smtp, sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url)
    webinar = await factories.webinar(sessionmaker)
    async with sessionmaker.begin() as session:
        order = Order(webinar_id=webinar.id, email="late@example.com", quantity=1, amount_total=2500,
                      expected_amount=2500, currency="eur", amount_refunded=2500, status=OrderStatus.OVERSOLD)
        session.add(order)
        await session.flush()
        for _ in range(2):  # queued twice, sent once
            await enqueue(session, "mail.order_refunded", {"order_id": str(order.id), "reason": "oversold"},
                          dedupe_key=f"mail.order_refunded:{order.id}")
    await make_worker(settings).run_until_idle()
    [message] = smtp.to("late@example.com")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "sold out" in text and "€25.00" in text


async def test_dev_sink_writes_eml_files_listed_at_dev_mail(make_settings, start_client, sessionmaker, make_worker,
                                                            var_dir):
    settings = make_settings()
    assert settings.dev_mail
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker, title="<b>Bold</b> widgets")
    await buy(client, webinar, email="dev@example.com")
    await make_worker(settings).run_until_idle()
    files = list((var_dir / "mail").glob("*.eml"))
    assert len(files) == 1 and not list((var_dir / "mail").glob(".*"))
    page = await client.get("/dev/mail")
    assert page.status == 200
    html = await page.text()
    assert "Your order for &lt;b&gt;Bold&lt;/b&gt; widgets" in html and "dev@example.com" in html
    detail = await client.get(f"/dev/mail/{files[0].name}")
    assert detail.status == 200
    assert f"{settings.base_url}/j/" in await detail.text()
    assert (await client.get("/dev/mail/..%2Fstripe_webhook_secret")).status == 404
    assert (await client.get("/dev/mail/nope.eml")).status == 404


async def test_dev_mail_page_is_absent_with_smtp(make_settings, smtp, start_client):
    client = await start_client(make_settings(smtp_url=smtp.url))
    assert (await client.get("/dev/mail")).status == 404


async def test_metrics_show_queue_depth(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    await buy(client, webinar)
    text = await (await client.get("/metrics")).text()
    assert 'ticketing_jobs{kind="mail.order",status="queued"} 1.0' in text
    assert "ticketing_jobs_lag_seconds" in text
