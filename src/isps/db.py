"""Database plumbing shared by every domain module: engine, sessions, base class.

SQLite is the embedded default and PostgreSQL the production store; domain code
writes portable SQLAlchemy and asks :func:`is_postgres` only where a bulk path
(COPY, ``ON CONFLICT``) differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import BigInteger, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from isps.config import database_url

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid; BIGINT there
# would not autoincrement. PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA cache_size=-200000")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # no ping before each checkout (a round trip per request): connections are replaced after
        # half an hour, and when a statement finds its connection dropped (the server restarted)
        # SQLAlchemy discards every pooled connection opened before, so only that one request fails
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800)
    return engine


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def default_engine() -> Engine:
    return engine_for(database_url())


def is_postgres(bind) -> bool:
    return bind.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error."""
    with session_factory(engine)() as session:
        with session.begin():
            yield session


__all__ = ["Base", "BigId", "make_engine", "engine_for", "default_engine", "is_postgres",
           "session_factory", "transaction", "postgresql"]
