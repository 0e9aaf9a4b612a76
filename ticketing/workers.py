"""The job worker as the processes run it: every module that registers job kinds or periodic
tasks, a worker that knows them all, and the worker running on its own (`ticketing worker`).

The list lives here, beside `app` and `serving` where the processes are composed, and not in
`jobs/`: the queue and the worker are the ground floor that the domain rooms stand on, so
they never import a room. One import per module; add yours when it registers a @job or a
@periodic. Importing this module is what makes a process know every kind's try limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

import ticketing.access.end_meeting  # noqa: F401
import ticketing.attendance.certificates  # noqa: F401
import ticketing.attendance.events  # noqa: F401
import ticketing.attendance.kick  # noqa: F401
import ticketing.attendance.mails  # noqa: F401
import ticketing.jobs.maintenance  # noqa: F401
import ticketing.lifecycle.webinars  # noqa: F401
import ticketing.mail.confirmations  # noqa: F401
import ticketing.mail.jobs  # noqa: F401
import ticketing.mail.messages  # noqa: F401
import ticketing.mail.signin  # noqa: F401
import ticketing.payments.invoices  # noqa: F401
import ticketing.payments.reconcile  # noqa: F401
import ticketing.payments.refunds  # noqa: F401
import ticketing.waitlist.jobs  # noqa: F401
from ticketing.db import create_engine, create_sessionmaker
from ticketing.jobs.registry import JobContext
from ticketing.jobs.worker import Worker
from ticketing.mail.compose import warm_up
from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client
from ticketing.settings import Settings


def create_worker(context: JobContext, **options: Any) -> Worker:
    """A worker that knows every registered job kind and periodic task, with what mails need
    loaded already."""
    warm_up()
    return Worker(context, **options)


async def run_standalone(settings: Settings, stop: asyncio.Event, **options: Any) -> None:
    """`ticketing worker`: its own engine and clients, working until `stop` is set."""
    engine = create_engine(settings.database_url)
    stripe_client = create_stripe_client(settings)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            context = JobContext(settings=settings, sessionmaker=create_sessionmaker(engine), stripe=stripe_client, http=http)
            await create_worker(context, **options).run(stop)
    finally:
        if stripe_client is not None:
            await close_stripe_client(stripe_client)
        await engine.dispose()
