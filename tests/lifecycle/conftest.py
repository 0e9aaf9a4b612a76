"""Helpers for the lifecycle tests: paid orders through real webhooks, and a job context."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import select

import ticketing.workers  # noqa: F401  (registers every job kind the worker runs)
from tests import factories
from ticketing.db.models import Job, Order
from ticketing.jobs.registry import JobContext
from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client


async def pay(client, webinar, *, email: str = "buyer@example.com", quantity: int = 1) -> dict:
    """A paid checkout.session.completed posted as Stripe would; returns the session object."""
    session = factories.checkout_session(webinar, quantity=quantity, email=email)
    response = await factories.post_event(client, factories.event("checkout.session.completed", session))
    assert response.status == 200, await response.text()
    return session


async def order_for(sessionmaker, session_id: str) -> Order:
    async with sessionmaker() as db:
        return await db.scalar(select(Order).where(Order.stripe_session_id == session_id))


async def jobs_of(sessionmaker, kind: str) -> list[Job]:
    async with sessionmaker() as db:
        return list(await db.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))


@pytest.fixture
async def make_context(sessionmaker):
    """JobContext(settings) with a real Stripe client (None in dev mode) and HTTP session."""
    made: list[JobContext] = []

    async def build(settings, *, stripe_client=None) -> JobContext:
        ctx = JobContext(settings=settings, sessionmaker=sessionmaker,
                         stripe=stripe_client or create_stripe_client(settings), http=aiohttp.ClientSession())
        made.append(ctx)
        return ctx

    yield build
    for ctx in made:
        await ctx.http.close()
        if ctx.stripe is not None:
            await close_stripe_client(ctx.stripe)
