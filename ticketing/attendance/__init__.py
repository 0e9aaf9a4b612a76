"""Attendance: Prosody's room and occupant events turned into who came and for how long,
one device per ticket, and certificates of attendance."""
