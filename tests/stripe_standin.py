"""A small aiohttp app that answers like Stripe's API, for the calls this service makes.

The official `stripe` client talks to it over real HTTP (point it there with
TICKETING_STRIPE_API_BASE; the `stripe_standin` fixture does). It speaks Stripe's wire
format: form-encoded, nested parameters (`line_items[0][price_data][currency]=eur`) in,
JSON out, errors as `{"error": {"type", "code", "message", "param"}}`.

Routes
  POST /v1/checkout/sessions          create a session (checks the parameters Stripe requires)
  GET  /v1/checkout/sessions/{id}     one session; 404 `resource_missing` when unknown
  POST /v1/refunds                    `payment_intent` (or `charge`), optional `amount`,
                                      `reason`, `metadata`; 400 when it would refund more
                                      than was paid (for payment intents it knows)
  GET  /v1/charges/{id}               one charge; 404 `resource_missing` when unknown
  GET  /v1/invoices/{id}              one invoice; 404 `resource_missing` when unknown
  POST /v1/credit_notes               `invoice` (required, known), `amount`, `refunds[i][refund]`
                                      and `[amount_refunded]` (refunds it made, adding up to the
                                      amount), `metadata`; 400 beyond what the invoice was paid
  POST /v1/webhook_endpoints          `url`, `enabled_events[]` (required), `api_version`,
                                      `description`; answers the endpoint with its `secret`
  GET  /v1/webhook_endpoints          oldest first, `limit`, `starting_after`; never the secret
  GET  /v1/events                     newest first; filters `type` (exact or `prefix.*`),
                                      `types[]`/`types[0]`, `created[gte|gt|lte|lt]`;
                                      pages with `limit` (1..100, default 10),
                                      `starting_after`, `ending_before`; answers `has_more`
  GET  /c/pay/{id}                    where a session's `url` points: a bare page

Every POST honours `Idempotency-Key` as Stripe does: the same key with the same parameters
answers the first answer again (with `Idempotent-Replayed: true`); the same key with other
parameters answers 400 `idempotency_error`. A request without `Authorization: Bearer sk_…`
or `rk_…` answers 401.

What a test uses (`standin` is a `StripeStandin`):
  standin.url                               the base URL, once started
  standin.calls                             every request: `Call(method, path, params,
                                            idempotency_key, headers)`; `params` is the parsed
                                            form or query, nested dicts and lists
  standin.calls_to("POST", "/v1/refunds")   the calls to one route
  standin.sessions[id], standin.refunds     what was created
  standin.fail_next(n, status=500, should_retry=None)
                                            the next n API calls answer `status`; with
                                            should_retry=False they carry
                                            `Stripe-Should-Retry: false`, so the client does
                                            not retry (and does not sleep between retries)
  standin.hang_next(n, path=None)           the next n API calls (to `path` only, when given)
                                            wait until `release()` (or the server stops): for
                                            client timeouts
  standin.release()                         let hanging calls go on (they then answer normally)
  standin.add_payment_intent(id, amount, currency="eur")
                                            a payment intent refunds are checked against
  standin.webhook_endpoints               the endpoints made (each with its secret), by id
  standin.add_charge(id, payment_intent, amount, currency="eur") -> charge
                                            a charge GET /v1/charges/{id} answers
  standin.complete_session(id, payment_status="paid")
                                            marks a created session complete and paid, gives it
                                            a payment intent, and returns the session object as
                                            a `checkout.session.completed` event carries it
  standin.invoices[id]                      invoices made by completing a session created with
                                            `invoice_creation[enabled]=true` (paid, numbered)
  standin.credit_note(invoice_id, amount) -> credit note
                                            a credit note against an invoice, as
                                            `credit_note.created` carries it (Stripe issues one
                                            when a refund of an invoiced payment asks for it)
  standin.queue_event(event) -> event       serve a Stripe event from GET /v1/events (give it
                                            `created` to control ordering; defaults to now)
Failures and hangs count every request to /v1/…, including the client's own retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

_KEY_PART = re.compile(r"\[([^\]]*)\]")
PARAMS = web.RequestKey("params", dict)


@dataclasses.dataclass
class Call:
    """One request the stand-in received."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    headers: dict[str, str]


def parse_params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form encoding to nested dicts; dicts keyed 0, 1, … become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (_KEY_PART.findall("[" + rest) if rest else [])
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `types[]=a&types[]=b`
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


class StripeError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.code, self.param = status, type_, message, code, param

    def response(self) -> web.Response:
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return web.json_response({"error": error}, status=self.status)


