"""GET /c/{code}: the page a certificate's verification URL opens (404 for an unknown code)."""

from __future__ import annotations

from aiohttp import web

from ticketing.attendance.certificates import find
from ticketing.web.buyer.common import render_page
from ticketing.web.keys import SESSIONMAKER, SETTINGS

routes = web.RouteTableDef()


@routes.get("/c/{code}")
async def certificate(request: web.Request) -> web.Response:
    """Shows what the certificate states, in its webinar's language, so anyone holding the PDF can check it."""
    async with request.app[SESSIONMAKER]() as session:
        found = await find(session, request.match_info["code"], request.app[SETTINGS].base_url)
    if found is None:
        raise web.HTTPNotFound(text="No certificate has this code. Check the address printed on the certificate.")
    view, webinar, organizer = found
    return render_page(request, "buyer/certificate.html", {"view": view}, webinar=webinar, organizer=organizer)
