"""GET /api/openapi.json: a valid OpenAPI 3.1 document naming every /api and /webhooks route,
and Schemathesis against the running service: no 5xx, every answer as the document says."""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime as dt
import json
import uuid
from pathlib import Path

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import factories
from tests.attendance import prosody
from ticketing.app import create_app
from ticketing.db.models import WaitlistEntry
from ticketing.settings import Settings
from ticketing.web.api.openapi import document
from ticketing.webinars.service import get_webinar

DOCUMENTED_PREFIXES = ("/api/", "/webhooks/")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Examples per operation and generation mode: enough to reach every branch of the handlers'
# input checks, few enough for well under a minute per database.
EXAMPLES = 20


def _operations(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in METHODS}


def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    settings = Settings.from_env({"TICKETING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
                                  "TICKETING_VAR_DIR": str(tmp_path)}, dotenv=None)
    app = create_app(settings)
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        # aiohttp answers HEAD wherever it answers GET; the document's GET stands for both.
        if path.startswith(DOCUMENTED_PREFIXES) and route.method != "HEAD":
            routes.add((route.method, path))
    return routes


async def test_the_document_is_served_without_a_key_as_valid_openapi_3_1(client, settings):
    response = await client.get("/api/openapi.json")

    assert response.status == 200 and response.content_type == "application/json"
    served = await response.json()
    assert served["openapi"].startswith("3.1.")
    assert served["servers"] == [{"url": settings.base_url}]
    validate(served)


def test_the_validator_refuses_a_document_that_breaks_the_standard():
    broken = copy.deepcopy(document())
    del broken["paths"]["/api/webinars"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_api_and_webhook_route_is_in_the_document_and_nothing_else(tmp_path):
    routes = _app_routes(tmp_path)
    documented = _operations(document())

    assert ("PATCH", "/api/webinars/{id}") in routes and ("POST", "/webhooks/stripe") in routes
    assert routes - documented == set(), "routes missing from ticketing/web/api/openapi.yaml"
    assert documented - routes == set(), "operations in ticketing/web/api/openapi.yaml that no route serves"


def _keyed_operations(doc: dict) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, item in doc["paths"].items() for method, operation in item.items()
                  if method in METHODS and operation.get("security") != [])


def _call_every_keyed_operation(raw_schema: dict, base_url: str, api_key: str) -> dict[str, int]:
    """Each operation that takes an API key, called once with `api_key` and checked against the
    document; returns the status each answered."""
    schema = schemathesis.openapi.from_dict(raw_schema)
    headers = {"Authorization": f"Bearer {api_key}"}
    statuses = {}
    with requests.Session() as http:
        for method, path in _keyed_operations(raw_schema):
            operation = schema[path][method]
            parameters = {"id": str(uuid.uuid4())} if "{id}" in path else None
            case = operation.Case(path_parameters=parameters)
            response = case.call(base_url=base_url, session=http, headers=headers)
            statuses[operation.label] = response.status_code
            case.validate_response(response, checks=CHECKS, headers=headers)
    return statuses


async def test_every_keyed_route_answers_429_with_retry_after_once_an_address_failed_too_often(
        start_client, make_settings):
    client = await start_client(make_settings(api_key_rate_per_address="2"))
    raw_schema = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("")).rstrip("/")
    for _ in range(2):
        response = await client.get("/api/webinars", headers={"Authorization": "Bearer tk_not-a-key"})
        assert response.status == 401

    statuses = await asyncio.to_thread(_call_every_keyed_operation, raw_schema, base_url, "tk_not-a-key-either")

    assert len(statuses) >= 18 and set(statuses.values()) == {429}, statuses


