"""GET /api/webinars/{id}/attendance: the organizer's summary of who came and for how long."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from ticketing.attendance.figures import summary
from ticketing.web.api.routes import authenticate
from ticketing.web.keys import SESSIONMAKER, SETTINGS
from ticketing.web.responses import json_response
from ticketing.webinars.service import parse_id

routes = web.RouteTableDef()


@routes.get("/api/webinars/{id}/attendance")
async def attendance_summary(request: web.Request) -> web.Response:
    """Tickets, attendees who came, median minutes, peak concurrent, shared-link tickets."""
    organizer = await authenticate(request)
    webinar_id = parse_id(request.match_info["id"])
    async with request.app[SESSIONMAKER]() as session:
        figures = await summary(session, organizer, webinar_id, request.app[SETTINGS])
    return json_response(dataclasses.asdict(figures))
