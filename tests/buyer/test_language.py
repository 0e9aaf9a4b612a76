"""A webinar's language: set through the API, used by its buyer pages, complete in every catalog."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import ticketing
from tests import factories
from tests.web.test_api import auth
from ticketing import i18n

LOCALE = Path(ticketing.__file__).parent / "locale"


async def test_language_defaults_to_english_and_can_be_german(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker)
    response = await client.post("/api/webinars", headers=auth(key), json=factories.webinar_input())
    assert response.status == 201
    created = await response.json()
    assert created["language"] == "en"
    response = await client.patch(f"/api/webinars/{created['id']}", headers=auth(key), json={"language": "de"})
    assert response.status == 200 and (await response.json())["language"] == "de"
    response = await client.post("/api/webinars", headers=auth(key), json=factories.webinar_input(language="de"))
    assert response.status == 201 and (await response.json())["language"] == "de"


@pytest.mark.parametrize("language", ["fr", "", "EN-us", 7, None, ["de"]])
async def test_an_unsupported_language_is_refused_and_changes_nothing(client, sessionmaker, language):
    _, key = await factories.organizer(sessionmaker)
    response = await client.post("/api/webinars", headers=auth(key), json=factories.webinar_input(language=language))
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["field"] == "language" and "en, de" in error["message"]
    response = await client.get("/api/webinars", headers=auth(key))
    assert (await response.json())["webinars"] == []


async def test_a_german_webinar_page_is_german_whatever_the_browser_says(client, sessionmaker):
    starts = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)
    webinar = await factories.webinar(sessionmaker, language="de", timezone="Europe/Berlin",
                                      starts_at=starts.isoformat(), ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    response = await client.get(f"/w/{webinar.id}", headers={"Accept-Language": "en-US,en;q=0.9"})
    page = await response.text()
    assert '<html lang="de">' in page
    assert "Donnerstag, 31. Januar 2030, 18:00–19:00" in page and "(Europe/Berlin)" in page
    assert "25,00\xa0€" in page and "Freie Plätze" in page and "Kaufen" in page
    assert '"de-DE"' in page  # the script writes the viewer's time in German too


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_every_catalog_is_complete_and_compiled(language):
    template = read_po(BytesIO((LOCALE / "messages.pot").read_bytes()))
    catalog = read_po(BytesIO((LOCALE / language / "LC_MESSAGES" / "messages.po").read_bytes()))
    wanted = {m.id for m in template if m.id}
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert wanted - translated == set()
    # The compiled catalog is what runs: it exists and speaks the language.
    assert (LOCALE / language / "LC_MESSAGES" / "messages.mo").is_file()
    sample = "Your order for %(title)s"
    expected = {"en": sample, "de": "Ihre Bestellung für %(title)s"}[language]
    assert i18n.translations(language).gettext(sample) == expected


def test_the_catalog_template_matches_the_source(tmp_path):
    """Every translatable text in code and templates is in the template the catalogs follow."""
    root = Path(ticketing.__file__).parent.parent
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "N_",
                    "--no-location", "--sort-output", "-o", str(tmp_path / "fresh.pot"), "."],
                   cwd=root, capture_output=True, check=True)
    extracted = {m.id for m in read_po(BytesIO((tmp_path / "fresh.pot").read_bytes())) if m.id}
    stored = {m.id for m in read_po(BytesIO((LOCALE / "messages.pot").read_bytes())) if m.id}
    assert extracted == stored


# Words German shares with English; every other message must read differently in German.
SAME_IN_GERMAN = {"Webinar"}


def test_every_german_message_is_german_not_the_english_text():
    """Every text of a buyer page or mail (all of the catalog) has a German translation that
    is not the English source, as the compiled catalog serves it."""
    template = read_po(BytesIO((LOCALE / "messages.pot").read_bytes()))
    german = i18n.translations("de")
    copies = []
    for message in template:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            singular, plural = message.id
            translated = (german.ngettext(singular, plural, 1), german.ngettext(singular, plural, 2))
            if translated in ((singular, plural), (singular, singular), (plural, plural)):
                copies.append(singular)
        elif message.id not in SAME_IN_GERMAN and german.gettext(message.id) == message.id:
            copies.append(message.id)
    assert copies == []
    # The allowed list names only texts that exist and really are the same.
    assert all(german.gettext(text) == text for text in SAME_IN_GERMAN)
    assert SAME_IN_GERMAN <= {m.id for m in template if isinstance(m.id, str)}
