"""Prometheus metrics, one registry per application so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        # Read from the jobs table at scrape time, so they cover every worker process.
        self.jobs = Gauge(
            "ticketing_jobs", "Jobs in the queue table by kind and status.",
            ["kind", "status"], registry=self.registry,
        )
        self.jobs_lag = Gauge(
            "ticketing_jobs_lag_seconds", "How long the longest-waiting due job has waited.",
            registry=self.registry,
        )
        self.failed_events = Gauge(
            "ticketing_stripe_events_failed", "Stored Stripe events whose processing failed: waiting for their "
            "next try, or parked after the last (`ticketing events list --failed`).",
            ["state"], registry=self.registry,
        )
        # Counted by the worker running in this process.
        self.job_runs = Counter(
            "ticketing_job_runs_total", "Job runs by kind and outcome (done, retry, dead).",
            ["kind", "outcome"], registry=self.registry,
        )
        self.job_duration = Histogram(
            "ticketing_job_duration_seconds", "Job run time by kind.",
            ["kind"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
        )

    def job_finished(self, kind: str, outcome: str, seconds: float) -> None:
        """The worker's outcome hook."""
        self.job_runs.labels(kind, outcome).inc()
        self.job_duration.labels(kind).observe(seconds)

    def set_queue(self, depth: dict[tuple[str, str], int], lag: float) -> None:
        self.jobs.clear()
        for (kind, status), count in depth.items():
            self.jobs.labels(kind, status).set(count)
        self.jobs_lag.set(lag)

    def set_failed_events(self, waiting: int, parked: int) -> None:
        self.failed_events.labels("waiting").set(waiting)
        self.failed_events.labels("parked").set(parked)

    def render(self) -> bytes:
        return generate_latest(self.registry)
