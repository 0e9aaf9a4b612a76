"""Security headers: a Content-Security-Policy with a fresh nonce on every page, and on every
answer a Referrer-Policy, a Permissions-Policy and, unless the route chose otherwise,
`Cache-Control: no-store`.

Pages are rendered by `responses.render`, which takes a nonce from `page_nonce` and hands it
to the templates as `csp_nonce`: a `<script nonce="{{ csp_nonce }}">` runs, any other inline
script or style does not. Nearly every answer carries something personal (join and order
links, sign-in links, tokens in redirects, the console), so nothing is stored by browsers or
proxies but the static files.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

NONCE = web.RequestKey("csp_nonce", str) if hasattr(web, "RequestKey") else "csp_nonce"
# Browser features no page here uses; the Jitsi room is another origin with its own policy.
PERMISSIONS_POLICY = ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
                      "display-capture=(), interest-cohort=()")
# A cacheable path: the static files, which carry nothing personal.
CACHEABLE_PREFIXES = ("/static/",)


def page_nonce(request: web.Request) -> str:
    """This request's nonce (made on first use): the value of `nonce=` on its pages' scripts."""
    nonce = request.get(NONCE)
    if nonce is None:
        nonce = request[NONCE] = secrets.token_urlsafe(18)
    return nonce


def content_security_policy(nonce: str, *, inline_styles: bool = False) -> str:
    """Scripts only from here or carrying the nonce; styles, images and fetches from here only;
    no plugins, no framing, no <base> tricks. `form-action` stays open: checkout forms are
    answered with a redirect to Stripe and the host-link form with one to Jitsi."""
    style = "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'"
    return "; ".join([
        "default-src 'self'", f"script-src 'self' 'nonce-{nonce}'", style, "img-src 'self' data:",
        "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
        # The dev mail page shows a mail's HTML part in a sandboxed srcdoc frame.
        "frame-src 'self'",
    ])


def _protect(request: web.Request, headers) -> None:
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if not request.path.startswith(CACHEABLE_PREFIXES):
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects (a token in Location) are raised, not returned
        _protect(request, exc.headers)
        raise
    _protect(request, response.headers)
    return response
