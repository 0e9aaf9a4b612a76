"""GET /: a short page telling a newcomer what this service is and where to go from here."""

from __future__ import annotations

from aiohttp import web

from ticketing.web.responses import render

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    return render(request, "home.html", {})
