"""``labelwise init``: create a workspace."""

from __future__ import annotations

from pathlib import Path

import typer

import labelwise
from labelwise.cli.output import console


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        path: Path = typer.Argument(Path("."), help="Folder for the workspace (created if missing)."),
        database_url: str = typer.Option(
            None, "--database-url", envvar="LABELWISE_DATABASE_URL",
            help="Database URL; default a SQLite file in the workspace.",
        ),
        storage_url: str = typer.Option(
            None, "--storage-url", envvar="LABELWISE_STORAGE_URL",
            help="Blob store: a folder or fsspec URL; default <workspace>/blobs.",
        ),
    ) -> None:
        """Create a workspace: a database (SQLite in WAL mode by default) and a blob folder."""
        with labelwise.init(path, database_url=database_url, storage_url=storage_url) as ws:
            console.print(f"[green]workspace ready[/] at {ws.path}")
            console.print(f"  database: {ws.engine.url.render_as_string(hide_password=True)}")
            console.print(f"  storage:  {ws.store.url}")
