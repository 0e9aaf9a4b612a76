"""The organizer console under /org: server-rendered pages over the same services as the API."""
