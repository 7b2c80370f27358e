"""``labelwise similar | duplicates | embed-map``: search a dataset's embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from labelwise.cli.output import console, workspace_option
from labelwise.embeddings.backbones import BUILTIN
from labelwise.embeddings.verify import DEFAULT_MIN_NCC
from labelwise.errors import ImageError, ValidationError
from labelwise.workspace import open_workspace

MODEL_HELP = "Embedding model (see `labelwise models list`)."
SIZE_HELP = "Input size in pixels the embeddings were computed at (default: the model's)."
#: Largest image file `similar --image` reads.
MAX_IMAGE_BYTES = 50 * 2**20


def _read_image(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ImageError(f"{path}: larger than {MAX_IMAGE_BYTES // 2**20} MB; shrink it")
        return path.read_bytes()
    except FileNotFoundError as err:
        raise ImageError(f"{path}: file not found; check the path") from err
    except IsADirectoryError as err:
        raise ImageError(f"{path}: is a folder, not an image file") from err
    except OSError as err:
        raise ImageError(f"{path}: cannot read it ({err.strerror})") from err


def _print_matches(matches: list[dict], title: str) -> None:
    table = Table("#", "asset", "path", "distance", title=title, title_justify="left")
    for rank, m in enumerate(matches, 1):
        a = m["asset"]
        table.add_row(str(rank), str(a["id"]), escape(a["path"]), f"{m['distance']:.4f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("similar")
    def similar_cmd(
        asset_id: int = typer.Argument(None, help="Asset id to find look-alikes of.", show_default=False),
        k: int = typer.Option(10, "-k", "--k", min=1, max=1000, help="How many to list."),
        image: Path = typer.Option(None, "--image", help="Search with this image file instead of an asset (needs --dataset)."),
        dataset: str = typer.Option(None, "--dataset", "-d", help="Dataset to search with --image."),
        model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
        size: int = typer.Option(None, "--size", help=SIZE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the matches as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """List the images most similar to an asset (or to an image file), by cosine distance."""
        if (asset_id is None) == (image is None) or (image is not None) != (dataset is not None):
            raise ValidationError(
                "give an ASSET_ID, or --image FILE with --dataset NAME; e.g. "
                "`labelwise similar 42` or `labelwise similar --image cat.jpg -d pets`"
            )
        from labelwise.embeddings import search

        with open_workspace(workspace) as ws:
            if image is not None:
                matches = search.similar_to_image(
                    ws, dataset, _read_image(image), k=k, model=model, size=size
                )
                title = f"most similar to {image} in {dataset}"
            else:
                matches = search.similar_to_asset(ws, asset_id, k=k, model=model, size=size)
                title = f"most similar to asset {asset_id}"
        if as_json:
            console.print_json(json.dumps(matches))
            return
        _print_matches(matches, title)

    @app.command("duplicates")
    def duplicates_cmd(
        dataset: str = typer.Argument(..., help="Dataset name or id."),
        threshold: float = typer.Option(
            None, "--threshold", "-t", min=0.0, max=2.0,
            help="Largest cosine distance between candidate copies (default 0.16 with the pixel "
            "check, 0.05 without).", show_default=False,
        ),
        verify: bool = typer.Option(
            True, "--verify/--no-verify",
            help="Confirm candidates by comparing pixels (allows flips, crops, re-encodes).",
        ),
        min_ncc: float = typer.Option(
            DEFAULT_MIN_NCC, "--min-ncc", min=-1.0, max=1.0,
            help="Pixel check: thumbnail correlation a pair needs.",
        ),
        model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
        size: int = typer.Option(None, "--size", help=SIZE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the groups as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Find groups of near-identical images (edited copies, re-encodes, bursts)."""
        from labelwise.embeddings import search

        with open_workspace(workspace) as ws:
            report = search.near_duplicates(
                ws, dataset, threshold=threshold, verify=verify, min_ncc=min_ncc, model=model,
                size=size,
            )
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
            return
        console.print(
            f"[bold]{len(report.groups)}[/] near-duplicate groups in {escape(report.dataset)} "
            f"({report.num_duplicates} copies among {report.num_embedded:,} images, "
            f"cosine distance <= {report.threshold:g})"
        )
        for n, group in enumerate(report.groups, 1):
            table = Table("", "asset", "path", "distance", title=f"group {n}", title_justify="left")
            for m in group["members"]:
                keep = "*" if m["asset_id"] == group["representative"] else ""
                table.add_row(keep, str(m["asset_id"]), escape(m["asset"]["path"]),
                              f"{m['distance']:.4f}")
            console.print(table)
        if report.groups:
            console.print("[dim]* the most central image of each group[/]")

    @app.command("embed-map")
    def embed_map_cmd(
        dataset: str = typer.Argument(..., help="Dataset name or id."),
        method: str = typer.Option("umap", "--method", help="umap (default) or pca."),
        seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same map."),
        model: str = typer.Option(BUILTIN, "--model", "-m", help=MODEL_HELP),
        size: int = typer.Option(None, "--size", help=SIZE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the points as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Compute the 2-D map of a dataset's embeddings for the web app (and store it)."""
        from labelwise.embeddings import search

        with open_workspace(workspace) as ws:
            result = search.compute_map(
                ws, dataset, method=method, model=model, size=size, seed=seed
            )
        if as_json:
            console.print_json(json.dumps({
                "dataset_id": result.dataset_id, "model": result.model, "size": result.size,
                "method": result.method, "points": result.as_rows(),
            }))
            return
        console.print(
            f"[green]mapped[/] {len(result.ids):,} images of dataset {escape(dataset)} with "
            f"{result.method} ({result.model}, {result.size} px); the web app's map shows it"
        )
