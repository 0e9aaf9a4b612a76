"""Housekeeping of the queue itself: finished jobs are dropped after a while."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete

from ticketing.db import limits, utcnow
from ticketing.db.models import Job, JobStatus
from ticketing.jobs.registry import JobContext, periodic

logger = logging.getLogger(__name__)

# Long past any webinar a done job could belong to, so its dedupe key is no longer needed.
KEEP_DONE = dt.timedelta(days=30)


@periodic("jobs.purge_done")
async def purge_done(ctx: JobContext, *, now: dt.datetime | None = None) -> int:
    """Delete jobs that finished more than KEEP_DONE ago; returns how many."""
    cutoff = (now or utcnow()) - KEEP_DONE
    async with ctx.sessionmaker.begin() as session:
        result = await session.execute(
            delete(Job).where(Job.status == JobStatus.DONE, Job.finished_at < cutoff)
            .execution_options(synchronize_session=False)
        )
    if result.rowcount:
        logger.info("purged finished jobs", extra={"count": result.rowcount})
    return result.rowcount


@periodic("limits.purge")
async def purge_rate_counters(ctx: JobContext) -> int:
    """Delete rate counters whose allowance is whole again (they count nothing any more)."""
    return await limits.purge(ctx.sessionmaker)
