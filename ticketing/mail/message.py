"""A mail as the bytes that go on the wire, written directly.

The stdlib's `EmailMessage` parses every header it is given back into objects through its
policy and flattens the whole tree again when sending; for a mail whose shape is always the
same (a text and an HTML part, maybe one attachment) that costs more than everything else the
worker does for it. Here the headers are encoded once by `email.utils` and `email.header`
and the parts are written with `binascii`, so what goes out is still standard MIME (RFC 2045
to 2047), only without parsing it all back first.

Header values never contain a line break from user data: callers pass text through
`compose.one_line` and addresses through `compose.recipient`.
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import secrets
from email.header import Header
from email.headerregistry import Address
from email.utils import format_datetime, formataddr, parseaddr

# RFC 5322 allows 998 characters on a line; the parts written as they are stay well below.
_PLAIN_LINE_LIMIT = 900


@dataclasses.dataclass(frozen=True)
class Attachment:
    content: bytes
    content_type: str  # with its parameters, e.g. 'text/calendar; method="REQUEST"; charset="utf-8"'
    filename: str


@dataclasses.dataclass(frozen=True)
class Mail:
    """A composed mail: the envelope and the message bytes."""

    sender: str
    recipient: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def get(self, name: str, default: str | None = None) -> str | None:
        """A header's value as written (encoded words stay encoded)."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), default)

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def as_bytes(self) -> bytes:
        head = "".join(f"{name}: {value}\r\n" for name, value in self.headers)
        return head.encode("ascii") + b"\r\n" + self.body


def wire_address(addr_spec: str) -> str:
    """The address as SMTP and headers carry it: an internationalised domain in its ASCII
    (IDNA) form. Raises UnicodeError for a domain that has none."""
    local, _, domain = addr_spec.rpartition("@")
    return addr_spec if domain.isascii() else f"{local}@{domain.encode('idna').decode('ascii')}"


def address(value: Address) -> str:
    """`Name <local@domain>` with the name quoted or encoded as needed."""
    return formataddr((value.display_name, wire_address(value.addr_spec)), charset="utf-8")


def sender_header(mail_from: str) -> str:
    """TICKETING_MAIL_FROM as a From header value."""
    name, addr = parseaddr(mail_from)
    return formataddr((name, addr), charset="utf-8") if addr else mail_from


def text_header(name: str, value: str) -> str:
    """An unstructured header (a subject): as it is when short and ASCII, else folded and, for
    non-ASCII text, as RFC 2047 encoded words."""
    if value.isascii() and len(name) + len(value) < 76:
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name=name).encode(linesep="\r\n")


def _text_part(content_type: str, text: str) -> bytes:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and max(map(len, text.split("\n"))) <= _PLAIN_LINE_LIMIT:
        encoding, data = "7bit", text.encode("ascii")
    else:
        # Encoded with bare LFs, which binascii turns into its hard and soft line breaks alike;
        # the wire's CRLFs come after.
        encoding, data = "quoted-printable", binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return (f"Content-Type: {content_type}; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode("ascii") + data.replace(b"\n", b"\r\n")


def _attachment_part(attachment: Attachment) -> bytes:
    content = attachment.content
    encoded = b"".join(binascii.b2a_base64(content[i:i + 57], newline=False) + b"\r\n"
                       for i in range(0, len(content), 57))
    return (f"Content-Type: {attachment.content_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"{attachment.filename}\"\r\n\r\n").encode("ascii") + encoded


def _multipart(subtype: str, parts: list[bytes]) -> tuple[str, bytes]:
    # Random, and in a shape ("=_" then hex) that neither quoted-printable nor base64 output
    # can contain; only a 7bit part could, and the chance is 16^-32.
    boundary = f"=_{secrets.token_hex(16)}"
    # The CRLF before each delimiter belongs to the delimiter, not to the part before it.
    body = b"".join(f"--{boundary}\r\n".encode("ascii") + part + b"\r\n" for part in parts)
    return f'multipart/{subtype};\r\n boundary="{boundary}"', body + f"--{boundary}--\r\n".encode("ascii")


def mail(*, sender: str, from_header: str, to: Address, subject: str, date: dt.datetime, message_id: str,
         text: str, html: str, extra_headers: tuple[tuple[str, str], ...] = (),
         attachment: Attachment | None = None) -> Mail:
    """A text and an HTML alternative, and `attachment` beside them when there is one."""
    content_type, body = _multipart("alternative", [_text_part("text/plain", text), _text_part("text/html", html)])
    if attachment is not None:
        inner = f"Content-Type: {content_type}\r\n\r\n".encode("ascii") + body
        content_type, body = _multipart("mixed", [inner, _attachment_part(attachment)])
    headers = (
        ("From", from_header),
        ("To", address(to)),
        *extra_headers,
        ("Subject", text_header("Subject", subject)),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("Content-Type", content_type),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
    )
    return Mail(sender=sender, recipient=wire_address(to.addr_spec), headers=headers, body=body)
