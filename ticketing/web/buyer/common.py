"""What every buyer page shares: its webinar's language and its organizer (footer, contact)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing import i18n
from ticketing.db.models import Organizer, Webinar
from ticketing.web.responses import render


async def organizer_of(session: AsyncSession, webinar: Webinar) -> Organizer:
    return await session.get(Organizer, webinar.organizer_id)


def render_page(request: web.Request, template: str, context: dict[str, Any], *, webinar: Webinar,
                organizer: Organizer | None, status: int = 200) -> web.Response:
    """A buyer page in the webinar's language, with the organizer's name and contact in its footer."""
    page = {**i18n.gettext_context(webinar.language), "webinar": webinar, "organizer": organizer, **context}
    return render(request, template, page, status=status)
