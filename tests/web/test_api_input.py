"""Input to the organizer API that once answered 500, found by fuzzing the API and probing
its input checks: each now gets the right 4xx and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests import factories
from ticketing.db.models import Webinar


@pytest.fixture
async def key(sessionmaker) -> str:
    _, api_key = await factories.organizer(sessionmaker)
    return api_key


async def _assert_invalid(response, field: str) -> None:
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], error.get("field")) == ("invalid", field)
    assert "Traceback" not in error["message"]


# The time zone database has folders ("America", "Etc"): opening one as a zone is an OSError,
# not the ZoneInfoNotFoundError a missing name gives.
@pytest.mark.parametrize("name", ["America", "Etc", "America/Argentina"])
async def test_a_time_zone_folder_is_an_unknown_time_zone(client, key, sessionmaker, name):
    headers = {"Authorization": f"Bearer {key}"}
    created = await client.post("/api/webinars", json=factories.webinar_input(timezone=name), headers=headers)
    await _assert_invalid(created, "timezone")
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Webinar)) == 0

    webinar = await (await client.post("/api/webinars", json=factories.webinar_input(timezone="Europe/Berlin"),
                                       headers=headers)).json()
    patched = await client.patch(f"/api/webinars/{webinar['id']}", json={"timezone": name}, headers=headers)
    await _assert_invalid(patched, "timezone")
    got = await (await client.get(f"/api/webinars/{webinar['id']}", headers=headers)).json()
    assert got["timezone"] == "Europe/Berlin"
