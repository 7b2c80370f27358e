"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from labelwise.db import migrate
from labelwise.db.models import Base


def test_migrations_match_models(workspace):
    with workspace.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_database_is_at_head(workspace):
    assert migrate.current_revision(workspace.engine) == migrate.head_revision()


def test_every_list_has_an_index(workspace):
    insp = inspect(workspace.engine)
    indexed = {
        table: {tuple(ix["column_names"]) for ix in insp.get_indexes(table)}
        | {tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
        for table in ("assets", "asset_tags", "annotations", "splits")
    }
    assert ("dataset_id", "id") in indexed["assets"]
    assert ("dataset_id", "tag", "asset_id") in indexed["asset_tags"]
    assert ("asset_id", "fingerprint") in indexed["annotations"]
    assert ("dataset_id", "class_id") in indexed["annotations"]
    assert ("dataset_id", "name") in indexed["splits"]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_workspace):
    with sqlite_workspace.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_upgrade_is_idempotent(workspace):
    migrate.upgrade(workspace.engine)
    migrate.upgrade(workspace.engine)
    assert migrate.current_revision(workspace.engine) == migrate.head_revision()
