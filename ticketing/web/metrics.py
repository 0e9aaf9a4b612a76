"""Prometheus metrics, one registry per application so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ticketing_http_requests_total", "HTTP requests by route and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "ticketing_http_request_duration_seconds", "HTTP request latency by route.",
            ["method", "route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.webhook_events = Counter(
            "ticketing_webhook_events_total", "Stripe webhook deliveries by event type and outcome.",
            ["type", "outcome"], registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
