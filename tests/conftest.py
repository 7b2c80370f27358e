"""Shared fixtures: real workspaces on SQLite and on the local PostgreSQL server.

Database tests take the ``workspace`` fixture and run once per backend. PostgreSQL comes from
LABELWISE_TEST_POSTGRES_URL (default: the local server, user postgres). When it is unreachable
the PostgreSQL runs are skipped locally, and the whole run fails in CI (CI=true).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import labelwise
from labelwise.db.models import Base

PG_ADMIN_URL = os.environ.get(
    "LABELWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_reachable() -> str | None:
    import psycopg

    url = make_url(PG_ADMIN_URL)
    try:
        with psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, dbname=url.database,
            password=url.password, connect_timeout=5,
        ):
            return None
    except psycopg.Error as err:
        return str(err).strip()


_PG_ERROR = _pg_reachable()


def pytest_sessionstart(session):
    if _PG_ERROR and IN_CI:
        raise pytest.UsageError(
            f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string(hide_password=True)} is "
            f"unreachable in CI: {_PG_ERROR}. Start it with `pg_ctlcluster "
            "--skip-systemctl-redirect $(ls /etc/postgresql) main start`."
        )


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> str:
    """A fresh database for this test worker, migrated once."""
    if _PG_ERROR:
        pytest.skip(f"PostgreSQL unreachable: {_PG_ERROR}")
    import psycopg

    admin = make_url(PG_ADMIN_URL)
    name = f"labelwise_test_{worker_id}_{os.getpid()}"
    conninfo = dict(host=admin.host, port=admin.port or 5432, user=admin.username,
                    dbname=admin.database, password=admin.password)
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def _truncate_all(ws: labelwise.Workspace) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with ws.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request) -> str:
    return request.param


@pytest.fixture
def workspace(backend: str, tmp_path: Path, request) -> labelwise.Workspace:
    """An empty workspace on each backend (blob store in a temporary folder)."""
    if backend == "sqlite":
        ws = labelwise.init(tmp_path / "ws")
    else:
        url = request.getfixturevalue("pg_url")
        ws = labelwise.init(tmp_path / "ws", database_url=url)
        _truncate_all(ws)
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> labelwise.Workspace:
    """An empty SQLite workspace, for tests where the backend does not matter."""
    ws = labelwise.init(tmp_path / "ws")
    yield ws
    ws.close()