def _missing(param: str) -> StripeError:
    return StripeError(400, "invalid_request_error", f"Missing required param: {param}.",
                       code="parameter_missing", param=param)


def _invalid(param: str, message: str) -> StripeError:
    return StripeError(400, "invalid_request_error", message, code="parameter_invalid_integer"
                       if "integer" in message else "parameter_invalid", param=param)


def _integer(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid(param, f"Invalid integer: {value}") from None


class StripeStandin:
    """State and routes of the stand-in; see the module docstring for the interface."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[Call] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_notes: list[dict[str, Any]] = []
        self.webhook_endpoints: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._idempotent: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self._failures: list[tuple[int, bool | None]] = []
        self._hangs = 0
        self._hang_path: str | None = None
        self._released = asyncio.Event()
        self.app = web.Application(middlewares=[self._middleware])
        self.app.add_routes([
            web.post("/v1/checkout/sessions", self._create_session),
            web.get("/v1/checkout/sessions/{id}", self._get_session),
            web.get("/v1/charges/{id}", self._get_charge),
            web.get("/v1/invoices/{id}", self._get_invoice),
            web.post("/v1/credit_notes", self._create_credit_note),
            web.post("/v1/webhook_endpoints", self._create_webhook_endpoint),
            web.get("/v1/webhook_endpoints", self._list_webhook_endpoints),
            web.post("/v1/refunds", self._create_refund),
            web.get("/v1/events", self._list_events),
            web.get("/c/pay/{id}", self._pay_page),
        ])
        self.app.on_shutdown.append(self._on_shutdown)

    # --- what tests call ---------------------------------------------------------------

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def fail_next(self, count: int = 1, *, status: int = 500, should_retry: bool | None = None) -> None:
        self._failures.extend([(status, should_retry)] * count)

    def hang_next(self, count: int = 1, *, path: str | None = None) -> None:
        self._hangs += count
        self._hang_path = path
        self._released.clear()

    def release(self) -> None:
        self._hangs = 0
        self._released.set()

    def add_payment_intent(self, payment_intent: str, amount: int, currency: str = "eur") -> None:
        self.payment_intents[payment_intent] = {"id": payment_intent, "amount": amount,
                                                "currency": currency, "amount_refunded": 0}

    def add_charge(self, charge_id: str, payment_intent: str | None, amount: int,
                   currency: str = "eur") -> dict[str, Any]:
        self.charges[charge_id] = {
            "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
            "captured": True, "created": int(time.time()), "currency": currency, "disputed": False,
            "livemode": False, "metadata": {}, "paid": True, "payment_intent": payment_intent, "refunded": False,
            "status": "succeeded"}
        return self.charges[charge_id]

    def complete_session(self, session_id: str, *, payment_status: str = "paid",
                         email: str = "buyer@example.com") -> dict[str, Any]:
        session = self.sessions[session_id]
        payment_intent = session["payment_intent"] or "pi_" + secrets.token_hex(12)
        session.update(status="complete", payment_status=payment_status, payment_intent=payment_intent,
                       customer_details={"email": session["customer_email"] or email, "name": "Bea Buyer"})
        if payment_intent not in self.payment_intents:
            self.add_payment_intent(payment_intent, session["amount_total"], session["currency"])
        creation = session.get("invoice_creation") or {}
        if creation.get("enabled") and session["invoice"] is None:
            session["invoice"] = self._make_invoice(session, creation.get("invoice_data") or {})["id"]
        return json.loads(json.dumps(session))

    def _make_invoice(self, session: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        invoice_id = "in_" + secrets.token_hex(12)
        number = f"{secrets.token_hex(4).upper()}-{len(self.invoices) + 1:04d}"
        self.invoices[invoice_id] = {
            "id": invoice_id, "object": "invoice", "amount_due": session["amount_total"],
            "amount_paid": session["amount_total"], "currency": session["currency"], "created": int(time.time()),
            "customer_email": (session.get("customer_details") or {}).get("email"),
            "description": data.get("description"), "footer": data.get("footer"),
            "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_test/{invoice_id}",
            "invoice_pdf": f"https://pay.stripe.com/invoice/acct_test/{invoice_id}/pdf",
            "livemode": False, "metadata": data.get("metadata") or {}, "number": number, "status": "paid",
            "total": session["amount_total"],
        }
        return self.invoices[invoice_id]

    def credit_note(self, invoice_id: str, amount: int) -> dict[str, Any]:
        invoice = self.invoices[invoice_id]
        note_id = "cn_" + secrets.token_hex(12)
        return {"id": note_id, "object": "credit_note", "amount": amount, "currency": invoice["currency"],
                "created": int(time.time()), "invoice": invoice_id, "livemode": False, "memo": None,
                "number": f"{invoice['number']}-CN-{len([n for n in self.credit_notes if n['invoice'] == invoice_id]) + 1:02d}",
                "post_payment_amount": amount, "pre_payment_amount": 0, "refunds": [],
                "pdf": f"https://pay.stripe.com/credit_notes/acct_test/{note_id}/pdf",
                "reason": None, "status": "issued", "total": amount, "type": "post_payment"}

    def queue_event(self, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("created", int(time.time()))
        self.events.append(event)
        return event

    # --- plumbing ----------------------------------------------------------------------

    async def _on_shutdown(self, app: web.Application) -> None:
        self._released.set()

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.method == "POST":
            pairs = parse_qsl((await request.read()).decode(), keep_blank_values=True)
        else:
            pairs = list(request.query.items())
        params = parse_params(pairs)
        key = request.headers.get("Idempotency-Key")
        self.calls.append(Call(request.method, request.path, params, key, dict(request.headers)))
        if not request.path.startswith("/v1/"):
            return await handler(request)

        if self._hangs and self._hang_path in (None, request.path):
            self._hangs -= 1
            await self._released.wait()
        if self._failures:
            status, should_retry = self._failures.pop(0)
            response = StripeError(status, "api_error", "The stand-in was told to fail this call.").response()
            if should_retry is not None:
                response.headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
            return response

        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token.startswith(("sk_", "rk_")):
            return StripeError(401, "invalid_request_error", "Invalid API Key provided.").response()

        request[PARAMS] = params
        if request.method == "POST" and key:
            seen = self._idempotent.get(key)
            if seen is not None:
                path, first_params, status, body = seen
                if (path, first_params) != (request.path, params):
                    return StripeError(400, "idempotency_error", "Keys for idempotent requests can only be used "
                                       "with the same parameters they were first used with.").response()
                return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        try:
            status, body = 200, await handler(request)
        except StripeError as error:
            status, body = error.status, {"error": {k: v for k, v in (("type", error.type), ("message", error.message),
                                                                    ("code", error.code), ("param", error.param)) if v}}
        if request.method == "POST" and key and status < 500:
            self._idempotent[key] = (request.path, params, status, body)
        return web.json_response(body, status=status)

    # --- routes --------------------------------------------------------------------------

    async def _create_session(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = request[PARAMS]
        mode = params.get("mode")
        if mode is None:
            raise _missing("mode")
        if mode not in ("payment", "subscription", "setup"):
            raise _invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if "success_url" not in params and params.get("ui_mode") != "embedded":
            raise _missing("success_url")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise _missing("line_items")
        amount = 0
        currency = None
        for i, item in enumerate(items):
            quantity = _integer(item.get("quantity"), f"line_items[{i}][quantity]")
            price = item.get("price_data")
            if not isinstance(price, dict):
                raise _missing(f"line_items[{i}][price_data]")
            for name in ("currency", "unit_amount"):
                if name not in price:
                    raise _missing(f"line_items[{i}][price_data][{name}]")
            if not isinstance(price.get("product_data"), dict) or not price["product_data"].get("name"):
                raise _missing(f"line_items[{i}][price_data][product_data][name]")
            if price.get("tax_behavior", "unspecified") not in ("inclusive", "exclusive", "unspecified"):
                raise _invalid(f"line_items[{i}][price_data][tax_behavior]",
                               "Invalid tax_behavior: must be one of inclusive, exclusive, or unspecified")
            amount += quantity * _integer(price["unit_amount"], f"line_items[{i}][price_data][unit_amount]")
            currency = price["currency"].lower()
        switches = {name: self._enabled(params, name, mode)
                    for name in ("invoice_creation", "tax_id_collection", "automatic_tax")}
        address = params.get("billing_address_collection", "auto")
        if address not in ("auto", "required"):
            raise _invalid("billing_address_collection", "Invalid billing_address_collection: must be one of auto "
                                                         "or required")
        now = int(time.time())
        expires_at = _integer(params.get("expires_at", now + 24 * 3600), "expires_at")
        if not now + 30 * 60 - 5 <= expires_at <= now + 24 * 3600 + 5:
            raise _invalid("expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                                         "from Checkout Session creation.")
        session_id = "cs_test_" + secrets.token_hex(24)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currency,
            "customer": None,
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": expires_at,
            "automatic_tax": {"enabled": switches["automatic_tax"], "status": "complete"
                              if switches["automatic_tax"] else None},
            "billing_address_collection": address,
            "invoice": None,
            "invoice_creation": {"enabled": switches["invoice_creation"],
                                 "invoice_data": (params.get("invoice_creation") or {}).get("invoice_data") or {}},
            "tax_id_collection": {"enabled": switches["tax_id_collection"]},
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "mode": mode,
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params.get("success_url"),
            "url": f"{self.url}/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    @staticmethod
    def _enabled(params: dict[str, Any], name: str, mode: str) -> bool:
        """`name[enabled]`, a boolean Stripe requires whenever `name` is given."""
        if name not in params:
            return False
        value = params[name].get("enabled") if isinstance(params[name], dict) else None
        if value is None:
            raise _missing(f"{name}[enabled]")
        if value not in ("true", "false"):
            raise _invalid(f"{name}[enabled]", f"Invalid boolean: {value}")
        if name == "invoice_creation" and mode != "payment":
            raise _invalid(name, "invoice_creation can only be used in payment mode.")
        return value == "true"

    async def _get_invoice(self, request: web.Request) -> dict[str, Any]:
        invoice = self.invoices.get(request.match_info["id"])
        if invoice is None:
            raise StripeError(404, "invalid_request_error", f"No such invoice: '{request.match_info['id']}'",
                              code="resource_missing", param="invoice")
        return invoice

    async def _create_credit_note(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = request[PARAMS]
        invoice_id = params.get("invoice")
        if not invoice_id:
            raise _missing("invoice")
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise StripeError(404, "invalid_request_error", f"No such invoice: '{invoice_id}'",
                              code="resource_missing", param="invoice")
        if "amount" not in params and "lines" not in params:
            raise StripeError(400, "invalid_request_error", "One of `amount`, `lines`, or `shipping_cost` must be "
                                                            "provided.", code="parameter_missing", param="amount")
        amount = _integer(params.get("amount"), "amount")
        refunds = params.get("refunds") or []
        known = {refund["id"]: refund for refund in self.refunds}
        for i, link in enumerate(refunds):
            if link.get("refund") not in known:
                raise StripeError(404, "invalid_request_error", f"No such refund: '{link.get('refund')}'",
                                  code="resource_missing", param=f"refunds[{i}][refund]")
        linked = sum(_integer(link.get("amount_refunded", known[link["refund"]]["amount"]),
                              f"refunds[{i}][amount_refunded]") for i, link in enumerate(refunds))
        if linked != amount:
            raise _invalid("amount", "The sum of refunds, credit and out of band amounts must equal the credit "
                                     "note's post-payment amount.")
        credited = sum(note["amount"] for note in self.credit_notes if note["invoice"] == invoice_id)
        if credited + amount > invoice["amount_paid"]:
            raise _invalid("amount", "The credit note amount cannot exceed the amount paid on the invoice.")
        note = self.credit_note(invoice_id, amount)
        note.update(metadata=params.get("metadata") or {},
                    refunds=[{"refund": link["refund"], "amount_refunded": _integer(
                        link.get("amount_refunded", known[link["refund"]]["amount"]), "amount_refunded")}
                             for link in refunds])
        self.credit_notes.append(note)
        return note

    async def _get_session(self, request: web.Request) -> dict[str, Any]:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            raise StripeError(404, "invalid_request_error", f"No such checkout.session: '{request.match_info['id']}'",
                              code="resource_missing", param="session")
        return session

    async def _get_charge(self, request: web.Request) -> dict[str, Any]:
        charge = self.charges.get(request.match_info["id"])
        if charge is None:
            raise StripeError(404, "invalid_request_error", f"No such charge: '{request.match_info['id']}'",
                              code="resource_missing", param="id")
        return charge

    async def _create_webhook_endpoint(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = request[PARAMS]
        if not params.get("url"):
            raise _missing("url")
        events = params.get("enabled_events")
        if isinstance(events, str):
            events = [events]
        if not events:
            raise _missing("enabled_events")
        endpoint_id = "we_" + secrets.token_hex(12)
        endpoint = {
            "id": endpoint_id, "object": "webhook_endpoint", "api_version": params.get("api_version"),
            "application": None, "created": int(time.time()), "description": params.get("description"),
            "enabled_events": events, "livemode": False, "metadata": params.get("metadata") or {},
            "secret": "whsec_" + secrets.token_hex(16), "status": "enabled", "url": params["url"],
        }
        self.webhook_endpoints[endpoint_id] = endpoint
        return endpoint

    async def _list_webhook_endpoints(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = request[PARAMS]
        limit = _integer(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise _invalid("limit", "Invalid limit: must be between 1 and 100")
        endpoints = [{k: v for k, v in e.items() if k != "secret"} for e in self.webhook_endpoints.values()]
        if "starting_after" in params:
            ids = [e["id"] for e in endpoints]
            if params["starting_after"] not in ids:
                raise StripeError(404, "invalid_request_error", f"No such webhook endpoint: '{params['starting_after']}'",
                                  code="resource_missing", param="starting_after")
            endpoints = endpoints[ids.index(params["starting_after"]) + 1:]
        return {"object": "list", "url": "/v1/webhook_endpoints", "has_more": len(endpoints) > limit,
                "data": endpoints[:limit]}

    async def _create_refund(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = request[PARAMS]
        payment_intent = params.get("payment_intent")
        charge = params.get("charge")
        if not payment_intent and not charge:
            raise _missing("payment_intent")
        amount = _integer(params["amount"], "amount") if "amount" in params else None
        if amount is not None and amount <= 0:
            raise _invalid("amount", "Invalid positive integer")
        known = self.payment_intents.get(payment_intent) if payment_intent else None
        currency = "eur"
        if known is not None:
            left = known["amount"] - known["amount_refunded"]
            if left <= 0:
                raise StripeError(400, "invalid_request_error", f"Charge for {payment_intent} has already been refunded.",
                                  code="charge_already_refunded")
            if amount is None:
                amount = left
            if amount > left:
                raise StripeError(400, "invalid_request_error", f"Refund amount ({amount}) is greater than unrefunded "
                                  f"amount on charge ({left})", code="amount_too_large", param="amount")
            known["amount_refunded"] += amount
            currency = known["currency"]
        refund = {
            "id": "re_" + secrets.token_hex(12),
            "object": "refund",
            "amount": amount if amount is not None else 0,
            "charge": charge or "ch_" + secrets.token_hex(12),
            "created": int(time.time()),
            "currency": currency,
            "metadata": params.get("metadata") or {},
            "payment_intent": payment_intent,
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self.refunds.append(refund)
        return refund

    async def _list_events(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = request[PARAMS]
        events = sorted(self.events, key=lambda e: (e["created"], self.events.index(e)), reverse=True)
        wanted = params.get("types")
        if isinstance(wanted, str):
            wanted = [wanted]
        if "type" in params:
            wanted = [params["type"]]
        if wanted:
            events = [e for e in events if any(_type_matches(e["type"], w) for w in wanted)]
        created = params.get("created")
        if isinstance(created, dict):
            ops = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lte": lambda a, b: a <= b, "lt": lambda a, b: a < b}
            for op, bound in created.items():
                if op not in ops:
                    raise _invalid(f"created[{op}]", f"Received unknown parameter: created[{op}]")
                events = [e for e in events if ops[op](e["created"], _integer(bound, f"created[{op}]"))]
        elif created is not None:
            events = [e for e in events if e["created"] == _integer(created, "created")]
        limit = _integer(params.get("limit", 10), "limit")
        if not 1 <= limit <= 100:
            raise _invalid("limit", "Invalid limit: must be between 1 and 100")
        ids = [e["id"] for e in events]
        if "starting_after" in params:
            if params["starting_after"] not in ids:
                raise StripeError(404, "invalid_request_error", f"No such event: '{params['starting_after']}'",
                                  code="resource_missing", param="starting_after")
            events = events[ids.index(params["starting_after"]) + 1:]
            page, has_more = events[:limit], len(events) > limit
        elif "ending_before" in params:
            if params["ending_before"] not in ids:
                raise StripeError(404, "invalid_request_error", f"No such event: '{params['ending_before']}'",
                                  code="resource_missing", param="ending_before")
            events = events[:ids.index(params["ending_before"])]
            page, has_more = events[-limit:], len(events) > limit
        else:
            page, has_more = events[:limit], len(events) > limit
        return {"object": "list", "url": "/v1/events", "has_more": has_more, "data": page}

    async def _pay_page(self, request: web.Request) -> web.Response:
        if request.match_info["id"] not in self.sessions:
            raise web.HTTPNotFound()
        return web.Response(text="<!doctype html><title>Stripe stand-in</title><h1>Checkout (stand-in)</h1>",
                            content_type="text/html")


def _type_matches(event_type: str, wanted: str) -> bool:
    if wanted.endswith(".*"):
        return event_type.startswith(wanted[:-1])
    return event_type == wanted