def _call_every_operation_oversized(raw_schema: dict, base_url: str, api_key: str) -> dict[str, tuple[int, int]]:
    """Each operation called with a request target, then a header, over the limits, checked
    against the document; returns the two statuses of each."""
    schema = schemathesis.openapi.from_dict(raw_schema)
    headers = {"Authorization": f"Bearer {api_key}"}
    statuses = {}
    with requests.Session() as http:
        for method, path in sorted(_operations(raw_schema)):
            operation = schema[path][method]
            parameters = {"id": str(uuid.uuid4())} if "{id}" in path else None
            answers = []
            for query, extra in (({"pad": "x" * 9000}, {}), (None, {"X-Pad": "x" * 9000})):
                case = operation.Case(path_parameters=parameters, query=query)
                response = case.call(base_url=base_url, session=http, headers={**headers, **extra})
                answers.append(response.status_code)
                case.validate_response(response, checks=CHECKS, headers=headers)
                assert response.json()["error"]["code"] in ("uri_too_long", "headers_too_large")
            statuses[operation.label] = tuple(answers)
    return statuses


async def test_every_operation_answers_414_and_431_as_documented(start_client, settings, sessionmaker):
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    raw_schema = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("")).rstrip("/")

    statuses = await asyncio.to_thread(_call_every_operation_oversized, raw_schema, base_url, api_key)

    assert len(statuses) == len(_operations(raw_schema)) and set(statuses.values()) == {(414, 431)}, statuses


def _check_csv(raw_schema: dict, base_url: str, api_key: str, webinar_id: str) -> str:
    schema = schemathesis.openapi.from_dict(raw_schema)
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/csv"}
    case = schema["/api/webinars/{id}/tickets"]["GET"].Case(path_parameters={"id": webinar_id})
    response = case.call(base_url=base_url, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"][0].startswith("text/csv")
    case.validate_response(response, checks=CHECKS, headers=headers)
    return response.text


async def test_the_csv_attendee_list_is_as_documented(start_client, settings, sessionmaker):
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    response = await client.post("/api/webinars", json=factories.webinar_input(),
                                 headers={"Authorization": f"Bearer {api_key}"})
    webinar_id = (await response.json())["id"]
    async with sessionmaker() as session:
        webinar = await get_webinar(session, uuid.UUID(webinar_id))
    paid = factories.checkout_session(webinar, quantity=2)
    assert (await factories.post_event(client, factories.event("checkout.session.completed", paid))).status == 200
    raw_schema = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("")).rstrip("/")

    text = await asyncio.to_thread(_check_csv, raw_schema, base_url, api_key, webinar_id)

    header, *rows = text.splitlines()
    described = raw_schema["paths"]["/api/webinars/{id}/tickets"]["get"]["responses"]["200"]["content"]["text/csv"]
    named = described["schema"]["description"].replace(",", " ").replace(";", " ").split()
    assert len(rows) == 2 and [column for column in header.split(",") if column not in named] == []


# --- Schemathesis ------------------------------------------------------------------------------


