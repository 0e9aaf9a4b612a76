"""The floor: the same durable work per webhook and per join written as plainly as it can be,
aiohttp with asyncpg (PostgreSQL) or aiosqlite (SQLite), no ORM, no middleware, over the
service's own (migrated) schema. The benchmarks run it beside `ticketing serve`, with the same
client in the same run, and print the service's figures as a ratio to it.

Per webhook: check the Stripe signature (HMAC-SHA256 of `t.body`), parse the JSON, make the
order page code, its X25519 page key and one join code per seat sealed to that key (the
service's `ticketing.tickets.sealing`, the same crypto), and in one transaction insert the order
with its page code hash and key (ON CONFLICT on the session), its tickets, its jobs (one
`mail.order` carrying the order code, and the reminders: a one-seat order's ticket reminders,
else the order's), the event (ON CONFLICT on its id), and take the seat with the conditional
UPDATE (scheduled, not over, sales not closed, capacity) last. The order's page columns go in
with the order: the floor has no pending order to update, the service's fast path does.
Per join: one `UPDATE … FROM webinars … RETURNING` that checks the ticket and the window and
counts the join, then an HS256 token and a 302.

    python -m bench.floor --port 8099 --database-url postgresql://… --webhook-secret whsec_… --jitsi-secret …
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid

import jwt
from aiohttp import web

from ticketing.tickets import sealing

EARLY, GRACE = dt.timedelta(minutes=15), dt.timedelta(minutes=30)
REMINDERS = (("24h", dt.timedelta(hours=24)), ("15m", dt.timedelta(minutes=15)))
MAIL_ATTEMPTS = 16


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _verified(body: bytes, header: str, secret: str) -> dict | None:
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    expected = hmac.new(secret.encode(), parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        return None
    return json.loads(body)


class Postgres:
    ORDER = ("INSERT INTO orders (id, webinar_id, stripe_session_id, stripe_payment_intent_id, email, buyer_name,"
             " quantity, expected_amount, amount_total, currency, amount_refunded, status, completed_at, paid_at,"
             " livemode, created_at, updated_at, code_hash, page_key)"
             " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,0,'paid',$15,$15,$12,$11,$11,$13,$14)"
             " ON CONFLICT (stripe_session_id) DO NOTHING RETURNING id")
    TICKET = ("INSERT INTO tickets (id, order_id, webinar_id, seq, email, name, code_hash, status, join_count, created_at,"
              " assigned_at, code_sealed, ticket_type_id) VALUES ($1,$2,$3,$4,$5,$6,$7,'valid',0,$8,$9,$10,$11)")
    JOB = ("INSERT INTO jobs (kind, payload, status, due_at, attempts, max_attempts, dedupe_key, created_at)"
           " VALUES ($1,$2::json,'queued',$3,0,$4,$5,$6) ON CONFLICT (dedupe_key) DO NOTHING")
    EVENT = ("INSERT INTO stripe_events (id, type, api_version, livemode, created, payload, checkout_session_id,"
             " payment_intent_id, received_at, processed_at, outcome) VALUES ($1,$2,$3,$4,$5,$6::json,$7,$8,$9,$9,'order_paid')"
             " ON CONFLICT (id) DO NOTHING RETURNING id")
    SEATS = ("UPDATE webinars SET seats_taken = seats_taken + $2 WHERE id = $1 AND status = 'scheduled' AND ends_at > $3"
             " AND coalesce(sales_end, ends_at) > $4 AND (capacity IS NULL OR seats_taken + $2 <= capacity) RETURNING id")
    JOIN = ("UPDATE tickets SET join_count = tickets.join_count + 1,"
            " first_joined_at = coalesce(tickets.first_joined_at, $2), last_joined_at = $2"
            " FROM webinars WHERE tickets.code_hash = $1 AND webinars.id = tickets.webinar_id"
            " AND tickets.status = 'valid' AND webinars.status = 'scheduled'"
            " AND webinars.starts_at <= $3 AND webinars.ends_at >= $4"
            " RETURNING tickets.id, tickets.name, tickets.email, webinars.room, webinars.starts_at, webinars.ends_at")

    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.url, min_size=10, max_size=10)

    async def stop(self) -> None:
        await self.pool.close()

    async def webinar(self, webinar_id: uuid.UUID) -> tuple:
        return await self.pool.fetchrow(
            "SELECT webinars.price_amount, currency, starts_at, sequence, ticket_types.id FROM webinars JOIN ticket_types"
            " ON ticket_types.webinar_id = webinars.id AND ticket_types.is_default WHERE webinars.id = $1", webinar_id)

    async def purchase(self, work: dict) -> bool:
        async with self.pool.acquire() as connection, connection.transaction():
            if await connection.fetchval(self.ORDER, *work["order"]) is None:
                return False
            await connection.executemany(self.TICKET, work["tickets"])
            await connection.executemany(self.JOB, work["jobs"])
            if await connection.fetchval(self.EVENT, *work["event"]) is None:
                raise RuntimeError("duplicate")
            if await connection.fetchval(self.SEATS, *work["seats"]) is None:
                raise RuntimeError("sold out")
        return True

    async def join(self, code_hash: str, now: dt.datetime):
        return await self.pool.fetchrow(self.JOIN, code_hash, now, now + EARLY, now - GRACE)


class Sqlite:
    """One connection, BEGIN IMMEDIATE per purchase, the values as SQLAlchemy stores them."""

    def __init__(self, path: str) -> None:
        self.path = path

    @staticmethod
    def _value(value):
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(value, bool):
            return int(value)
        return value

    def _params(self, values) -> tuple:
        return tuple(self._value(v) for v in values)

    async def start(self) -> None:
        import asyncio

        import aiosqlite

        self.db = await aiosqlite.connect(self.path, isolation_level=None)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute("PRAGMA busy_timeout=15000")
        self.lock = asyncio.Lock()

    async def stop(self) -> None:
        await self.db.close()

    async def webinar(self, webinar_id: uuid.UUID) -> tuple:
        async with self.db.execute(
                "SELECT webinars.price_amount, currency, starts_at, sequence, ticket_types.id FROM webinars JOIN ticket_types"
                " ON ticket_types.webinar_id = webinars.id AND ticket_types.is_default WHERE webinars.id = ?",
                (webinar_id.hex,)) as cursor:
            price, currency, starts, sequence, type_id = await cursor.fetchone()
        return (price, currency, dt.datetime.fromisoformat(starts).replace(tzinfo=dt.UTC), sequence,
                uuid.UUID(type_id))

    async def purchase(self, work: dict) -> bool:
        sql = {k: v.replace("$", "?") for k, v in vars(Postgres).items() if k.isupper()}
        async with self.lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                # `$n` becomes SQLite's numbered `?n`, so one statement text serves both.
                async with self.db.execute(sql["ORDER"], self._params(work["order"])) as cursor:
                    if await cursor.fetchone() is None:
                        await self.db.execute("ROLLBACK")
                        return False
                await self.db.executemany(sql["TICKET"], [self._params(t) for t in work["tickets"]])
                await self.db.executemany(sql["JOB"].replace("::json", ""), [self._params(j) for j in work["jobs"]])
                async with self.db.execute(sql["EVENT"].replace("::json", ""), self._params(work["event"])) as cursor:
                    if await cursor.fetchone() is None:
                        raise RuntimeError("duplicate")
                async with self.db.execute(sql["SEATS"], self._params(work["seats"])) as cursor:
                    if await cursor.fetchone() is None:
                        raise RuntimeError("sold out")
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
        return True

    # SQLite's RETURNING sees only the updated table: the window is checked in a subquery and
    # the room and times come from the webinar, read once.
    JOIN = ("UPDATE tickets SET join_count = join_count + 1, first_joined_at = coalesce(first_joined_at, ?2),"
            " last_joined_at = ?2 WHERE code_hash = ?1 AND status = 'valid' AND EXISTS (SELECT 1 FROM webinars"
            " WHERE webinars.id = tickets.webinar_id AND webinars.status = 'scheduled' AND webinars.starts_at <= ?3"
            " AND webinars.ends_at >= ?4) RETURNING id, name, email, webinar_id")

    async def join(self, code_hash: str, now: dt.datetime):
        async with self.db.execute(self.JOIN, self._params((code_hash, now, now + EARLY, now - GRACE))) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        webinars = self.__dict__.setdefault("webinars", {})
        if row[3] not in webinars:
            async with self.db.execute("SELECT room, starts_at, ends_at FROM webinars WHERE id = ?", (row[3],)) as cursor:
                room, starts, ends = await cursor.fetchone()
            webinars[row[3]] = (room, dt.datetime.fromisoformat(starts).replace(tzinfo=dt.UTC),
                                dt.datetime.fromisoformat(ends).replace(tzinfo=dt.UTC))
        room, starts, ends = webinars[row[3]]
        return {"id": uuid.UUID(row[0]), "name": row[1], "email": row[2], "room": room, "starts_at": starts,
                "ends_at": ends}


def create_app(database, webhook_secret: str, jitsi_secret: str) -> web.Application:
    prices: dict[uuid.UUID, tuple] = {}

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        event = _verified(body, request.headers.get("Stripe-Signature", ""), webhook_secret)
        if event is None:
            return web.json_response({"error": "bad signature"}, status=400)
        obj = event["data"]["object"]
        webinar_id = uuid.UUID(obj["metadata"]["webinar_id"])
        if webinar_id not in prices:
            prices[webinar_id] = tuple(await database.webinar(webinar_id))
        price, currency, starts_at, sequence, type_id = prices[webinar_id]
        quantity = int(obj["metadata"]["quantity"])
        now = dt.datetime.now(dt.UTC)
        # The checkout completed at Stripe's event time, never later than now; the sales end is held against it.
        paid_at = min(dt.datetime.fromtimestamp(event["created"], dt.UTC), now)
        order_id = uuid.uuid4()
        email = obj["customer_details"]["email"]
        order_code = secrets.token_urlsafe(32)
        page_key = sealing.public_key(sealing.page_private_key(order_code))
        tickets, codes = [], []
        for seq in range(quantity):
            code = secrets.token_urlsafe(32)
            tickets.append((uuid.uuid4(), order_id, webinar_id, seq, email, "", _hash(code), now,
                            now if quantity == 1 else None, sealing.seal(page_key, code), type_id))
            codes.append(code)
        jobs = [("mail.order", json.dumps({"order_id": str(order_id), "code": order_code}), now, MAIL_ATTEMPTS,
                 f"mail.order:{order_id}", now)]
        for which, before in REMINDERS:
            if starts_at - before <= now:
                continue
            if quantity == 1:
                ticket_id = tickets[0][0]
                jobs.append(("mail.reminder", json.dumps({"ticket_id": str(ticket_id), "code": codes[0], "which": which,
                                                          "sequence": sequence}),
                             starts_at - before, MAIL_ATTEMPTS, f"mail.reminder:{ticket_id}:{sequence}:{which}", now))
            else:
                jobs.append(("mail.order_reminder", json.dumps({"order_id": str(order_id), "which": which,
                                                                "sequence": sequence}),
                             starts_at - before, MAIL_ATTEMPTS, f"mail.order_reminder:{order_id}:{sequence}:{which}",
                             now))
        work = {
            "order": (order_id, webinar_id, obj["id"], obj["payment_intent"], email, None, quantity, price * quantity,
                      obj["amount_total"], obj["currency"], now, obj["livemode"], _hash(order_code), page_key, paid_at),
            "tickets": tickets,
            "jobs": jobs,
            "event": (event["id"], event["type"], event["api_version"], event["livemode"],
                      dt.datetime.fromtimestamp(event["created"], dt.UTC), body.decode(), obj["id"],
                      obj["payment_intent"], now),
            "seats": (webinar_id, quantity, now, paid_at),
        }
        done = await database.purchase(work)
        return web.json_response({"received": True, "outcome": "order_paid" if done else "duplicate"})

    async def join(request: web.Request) -> web.Response:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        row = await database.join(_hash(request.match_info["code"]), now)
        if row is None:
            raise web.HTTPNotFound()
        claims = {"iss": "ticketing", "aud": "jitsi", "sub": "meet.example.org", "room": row["room"],
                  "iat": int(now.timestamp()), "nbf": int((row["starts_at"] - EARLY).timestamp()) - 60,
                  "exp": int((row["ends_at"] + GRACE).timestamp()),
                  "context": {"user": {"id": str(row["id"]), "name": row["name"], "email": row["email"],
                                       "moderator": False}}}
        token = jwt.encode(claims, jitsi_secret, algorithm="HS256", headers={"typ": "JWT"})
        raise web.HTTPFound(f"https://meet.example.org/{row['room']}?jwt={token}")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def lifetime(app: web.Application):
        await database.start()
        yield
        await database.stop()

    app = web.Application()
    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/webhooks/stripe", webhook)
    app.router.add_get("/j/{code}", join)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True, help="postgresql://… or a SQLite file path")
    parser.add_argument("--webhook-secret", default="")
    parser.add_argument("--jitsi-secret", default="")
    args = parser.parse_args()
    url = args.database_url
    database = Postgres(url) if url.startswith("postgresql") else Sqlite(url)
    web.run_app(create_app(database, args.webhook_secret, args.jitsi_secret), host="127.0.0.1", port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
