"""POST /webhooks/stripe: the raw body goes to the payments module; errors become 400 or 503."""

from __future__ import annotations

from aiohttp import web

from ticketing.errors import Unavailable
from ticketing.payments.signature import BadPayload, BadSignature
from ticketing.payments.webhooks import receive_webhook
from ticketing.web.keys import METRICS, SESSIONMAKER, SETTINGS
from ticketing.web.responses import error_response, json_response

routes = web.RouteTableDef()


@routes.post("/webhooks/stripe")
async def stripe_webhook(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    # Stripe always sends application/json; anything else is not a Stripe delivery.
    if request.content_type != "application/json":
        metrics.webhook_events.labels("unknown", "unsupported_media_type").inc()
        return error_response(request, 415, "unsupported_media_type", "a Stripe event is sent as application/json")
    body = await request.read()
    try:
        event_type, outcome = await receive_webhook(
            request.app[SESSIONMAKER], request.app[SETTINGS], body, request.headers.get("Stripe-Signature")
        )
    except BadSignature as error:
        metrics.webhook_events.labels("unknown", "bad_signature").inc()
        return error_response(request, 400, "bad_signature", str(error))
    except BadPayload as error:
        metrics.webhook_events.labels("unknown", "bad_payload").inc()
        return error_response(request, 400, "bad_payload", str(error))
    except Unavailable as error:
        metrics.webhook_events.labels("unknown", "unavailable").inc()
        return error_response(request, 503, "unavailable", error.message)
    metrics.webhook_events.labels(event_type, outcome).inc()
    return json_response({"received": True, "outcome": outcome})
