"""Mails assembled as the bytes that go on the wire, for the mails a flash sale sends by the thousand.

Building an `EmailMessage` part by part parses every header the content manager sets, and
sending it flattens it again: several milliseconds of CPU per mail, more than the rest of a
purchase. Here the parts are joined as text (quoted-printable bodies, a base64 attachment,
headers encoded by the standard library only when they are not short plain ASCII) and the
result is an `EmailMessage` that holds those bytes: the mailer sends them as they are, and
the object model is built from them (parsed) only when somebody looks inside.
"""

from __future__ import annotations

import base64
import functools
import quopri
import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP, default

_MAX_LINE = 78


class WireMessage(EmailMessage):
    """An `EmailMessage` born as finished SMTP bytes (CRLF line ends, 7-bit).

    Its state is parsed from the bytes on first use of anything but `unread_wire`, after
    which it is an ordinary `EmailMessage` (and is sent by flattening it, in case it changed).
    """

    def __init__(self, data: bytes, sender: str, recipients: list[str]) -> None:  # noqa: D107
        # EmailMessage.__init__ is not called: the state comes from parsing `data` when needed.
        self.__dict__["_wire"] = (data, sender, recipients)

    def __getattr__(self, name: str):
        state = self.__dict__
        if name.startswith("__") or "_headers" in state or "_wire" not in state:
            raise AttributeError(name)
        state.update(BytesParser(policy=default).parsebytes(state["_wire"][0]).__dict__)
        return getattr(self, name)

    def unread_wire(self) -> tuple[bytes, str, list[str]] | None:
        """(bytes, envelope sender, envelope recipients) while nobody has opened the message."""
        return None if "_headers" in self.__dict__ else self.__dict__["_wire"]


def header(name: str, value: str) -> str:
    """One header line (folded, RFC 2047 where needed), CRLF-terminated."""
    if value.isascii() and "\r" not in value and "\n" not in value and len(name) + len(value) + 2 <= _MAX_LINE:
        return f"{name}: {value}\r\n"
    return SMTP.header_factory(name, value).fold(policy=SMTP)


@functools.lru_cache(maxsize=16)
def cached_header(name: str, value: str) -> str:
    """`header()` for values that are the same in every mail (the sender)."""
    return header(name, value)


def _text(body: str) -> str:
    data = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return quopri.encodestring(data).decode("ascii").replace("\n", "\r\n")


def _base64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")


def build(*, from_: str, sender: str, to: Address, headers: list[tuple[str, str]], text: str, html: str,
          attachment: tuple[bytes, str, str] | None = None) -> WireMessage:
    """A text and HTML alternative, with an optional attachment (data, content type with its
    parameters, file name), under the given headers after From and To."""
    inner = f"==alt{secrets.token_hex(12)}"
    lines = [cached_header("From", from_), header("To", str(to))]
    lines += [header(name, value) for name, value in headers]
    lines.append("MIME-Version: 1.0\r\n")
    alternative = [
        f'Content-Type: multipart/alternative; boundary="{inner}"\r\n\r\n',
        f"--{inner}\r\n", 'Content-Type: text/plain; charset="utf-8"\r\n',
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n", _text(text), "\r\n",
        f"--{inner}\r\n", 'Content-Type: text/html; charset="utf-8"\r\n',
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n", _text(html), "\r\n",
        f"--{inner}--\r\n",
    ]
    if attachment is None:
        lines += alternative
    else:
        outer = f"==mix{secrets.token_hex(12)}"
        data, content_type, filename = attachment
        lines += [f'Content-Type: multipart/mixed; boundary="{outer}"\r\n\r\n', f"--{outer}\r\n", *alternative,
                  "\r\n", f"--{outer}\r\n", f"Content-Type: {content_type}\r\n",
                  "Content-Transfer-Encoding: base64\r\n",
                  f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n', _base64(data),
                  f"--{outer}--\r\n"]
    return WireMessage("".join(lines).encode("ascii"), sender, [to.addr_spec])
