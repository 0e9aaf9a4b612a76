"""The application factory: routes, middlewares, and what lives as long as the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from ticketing.db import create_engine, create_sessionmaker
from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client
from ticketing.settings import Settings
from ticketing.web import api, buyer, ops, webhooks
from ticketing.web.keys import ENGINE, HTTP, METRICS, SESSIONMAKER, SETTINGS, STRIPE, TEMPLATES
from ticketing.web.metrics import Metrics
from ticketing.web.middlewares import errors, observe
from ticketing.web.templating import create_templates

MAX_BODY_BYTES = 1024 * 1024


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[SETTINGS].database_url)
    app[ENGINE] = engine
    app[SESSIONMAKER] = create_sessionmaker(engine)
    yield
    await engine.dispose()


async def _clients(app: web.Application) -> AsyncIterator[None]:
    app[STRIPE] = create_stripe_client(app[SETTINGS])
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    yield
    await app[HTTP].close()
    if app[STRIPE] is not None:
        await close_stripe_client(app[STRIPE])


def create_app(settings: Settings) -> web.Application:
    """The web application for `settings`; the database and clients open on startup."""
    app = web.Application(middlewares=[observe, errors], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[TEMPLATES] = create_templates()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_clients)
    app.add_routes(ops.routes)
    app.add_routes(api.routes)
    app.add_routes(buyer.routes)
    app.add_routes(webhooks.routes)
    if settings.dev_checkout:
        app.add_routes(buyer.dev_routes)
    return app
