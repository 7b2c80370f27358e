"""``labelwise serve``: the web app and REST API."""

from __future__ import annotations

from pathlib import Path

import typer

from labelwise.cli.output import console, workspace_option
from labelwise.workspace import open_workspace


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: str = typer.Option(None, "--host", envvar="LABELWISE_HOST", help="Bind address (default 127.0.0.1)."),
        port: int = typer.Option(None, "--port", envvar="LABELWISE_PORT", help="Port (default 8000)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (use PostgreSQL for more than 1)."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Serve the web app and the REST API (OpenAPI schema at /api/openapi.json)."""
        from labelwise.server import serve

        with open_workspace(workspace) as ws:  # fail early, with advice, if it cannot open
            settings = ws.settings
        if host:
            settings.host = host
        if port:
            settings.port = port
        if workers > 1 and settings.is_sqlite:
            console.print("[yellow]note:[/] several workers on SQLite serialise their writes; "
                          "PostgreSQL scales better")
        console.print(f"serving {settings.workspace} on http://{settings.host}:{settings.port}")
        serve(settings, workers=workers)
