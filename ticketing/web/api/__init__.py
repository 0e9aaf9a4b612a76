"""The organizer JSON API under /api."""
