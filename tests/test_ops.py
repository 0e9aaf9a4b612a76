"""Operations endpoints: /healthz, /readyz (the database answers), /metrics (Prometheus text)."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests import factories
from ticketing.settings import Settings


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_pages_share_one_stylesheet(client):
    response = await client.get("/static/site.css")
    assert response.status == 200
    assert response.content_type == "text/css"
    assert "prefers-color-scheme" in await response.text() or "color-scheme" in await response.text()
    page = await (await client.get("/no-such-page")).text()
    assert '<link rel="stylesheet" href="/static/site.css">' in page


async def test_readyz_when_the_database_answers(client):
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ok", "database": "ok"}


async def test_readyz_is_503_while_the_database_is_unreachable(postgres_proxy, var_dir, start_client):
    proxy, proxied_url = postgres_proxy
    client = await start_client(Settings.from_env(
        {"TICKETING_DATABASE_URL": proxied_url, "TICKETING_VAR_DIR": str(var_dir)}, dotenv=None))
    assert (await client.get("/readyz")).status == 200
    await proxy.stop()
    down = await client.get("/readyz")
    assert down.status == 503
    assert (await down.json())["status"] == "unavailable"
    assert (await client.get("/healthz")).status == 200  # the process itself is fine
    await proxy.start()
    assert (await client.get("/readyz")).status == 200


async def test_metrics_count_requests_by_route_and_webhooks_by_type_and_outcome(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    await client.get(f"/w/{webinar.id}")
    await client.get(f"/w/{uuid.uuid4()}")
    await client.get("/no/such/page")
    assert (await factories.post_event(client, factories.event(
        "checkout.session.completed", factories.checkout_session(webinar)))).status == 200
    assert (await factories.post_event(client, factories.event("customer.created", {"id": "cus_1"}))).status == 200
    assert (await client.post("/webhooks/stripe", data=b"{}", headers={"Content-Type": "application/json"})).status == 400

    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(await response.text())

    def requests(method, route, status):
        return samples.get(("ticketing_http_requests_total",
                            frozenset({"method": method, "route": route, "status": status}.items())), 0)

    assert requests("GET", "/w/{id}", "200") == 1
    assert requests("GET", "/w/{id}", "404") == 1
    assert requests("GET", "unmatched", "404") == 1
    assert requests("POST", "/webhooks/stripe", "200") == 2
    assert requests("POST", "/webhooks/stripe", "400") == 1
    latency = ("ticketing_http_request_duration_seconds_count", frozenset({"method": "GET", "route": "/w/{id}"}.items()))
    assert samples[latency] == 2

    def webhooks(event_type, outcome):
        return samples.get(("ticketing_webhook_events_total",
                            frozenset({"type": event_type, "outcome": outcome}.items())), 0)

    assert webhooks("checkout.session.completed", "order_paid") == 1
    assert webhooks("customer.created", "ignored") == 1
    assert webhooks("unknown", "bad_signature") == 1


async def test_every_route_answers_503_not_500_while_the_database_is_unreachable(postgres_proxy, var_dir,
                                                                                  start_client):
    proxy, proxied_url = postgres_proxy
    settings = Settings.from_env({"TICKETING_DATABASE_URL": proxied_url, "TICKETING_VAR_DIR": str(var_dir)},
                                 dotenv=None)
    client = await start_client(settings)
    from ticketing.web.keys import SESSIONMAKER

    owner, key = await factories.organizer(client.app[SESSIONMAKER])
    webinar = await factories.webinar(client.app[SESSIONMAKER], owner)
    await proxy.stop()
    api = await client.get("/api/webinars", headers={"Authorization": f"Bearer {key}"})
    assert api.status == 503
    assert (await api.json())["error"]["code"] == "unavailable"
    for path in (f"/w/{webinar.id}", "/j/" + "A" * 43):
        page = await client.get(path, allow_redirects=False)
        assert page.status == 503, path
        assert "Traceback" not in await page.text()
    checkout = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    assert checkout.status == 503
    await proxy.start()
    assert (await client.get(f"/w/{webinar.id}")).status == 200
