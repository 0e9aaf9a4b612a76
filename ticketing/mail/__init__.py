"""Mail: composing messages (templates, calendar invitations) and sending them (SMTP or the dev sink)."""
