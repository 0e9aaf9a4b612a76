"""Work for later: a queue table written in the caller's transaction, and the worker."""

from ticketing.jobs.queue import enqueue

__all__ = ["enqueue"]
