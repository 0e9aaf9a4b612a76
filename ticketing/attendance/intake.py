"""Group commit for the event receiver: posts that arrive together are stored and applied in
one transaction, and each is answered once that transaction has committed.

At the start of a webinar Prosody posts a join for everyone within seconds. One transaction
per post would cost a commit and a handful of statements each; here a burst costs a handful
of statements per batch. Nothing waits on purpose: while one batch commits, the next one
gathers whatever arrived meanwhile, so a lone post is written at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.attendance.events import Posted, parse, receive_many
from ticketing.errors import Unavailable

logger = logging.getLogger(__name__)

# Bounded so one statement stays well inside SQLite's limit on bound parameters.
MAX_BATCH = 200


class EventIntake:
    """Receives posts from many requests and writes them in batches; start() before use, stop() after."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, max_batch: int = MAX_BATCH) -> None:
        self.sessionmaker = sessionmaker
        self.max_batch = max_batch
        self._pending: list[tuple[Posted, asyncio.Future[str]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="attendance-intake")

    async def stop(self) -> None:
        """Finish the batch being written and write what is pending, then end the loop."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        await task

    async def submit(self, kind: str, body: Any) -> str:
        """Check the post (BadEvent), then wait until it is stored and applied; its outcome.

        Raises Unavailable when the database is down, as `receive_many` does.
        """
        posted = Posted(kind, body, parse(kind, body))
        if self._task is None:
            return (await receive_many(self.sessionmaker, [posted]))[0]
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((posted, future))
        self._wake.set()
        return await future

    def _take(self) -> list[tuple[Posted, asyncio.Future[str]]]:
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        return batch

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._write(self._take())
            if self._stopping:
                return

    async def _write(self, batch: list[tuple[Posted, asyncio.Future[str]]]) -> None:
        try:
            outcomes = await receive_many(self.sessionmaker, [posted for posted, _ in batch])
        except Unavailable as error:  # the database is down: every request of the batch hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except Exception as error:
            if len(batch) > 1:
                # One post the checks let through may still fail the shared transaction: the
                # others must not fail with it, so each is written alone.
                logger.warning("a batch of Jitsi events failed; writing them one by one",
                               extra={"count": len(batch), "error": type(error).__name__})
                for item in batch:
                    await self._write([item])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
