"""``labelwise db``: database schema migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.config import Settings
from labelwise.db import migrate
from labelwise.db.engine import make_engine
from labelwise.workspace import _read_marker

app = LabelwiseTyper(help="Database schema migrations.", no_args_is_help=True)


def _engine(workspace: Path | None):
    settings = Settings(**({"workspace": workspace} if workspace else {}))
    if settings.database_url is None:
        settings.database_url = _read_marker(settings.workspace).get("database_url")
    return make_engine(settings.resolved_database_url)


@app.command("upgrade")
def upgrade(
    revision: str = typer.Argument("head", help="Revision to upgrade to."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Apply migrations (workspaces also do this when they open)."""
    engine = _engine(workspace)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, revision)
    console.print(f"database at revision {migrate.current_revision(engine)} (was {before})")


@app.command("current")
def current(workspace: Path | None = workspace_option()) -> None:
    """Show the database's revision and the newest one this version knows."""
    engine = _engine(workspace)
    console.print(f"current: {migrate.current_revision(engine)}  head: {migrate.head_revision()}")
