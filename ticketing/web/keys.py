"""Typed keys for what the application holds."""

from __future__ import annotations

import aiohttp
import jinja2
import stripe
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ticketing.access.tokens import Tokens
from ticketing.settings import Settings
from ticketing.web.metrics import Metrics
from ticketing.web.ratelimit import JoinLimits, RateLimiter

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
STRIPE = web.AppKey("stripe", stripe.StripeClient | None)
HTTP = web.AppKey("http", aiohttp.ClientSession)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", Tokens)
JOIN_LIMITS = web.AppKey("join_limits", JoinLimits)
REGISTER_LIMIT = web.AppKey("register_limit", RateLimiter)
# Set on a request once its handler knows the buyer page's webinar and organizer, so an error
# page speaks the webinar's language and leads back to it.
BUYER_PAGE = web.RequestKey("buyer_page", tuple)
