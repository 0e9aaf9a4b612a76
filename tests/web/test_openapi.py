"""GET /api/openapi.json: a valid OpenAPI 3.1 document naming every /api and /webhooks route,
and Schemathesis against the running service: no 5xx, every answer as the document says."""

from __future__ import annotations

import asyncio
import collections
import copy
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

from ticketing.app import create_app
from ticketing.settings import Settings
from ticketing.web.api.openapi import document
from ticketing.webinars.service import get_webinar
from tests import factories

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


# --- Schemathesis ------------------------------------------------------------------------------


async def _fixture_ids(client, sessionmaker, api_key: str) -> dict[str, str]:
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
    return ids


# Operations that change their object's state get one of their own; the others share one
# webinar or one ticket; an {id} of anything else is generated (and so unknown: 404).
PINNED_ID = {"POST /api/webinars/{id}/cancel": "to_cancel", "POST /api/tickets/{id}/revoke": "to_revoke",
             "POST /api/tickets/{id}/resend": "to_resend", "POST /api/tickets/{id}/restore": "to_restore"}
SHARED_ID = {"/api/webinars/{id}": "webinar", "/api/tickets/{id}": "ticket"}


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
                    _draw(strategy, 1, lambda case: call(_pin(case, pinned)))
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


# A signed webhook body that PostgreSQL refuses (a NUL byte in the event) is still answered
# 503, as if the database were down (issue 8, item 5): on PostgreSQL the webhook is fuzzed
# unsigned until that is fixed.
SIGNED_WEBHOOKS_ON = ("sqlite",)


async def test_schemathesis_finds_no_server_error_and_no_answer_unlike_the_document(
        backend, start_client, settings, sessionmaker):
    client = await start_client(settings)
    _, api_key = await factories.organizer(sessionmaker)
    ids = await _fixture_ids(client, sessionmaker, api_key)
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
