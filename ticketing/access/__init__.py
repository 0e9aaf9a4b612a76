"""Jitsi access: token minting, the join decision for a link, and the ASAP key server's keys."""
