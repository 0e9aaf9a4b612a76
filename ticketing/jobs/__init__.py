"""Work for later: a queue table written in the caller's transaction, and the worker."""

from ticketing.jobs.queue import NewJob, enqueue, enqueue_many

__all__ = ["NewJob", "enqueue", "enqueue_many"]
