"""The application factory: routes, middlewares, and what lives as long as the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from ticketing.access.end_meeting import system_key
from ticketing.access.join_records import flush_joins
from ticketing.access.tokens import Tokens
from ticketing.attendance.kick import kick_key
from ticketing.db import create_engine, create_sessionmaker
from ticketing.jobs.registry import JobContext
from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client
from ticketing.settings import Settings
from ticketing.web import dev_mail, edge, home, jitsi_events, ops, webhooks
from ticketing.web.api import attendance as api_attendance
from ticketing.web.api import keys as api_keys
from ticketing.web.api import openapi
from ticketing.web.api import routes as api
from ticketing.web.buyer import certificates as certificate_pages
from ticketing.web.buyer import devices as device_pages
from ticketing.web.buyer import join
from ticketing.web.buyer import pages as buyer
from ticketing.web.buyer import waitlist as waitlist_pages
from ticketing.web.headers import security_headers
from ticketing.web.keys import (
    ENGINE,
    HTTP,
    JOIN_LIMITS,
    METRICS,
    REGISTER_LIMIT,
    SESSIONMAKER,
    SETTINGS,
    STRIPE,
    TEMPLATES,
    TOKENS,
)
from ticketing.web.metrics import Metrics
from ticketing.web.middlewares import errors, observe
from ticketing.web.org import auth as org_auth
from ticketing.web.org import orders as org_orders
from ticketing.web.org import pages as org
from ticketing.web.org import promo_codes as org_promo_codes
from ticketing.web.ratelimit import JoinLimits, RateLimiter
from ticketing.web.templating import create_templates
from ticketing.workers import create_worker

MAX_BODY_BYTES = 1024 * 1024
STATIC_DIR = Path(__file__).parent / "web" / "static"


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    app[ENGINE] = engine
    app[SESSIONMAKER] = create_sessionmaker(engine)
    yield
    await flush_joins(app[SESSIONMAKER])
    await engine.dispose()


async def _clients(app: web.Application) -> AsyncIterator[None]:
    app[STRIPE] = create_stripe_client(app[SETTINGS])
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    yield
    await app[HTTP].close()
    if app[STRIPE] is not None:
        await close_stripe_client(app[STRIPE])


async def _worker(app: web.Application) -> AsyncIterator[None]:
    """The job worker in this process: started after the database and clients, stopped
    (bounded grace, unfinished jobs back to the queue) before they close."""
    context = JobContext(settings=app[SETTINGS], sessionmaker=app[SESSIONMAKER], stripe=app[STRIPE], http=app[HTTP])
    stop = asyncio.Event()
    task = asyncio.create_task(create_worker(context, on_outcome=app[METRICS].job_finished).run(stop))
    yield
    stop.set()
    await task


def create_app(settings: Settings, *, worker: bool = False) -> web.Application:
    """The web application for `settings`; the database and clients open on startup.
    With `worker`, the job worker runs in the same process (`ticketing serve`)."""
    app = web.Application(middlewares=[observe, security_headers, errors], client_max_size=MAX_BODY_BYTES,
                          handler_args=edge.HANDLER_ARGS)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[TEMPLATES] = create_templates()
    # Loaded once here, so a bad RS256 key file (login or end-meeting) stops the start with one line.
    app[TOKENS] = Tokens.from_settings(settings)
    system_key(settings)
    kick_key(settings)
    app[JOIN_LIMITS] = JoinLimits(per_code=RateLimiter("join.code", settings.join_rate_per_code),
                                  per_address=RateLimiter("join.address", settings.join_rate_per_address))
    app[REGISTER_LIMIT] = RateLimiter("register.address", settings.register_rate_per_address)
    edge.setup(app, settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_clients)
    app.cleanup_ctx.append(jitsi_events.intake)
    if worker:
        app.cleanup_ctx.append(_worker)
    app.add_routes(ops.routes)
    app.router.add_static("/static", STATIC_DIR)
    app.add_routes(api.routes)
    app.add_routes(openapi.routes)
    app.add_routes(buyer.routes)
    app.add_routes(waitlist_pages.routes)
    app.add_routes(webhooks.routes)
    app.add_routes(join.routes)
    org_auth.setup(app, settings)
    app.add_routes(org_auth.routes)
    app.add_routes(org.routes)
    app.add_routes(org_orders.routes)
    app.add_routes(org_promo_codes.routes)
    app.add_routes(api_keys.routes)
    app.add_routes(home.routes)
    app.add_routes(jitsi_events.routes)
    app.add_routes(api_attendance.routes)
    app.add_routes(device_pages.routes)
    app.add_routes(certificate_pages.routes)
    if settings.dev_checkout:
        app.add_routes(buyer.dev_routes)
    if settings.dev_mail:
        app.add_routes(dev_mail.routes)
    return app
