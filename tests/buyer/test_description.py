"""A webinar's description: Markdown becomes structure, and nothing in it becomes script."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests import factories
from ticketing.webinars.description import description_html, description_text

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<a href=\"https://ok.example\" onclick=\"alert(1)\">x</a>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<svg onload=alert(1)>",
    "![x](https://evil.example/x.png\" onerror=\"alert(1))",
    "<style>body{display:none}</style>",
    "[x](https://ok.example \"title\" onmouseover=alert(1))",
]


def test_markdown_gives_paragraphs_links_lists_emphasis_and_headings():
    html = description_html("# Agenda\n\nFirst *this*, then **that**.\n\n- one\n- two\n\n1. a\n2. b\n\n"
                            "See [our site](https://widgets.example).")
    assert "<h2>Agenda</h2>" in html  # below the page's own <h1>
    assert "<p>First <em>this</em>, then <strong>that</strong>.</p>" in html
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html and "<ol>" in html
    assert '<a href="https://widgets.example" rel="nofollow noopener noreferrer">our site</a>' in html


class Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML (escaped text is text)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_markup_in_a_description_runs(attack):
    html = description_html(f"Hello\n\n{attack}\n\nbye")
    for tag, attrs in elements(html):
        assert tag in {"p", "a", "em", "strong", "ul", "ol", "li", "h2", "h3", "code", "pre", "blockquote"}, html
        assert not any(name.startswith("on") or name in ("style", "src") for name in attrs), html
        if tag == "a":
            assert (attrs.get("href") or "").startswith(("https://", "http://", "mailto:")), html
    assert "Hello" in html and "bye" in html


async def test_the_webinar_page_shows_the_description_safely(client, sessionmaker):
    webinar = await factories.webinar(
        sessionmaker, description="Welcome!\n\n<script>window.pwned = 1</script>\n\n[x](javascript:alert(1))\n\n- *a*")
    page = await (await client.get(f"/w/{webinar.id}")).text()
    assert "<p>Welcome!</p>" in page and "<li><em>a</em></li>" in page
    # Raw HTML is dropped, neither run nor shown as literal text.
    assert "window.pwned" not in page and "&lt;script" not in page
    assert "javascript:alert" not in page.replace("[x](javascript:alert(1))", "")


@pytest.mark.parametrize("raw", ["<script>alert(1)</script>", "<div onclick=\"x()\">Block</div>", "<style>p{}</style>"])
def test_raw_html_is_dropped_not_shown_as_text(raw):
    html = description_html(f"Before\n\n{raw}\n\nAfter with <b>inline</b> tags and a <br> break.")
    assert "<p>Before</p>" in html and "<p>After with inline tags and a  break.</p>" in html
    assert "&lt;" not in html and "alert" not in html and "onclick" not in html and "p{}" not in html


def test_the_plain_text_keeps_the_markdown_and_drops_the_raw_html():
    text = description_text("Slides [here](https://x.example).\n\nWith <b>bold</b> words and a <br> break\n\n"
                            "<script>alert(1)</script>\n\n<div onclick=\"x()\">\nBlock\n</div>\n\n- *one*")
    assert text == "Slides [here](https://x.example).\n\nWith bold words and a  break\n\n\n\n- *one*"
    assert description_text("") == "" and description_text("no markup") == "no markup"
