"""Paid webinar tickets: Stripe Checkout in, Jitsi Meet tokens out."""

__version__ = "0.1.0"
