"""A few SMTP connections kept open and shared by the mails of one process.

A new connection per mail costs a TCP (and maybe TLS) handshake, EHLO and AUTH, more than
the mail itself when many go out at once. The pool keeps up to `size` sessions open (the
server's patience for parallel sessions is limited, so this is small), sends at most
`max_messages` mails over one session before it says QUIT (many servers limit that), and
greets with this host's name, read once (no name lookup per connection).

A session that the server closed while it was idle (or that answered 421, "closing") is
dropped; the mail is tried once more on a fresh one, since an idle session that died had not
taken it. Any other failure closes the session too and goes to the caller, which sorts
permanent from temporary failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref

import aiosmtplib

from ticketing.mail.message import Mail

logger = logging.getLogger(__name__)

POOL_SIZE = 4
MAX_MESSAGES_PER_SESSION = 100
LOCAL_HOSTNAME = socket.gethostname() or "localhost"


class SmtpPool:
    """Sessions to one SMTP server, for one event loop."""

    def __init__(self, *, hostname: str, port: int, username: str | None, password: str | None, use_tls: bool,
                 start_tls: bool | None, timeout: float, size: int = POOL_SIZE,
                 max_messages: int = MAX_MESSAGES_PER_SESSION) -> None:
        self.options = {"hostname": hostname, "port": port, "username": username, "password": password,
                        "use_tls": use_tls, "start_tls": start_tls, "timeout": timeout,
                        "local_hostname": LOCAL_HOSTNAME}
        self.max_messages = max_messages
        self._idle: list[tuple[aiosmtplib.SMTP, int]] = []
        self._slots = asyncio.Semaphore(size)

    async def send(self, message: Mail) -> None:
        """Send `message` over a pooled session; aiosmtplib's errors propagate."""
        async with self._slots:
            client, sent = self._idle.pop() if self._idle else (None, 0)
            reused = client is not None
            if client is None:
                client = await self._connect()
            try:
                await _send(client, message)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError) as error:
                await _close(client)
                if not reused:
                    raise
                logger.debug("pooled SMTP session was gone; reconnecting", extra={"error": type(error).__name__})
                client, sent = await self._connect(), 0
                try:
                    await _send(client, message)
                except BaseException:
                    await _close(client)
                    raise
            except aiosmtplib.SMTPResponseException as error:
                # The server refused this mail (or is closing: 421); the session is not trusted further.
                await _close(client)
                raise error
            except BaseException:
                await _close(client)
                raise
            sent += 1
            if sent >= self.max_messages:
                await _quit(client)
            else:
                self._idle.append((client, sent))

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(**self.options)
        await client.connect()
        return client

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client, _ in idle:
            await _quit(client)


async def _send(client: aiosmtplib.SMTP, message: Mail) -> None:
    await client.sendmail(message.sender, [message.recipient], message.as_bytes())


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        await client.quit()
    client.close()


async def _close(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        client.close()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, SmtpPool]] = weakref.WeakKeyDictionary()


def pool_for(**options) -> SmtpPool:
    """The pool of this event loop for one server and set of credentials."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    key = tuple(sorted(options.items()))
    pool = pools.get(key)
    if pool is None:
        pool = pools[key] = SmtpPool(**options)
    return pool