async def _fixture_ids(client, sessionmaker, api_key: str, events_secret: str) -> dict[str, str]:
    """Real objects for the {id} of each operation, so generated input reaches past the 404."""
    headers = {"Authorization": f"Bearer {api_key}"}
    ids = {}
    for name in ("webinar", "to_cancel"):
        response = await client.post("/api/webinars", json=factories.webinar_input(), headers=headers)
        assert response.status == 201, await response.text()
        ids[name] = (await response.json())["id"]
    async with sessionmaker() as session:
        webinar = await get_webinar(session, uuid.UUID(ids["webinar"]))
    paid = factories.checkout_session(webinar, quantity=3)
    assert (await factories.post_event(client, factories.event("checkout.session.completed", paid))).status == 200
    # One ticket more, in an order of its own that a dispute revokes and the organizer wins.
    disputed = factories.checkout_session(webinar, quantity=1)
    assert (await factories.post_event(client, factories.event("checkout.session.completed", disputed))).status == 200
    dispute = factories.dispute(disputed["payment_intent"], amount=disputed["amount_total"])
    for event_type, status in (("charge.dispute.created", "needs_response"), ("charge.dispute.closed", "won")):
        event = factories.event(event_type, dict(dispute, status=status))
        assert (await factories.post_event(client, event)).status == 200
    response = await client.get(f"/api/webinars/{ids['webinar']}/tickets", headers=headers)
    tickets = (await response.json())["tickets"]
    ids["ticket"], ids["to_revoke"], ids["to_resend"] = [t["id"] for t in tickets if t["status"] == "valid"]
    [ids["to_restore"]] = [t["id"] for t in tickets if t["revoked_reason"] == "disputed"]
    # The shared ticket came for half an hour, beside a guest without one, so the attendance
    # answers hold sessions and figures whose shape is checked.
    starts = webinar.starts_at
    guest = prosody.occupant("guest@meet.example.com/1", starts)
    attendee = prosody.occupant("bea@meet.example.com/2", starts + dt.timedelta(minutes=5),
                                starts + dt.timedelta(minutes=35), **prosody.user(ids["ticket"]))
    for event in (prosody.room_created(webinar.room, starts), prosody.joined(webinar.room, guest, 1),
                  prosody.joined(webinar.room, attendee, 2), prosody.left(webinar.room, attendee, 1)):
        response = await prosody.post(client, events_secret, event)
        assert response.status == 200, await response.text()
    response = await client.get(f"/api/webinars/{ids['webinar']}/attendance", headers=headers)
    figures = await response.json()
    assert (figures["attendees"], figures["occupants_without_ticket"]) == (1, 1), figures
    response = await client.post("/api/keys", json={"name": "to revoke"}, headers=headers)
    assert response.status == 201, await response.text()
    ids["key_to_revoke"] = (await response.json())["id"]
    for name in ("ticket_type", "type_to_delete"):
        response = await client.post(f"/api/webinars/{ids['webinar']}/ticket-types", headers=headers,
                                     json={"name": name, "price_amount": 1000})
        assert response.status == 201, await response.text()
        ids[name] = (await response.json())["id"]
    for name in ("promo_code", "code_to_delete"):
        response = await client.post("/api/promo-codes", headers=headers, json={"code": name, "percent_off": 10})
        assert response.status == 201, await response.text()
        ids[name] = (await response.json())["id"]
    # Two confirmed people on the webinar's waitlist: one to offer seats to, one to remove.
    async with sessionmaker.begin() as session:
        for name in ("waitlist_entry", "entry_to_remove"):
            entry = WaitlistEntry(webinar_id=webinar.id, email=f"{name}@example.com", email_key=f"{name}@example.com",
                                  name="", quantity=1, code_hash=name.ljust(64, "0"), held=False,
                                  confirmed_at=dt.datetime.now(dt.UTC))
            session.add(entry)
            await session.flush()
            ids[name] = str(entry.id)
    return ids


# Operations that change their object's state get one of their own; the others share one
# webinar or one ticket; an {id} of anything else is generated (and so unknown: 404).
PINNED_ID = {"POST /api/webinars/{id}/cancel": "to_cancel", "POST /api/tickets/{id}/revoke": "to_revoke",
             "POST /api/tickets/{id}/resend": "to_resend", "POST /api/tickets/{id}/restore": "to_restore",
             "DELETE /api/keys/{id}": "key_to_revoke", "DELETE /api/ticket-types/{id}": "type_to_delete",
             "DELETE /api/promo-codes/{id}": "code_to_delete", "DELETE /api/waitlist/{id}": "entry_to_remove"}
SHARED_ID = {"/api/webinars/{id}": "webinar", "/api/tickets/{id}": "ticket", "/api/ticket-types/{id}": "ticket_type",
             "/api/promo-codes/{id}": "promo_code", "/api/waitlist/{id}": "waitlist_entry"}


def _pinned_id(operation, ids: dict[str, str]) -> dict[str, str] | None:
    name = PINNED_ID.get(operation.label) or next(
        (name for prefix, name in SHARED_ID.items() if operation.path.startswith(prefix)), None)
    return {"id": ids[name]} if name else None


def _pin(case: schemathesis.Case, path_parameters: dict[str, str] | None) -> schemathesis.Case:
    if path_parameters:
        case.path_parameters = {**(case.path_parameters or {}), **path_parameters}
    return case


def _signed_delivery(case: schemathesis.Case, secret: str) -> tuple[bytes, dict[str, str]] | None:
    """The generated webhook body as Stripe would sign it, when it is JSON at all."""
    if case.media_type != "application/json":
        return None
    try:
        return factories.signed(json.dumps(case.body).encode(), secret)
    except (TypeError, ValueError):
        return None


def _draw(strategy, max_examples: int, call) -> None:
    """`call` on up to `max_examples` cases drawn from `strategy`, the same ones each run."""

    @hypothesis.settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink])
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        call(case)

    run()


