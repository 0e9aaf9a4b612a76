"""The database: declarative base, column types, the engine and the one sessionmaker."""

from ticketing.db.base import Base, UTCDateTime, utcnow
from ticketing.db.engine import create_engine, create_sessionmaker, is_unavailable

__all__ = ["Base", "UTCDateTime", "create_engine", "create_sessionmaker", "is_unavailable", "utcnow"]
