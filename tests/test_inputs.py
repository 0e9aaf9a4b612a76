"""The input checks every entry point shares: email addresses and control characters."""

import pytest

from ticketing.errors import Invalid
from ticketing.inputs import email_address, has_control, plain


@pytest.mark.parametrize("value", ["bea@example.com", " bea@example.com ", "b.e+a@mail.example.co.uk"])
def test_plain_addresses_pass(value):
    assert email_address(value) == value.strip()


@pytest.mark.parametrize(("value", "stored"), [
    ("Bea@Example.COM", "Bea@example.com"),
    ("bea@bücher.example", "bea@xn--bcher-kva.example"),
    ("bea@XN--BCHER-KVA.example", "bea@xn--bcher-kva.example"),
])
def test_what_is_stored_is_the_normalised_address_that_is_mailed(value, stored):
    assert email_address(value) == stored


@pytest.mark.parametrize("value", ["a,b@example.com", "g;h@example.com", '"@example.com', "<c@example.com>",
                                   "e(f)@example.com", '"quoted"@example.com', "Bea <bea@example.com>",
                                   "zoë@example.com", "bea@localhost", "bea@example.com.", "bea@[127.0.0.1]",
                                   "a,b@x", "g;h@x", '"@x', "<c@x>"])
def test_what_the_mail_composer_would_refuse_is_refused(value):
    with pytest.raises(Invalid, match="not an email address") as refused:
        email_address(value)
    assert refused.value.field == "email"


@pytest.mark.parametrize("value", ["bea", "@example.com", "bea@", "bea@.", "b ea@example.com",
                                   "bea@exa mple.com", "a\x00@b.com", "bea@example.com\r\nBcc: x@y.z",
                                   "a@b@c.com", "x" * 320 + "@example.com"])
def test_anything_else_is_invalid_and_says_what(value):
    with pytest.raises(Invalid, match="not an email address"):
        email_address(value)


def test_control_characters_are_found_and_dropped():
    assert has_control("nul\x00byte") and has_control("line\nbreak")
    assert not has_control("line\nbreak", allow_newlines=True) and not has_control("Zoë café")
    assert plain("Bea\x00 \x1bBuyer\n") == "Bea Buyer"
