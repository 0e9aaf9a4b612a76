"""errors.Text: the service's English message, as the API answers it, that the console can say
again in German from its catalog template and values."""

from __future__ import annotations

import json
import pickle

from ticketing.errors import Invalid, Text
from ticketing.web.org.forms import in_form_words


def test_a_text_is_its_english_string_everywhere_but_keeps_its_template():
    text = Text("%(name)s must be at most %(limit)d characters", name="title", limit=200)
    assert text == "title must be at most 200 characters" and isinstance(text, str)
    assert json.dumps({"message": text}) == '{"message": "title must be at most 200 characters"}'
    assert Invalid(text, field="title").message.params == {"name": "title", "limit": 200}
    again = pickle.loads(pickle.dumps(text))
    assert (again, again.template, again.params) == (text, text.template, text.params)


def test_the_console_says_a_text_in_its_language_with_the_forms_labels():
    text = Text("%(name)s must be at most %(limit)d characters", name="title", limit=200)
    assert in_form_words(text) == "Title must be at most 200 characters."
    assert in_form_words(text, "de") == "Der Titel darf höchstens 200 Zeichen lang sein."
    gone = Text("this ticket is %(state)s; it cannot be sent again", state="revoked")
    assert in_form_words(gone, "de") == "Dieses Ticket ist widerrufen; es kann nicht erneut gesendet werden."
    # A message the catalog does not know stays as it is, as a sentence.
    assert in_form_words("something else entirely", "de") == "Something else entirely."


def test_a_counted_text_takes_the_plural_its_count_needs_in_either_language():
    for n, english, german in ((1, "choose 1 seat", "Wählen Sie 1 Platz."), (2, "choose 2 seats", "Wählen Sie 2 Plätze.")):
        text = Text.ngettext("choose %(num)d seat", "choose %(num)d seats", n, num=n)
        assert text == english and in_form_words(text, "de") == german
