"""``labelwise demo``: a workspace with a real dataset, summarised, then served."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer
from rich.markup import escape

import labelwise
from labelwise.cli.datasets import print_summary
from labelwise.cli.output import console, progress_bars
from labelwise.db import queries
from labelwise.db.splits import create_split, random_asset_ids
from labelwise.samples import write_fashion_mnist_folders
from labelwise.workflow import accounts

DATASET = "fashion-mnist"
OWNER = "admin"


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        path: Path = typer.Argument(Path("demo-workspace"), help="Workspace folder for the demo."),
        images: int = typer.Option(2000, "--images", min=10, max=70000, help="How many Fashion-MNIST images."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the web server afterwards."),
        port: int = typer.Option(8000, "--port", help="Port for the web server."),
    ) -> None:
        """Create a workspace, import Fashion-MNIST (bundled with the OS), summarise, serve."""
        ws = labelwise.init(path)
        source = write_fashion_mnist_folders(ws.path / "sources" / DATASET, n=images)
        console.print(f"[bold]1.[/] wrote {images} Fashion-MNIST images to {source} (one folder a class)")
        with progress_bars() as progress:
            report = ws.import_dataset("classfolders", source, dataset=DATASET, progress=progress)
        console.print(
            f"[bold]2.[/] imported: {report.assets_added} new images, "
            f"{report.annotations_added} labels ({report.assets_existing} images already there)"
        )
        with ws.session() as s, s.begin():
            ds = queries.get_dataset(s, DATASET)
            if not any(sp.name == "val" for sp in _splits(s, ds)):
                ids = random_asset_ids(s, ds, fraction=0.2, seed=0)
                create_split(s, ds, "val", ids, description="random 20% (seed 0)")
        console.print("[bold]3.[/] summary:")
        print_summary(ws.dataset_summary(DATASET))
        _first_owner(ws)
        settings = ws.settings
        ws.close()
        if serve:
            from labelwise.server import serve as run_server

            settings.port = port
            console.print(f"[bold]4.[/] web app on http://{settings.host}:{port}  (Ctrl+C stops)")
            run_server(settings)


def _first_owner(ws: labelwise.Workspace) -> None:
    """An owner ``admin`` with a random password, printed this once; only in a workspace
    without users (a rerun keeps the accounts people made)."""
    with ws.session() as s:
        if accounts.count_users(s):
            console.print("    sign in with your existing account (`labelwise user list`)")
            return
        password = secrets.token_urlsafe(12)
        accounts.create_user(s, OWNER, password, role="owner", display_name="Demo owner",
                             policy=accounts.AuthPolicy.from_settings(ws.settings))
    console.print(
        f"    sign in as [bold]{OWNER}[/] with password [bold]{escape(password)}[/] "
        "(shown only now; change it with `labelwise user passwd admin`)",
        highlight=False,
    )


def _splits(session, ds):
    from sqlalchemy import select

    from labelwise.db.models import SplitRow

    return session.scalars(select(SplitRow).where(SplitRow.dataset_id == ds.id)).all()
