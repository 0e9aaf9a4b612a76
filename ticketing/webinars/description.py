"""A webinar's description: Markdown as the organizer writes it, HTML as buyers may safely see it.

markdown-it-py parses CommonMark; raw HTML in it is recognised and dropped (neither run nor
shown as literal tags), and nh3 then keeps only the tags a description needs (paragraphs,
links, lists, emphasis, headings, quotes, code) and only http(s) and mailto links, so no script
or handler gets through.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

# HTML parsing is on only so that raw HTML arrives as tokens of its own, which are dropped.
_MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
RAW_HTML = {"html_block", "html_inline"}
ALLOWED_TAGS = {"p", "br", "a", "ul", "ol", "li", "em", "strong", "h1", "h2", "h3", "h4", "h5", "h6",
                "blockquote", "code", "pre", "hr"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}


def description_text(text: str) -> str:
    """The Markdown as written, less the raw HTML that `description_html` drops, for plain-text mails."""
    lines = (text or "").splitlines(keepends=True)
    dropped: set[int] = set()
    for token in _MARKDOWN.parse(text or ""):
        if token.type in RAW_HTML and token.map:
            dropped.update(range(*token.map))
        elif token.children and token.map and any(c.type in RAW_HTML for c in token.children):
            start, end = token.map
            block = "".join(lines[start:end])
            kept, at = [], 0
            for child in token.children:
                if child.type in RAW_HTML and (found := block.find(child.content, at)) >= 0:
                    kept.append(block[at:found])
                    at = found + len(child.content)
            lines[start:end] = ["".join(kept) + block[at:]] + [""] * (end - start - 1)
    return "".join(line for number, line in enumerate(lines) if number not in dropped)


def description_html(text: str) -> Markup:
    """The description rendered and sanitised; safe to put in a page as it is."""
    tokens = [t for t in _MARKDOWN.parse(text or "") if t.type not in RAW_HTML]
    for token in tokens:
        if token.children:
            token.children = [c for c in token.children if c.type not in RAW_HTML]
        # The page's own title is the one <h1>: the description's headings sit below it.
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                      url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener noreferrer")
    return Markup(clean)