def _fuzz(raw_schema: dict, base_url: str, api_key: str, ids: dict[str, str],
          webhook_secret: str | None) -> tuple[list[str], dict[str, collections.Counter]]:
    """Run every operation through Schemathesis over real HTTP; returns the failures and the
    status codes each operation answered. With `webhook_secret`, webhook bodies go signed, so
    they reach the event handlers. Runs in a thread of its own: its HTTP client blocks."""
    schema = schemathesis.openapi.from_dict(raw_schema)
    headers = {"Authorization": f"Bearer {api_key}"}
    failures: list[str] = []
    statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]

    def call(case: schemathesis.Case) -> None:
        signed = None
        if webhook_secret and case.operation.path == "/webhooks/stripe":
            signed = _signed_delivery(case, webhook_secret)
        if signed is not None:
            body, signed_headers = signed
            response = http.post(f"{base_url}{case.formatted_path}", data=body, headers=signed_headers)
        else:
            response = case.call(base_url=base_url, session=http, headers=headers)
        statuses[case.operation.label][response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            pinned = _pinned_id(operation, ids)
            # The examples phase: the document's own examples, so the success answers are seen too.
            for strategy in operation.get_strategies_from_examples():
                try:
                    _draw(strategy, 1, lambda case, pinned=pinned: call(_pin(case, pinned)))
                except Exception as error:
                    failures.append(f"{operation.label} [examples]: {error}")
            # The coverage phase: each field at and past its bounds, wrong types, missing parts.
            for case in schema.iter_coverage_cases(operation, generation_modes=modes,
                                                   generation_config=schema.config.generation_for(operation=operation)):
                try:
                    call(_pin(case, pinned))
                except Exception as error:
                    failures.append(f"{operation.label} [coverage]: {error}")
                    break
            # The fuzzing phase: random input, valid and invalid.
            for mode in modes:
                try:
                    _draw(operation.as_strategy(generation_mode=mode, path_parameters=pinned), EXAMPLES, call)
                except hypothesis.errors.Unsatisfiable:
                    # Nothing to make invalid: an operation without parameters or body.
                    assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
                except Exception as error:  # every failing operation is reported, not just the first
                    failures.append(f"{operation.label} [{mode.value}]: {error}")
    return failures, statuses


# Webhook bodies go signed on both databases: a value PostgreSQL refuses (a NUL byte, a lone
# surrogate) is stored sanitised and answered 2xx (payments/sanitise.py).
SIGNED_WEBHOOKS_ON = ("sqlite", "postgres")


async def test_schemathesis_finds_no_server_error_and_no_answer_unlike_the_document(
        backend, start_client, make_settings, sessionmaker):
    # Schemathesis sends many bad keys (none, malformed, unknown); counted per address they
    # would soon get the good key a 429 too, and no operation past authentication. The limit
    # itself is checked against the document below.
    settings = make_settings(api_key_rate_per_address="0")
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    ids = await _fixture_ids(client, sessionmaker, api_key, settings.jitsi_events_secret)
    raw_schema = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("")).rstrip("/")
    secret = settings.stripe_webhook_secrets[0] if backend in SIGNED_WEBHOOKS_ON else None

    failures, statuses = await asyncio.to_thread(_fuzz, raw_schema, base_url, api_key, ids, secret)

    print({label: dict(counts) for label, counts in sorted(statuses.items())})
    assert failures == [], "\n\n".join(failures)
    # Every operation was called, and the key got each organizer route past authentication.
    assert set(statuses) == {f"{method} {path}" for method, path in _operations(raw_schema)}
    for label, counts in statuses.items():
        if label.split()[1].startswith("/api/") and label != "GET /api/openapi.json":
            assert set(counts) - {401}, (label, counts)
    # And each success answer was seen, so its schema was checked too.
    for label, counts in statuses.items():
        if label != "POST /webhooks/stripe" or secret:
            assert any(200 <= status < 300 for status in counts), (
                f"{label} never succeeded ({dict(counts)}): give it a real object (PINNED_ID, SHARED_ID) "
                "or an example in the document")
