"""Organizer accounts: signing in to the console (one-time links, sessions, CSRF) and API keys."""
