"""GET /c/{code}: the page a certificate's verification URL opens (404 for an unknown code)."""

from __future__ import annotations

from aiohttp import web

from ticketing.attendance.certificates import find
from ticketing.web.keys import SESSIONMAKER, SETTINGS
from ticketing.web.responses import render

routes = web.RouteTableDef()


@routes.get("/c/{code}")
async def certificate(request: web.Request) -> web.Response:
    """Shows what the certificate states, so anyone holding the PDF can check it."""
    async with request.app[SESSIONMAKER]() as session:
        view = await find(session, request.match_info["code"], request.app[SETTINGS].base_url)
    if view is None:
        raise web.HTTPNotFound(text="No certificate has this code. Check the address printed on the certificate.")
    return render(request, "buyer/certificate.html", {"view": view})
