"""Operations endpoints: liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from ticketing.jobs import queue
from ticketing.payments import retries
from ticketing.web.keys import ENGINE, METRICS, SESSIONMAKER
from ticketing.web.responses import json_response

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(5):
            async with request.app[ENGINE].connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to reach the database means not ready
        return json_response({"status": "unavailable", "database": type(error).__name__}, status=503)
    return json_response({"status": "ok", "database": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(5):
            async with request.app[SESSIONMAKER]() as session:
                depth = await queue.depth(session)
                lag = await queue.oldest_due(session)
                waiting, parked = await retries.failed_counts(session)
        request.app[METRICS].set_queue(depth, lag)
        request.app[METRICS].set_failed_events(waiting, parked)
    except Exception:  # the other metrics still matter when the database is down
        logger.warning("could not read the job queue and failed events for /metrics", exc_info=True)
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
