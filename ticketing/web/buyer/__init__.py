"""Buyer pages: the public webinar page, checkout, and the personal join link."""
