"""``labelwise embed``: compute and cache a dataset's image (or object) embeddings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.markup import escape

from labelwise.cli.output import console, progress_bars, workspace_option
from labelwise.embeddings.backbones import BUILTIN
from labelwise.embeddings.engines import ENGINES
from labelwise.workspace import open_workspace

SHOWN_FAILURES = 20


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed_cmd(
        dataset: str = typer.Argument(..., help="Dataset name or id."),
        model: str = typer.Option(BUILTIN, "--model", "-m", help="Embedding model (see `labelwise models list`)."),
        size: int = typer.Option(None, "--size", help="Square input size in pixels (default: the model's, 224). 112 is about 4x faster."),
        engine: str = typer.Option("local", "--engine", help="Where to compute: " + " or ".join(ENGINES) + "."),
        ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster address (with --engine ray); default a local Ray."),
        batch_size: int = typer.Option(32, "--batch-size", help="Images per inference batch."),
        objects: bool = typer.Option(False, "--objects", help="Embed annotated objects (crops with a 10% margin) instead of whole images."),
        split: str = typer.Option(None, "--split", help="Only this split of the dataset."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Compute the embeddings a dataset lacks; cached ones are reused, so reruns are cheap."""
        if engine == "ray":  # Ray Data narrates every run at INFO; keep the bar readable
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        with open_workspace(workspace) as ws, progress_bars(unit="images") as progress:
            report = ws.embed(
                dataset, model=model, size=size, engine=engine, ray_address=ray_address,
                batch_size=batch_size, objects=objects, split=split, progress=progress,
            )
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
            return
        what = "objects" if objects else "images"
        console.print(
            f"[green]embedded[/] {report.embedded:,} new {what} of [bold]{escape(report.dataset)}"
            f"[/] with {report.model} at {report.size} px ({report.cached:,} already cached) in "
            f"{report.seconds:.1f} s: {report.images_per_second:,.0f} {what}/s on {report.engine}"
        )
        if report.failed:
            console.print(f"[yellow]not embedded[/]: {len(report.failed)} {what}")
            for f in report.failed[:SHOWN_FAILURES]:
                ann = f" annotation {f.annotation_id}" if f.annotation_id is not None else ""
                console.print(f"  asset {f.asset_id}{ann} {f.path}: {f.reason}", markup=False,
                              highlight=False)
            if len(report.failed) > SHOWN_FAILURES:
                console.print(f"  ... and {len(report.failed) - SHOWN_FAILURES} more (--json lists all)")
