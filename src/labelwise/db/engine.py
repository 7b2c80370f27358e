"""Engines and sessions for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import WorkspaceError


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
            cur.close()

        return engine
    # A server request holds one connection while it runs. 20 kept per process, so a busy
    # worker does not close and reopen connections (overflow ones are closed on return: a
    # new PostgreSQL backend each time); 10 more in a burst. Two workers: at most 60 of
    # PostgreSQL's default max_connections of 100, the rest left to the CLI and jobs.
    engine = create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=10)
    try:
        with engine.connect():
            pass
    except OperationalError as err:
        safe = parsed.render_as_string(hide_password=True)
        raise WorkspaceError(
            f"cannot connect to the database {safe}: {err.orig}. "
            "Check that the server runs and LABELWISE_DATABASE_URL is right."
        ) from err
    return engine


#: How every session is configured; rows stay readable after their transaction commits.
SESSION_OPTIONS = {"expire_on_commit": False}


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, **SESSION_OPTIONS)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
