"""``labelwise split``: named subsets of a dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.workspace import open_workspace

app = LabelwiseTyper(help="Named splits (subsets) of a dataset.", no_args_is_help=True)


@app.command("create")
def create(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    name: str = typer.Argument(..., help="Name of the new split."),
    random: float = typer.Option(None, "--random", help="A random fraction of the dataset, e.g. 0.2."),
    seed: int = typer.Option(0, "--seed", help="Seed for --random."),
    tag: str = typer.Option(None, "--tag", help="All assets with this tag."),
    paths: Path = typer.Option(None, "--paths", help="A text file of image paths, one a line."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a split of that name."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Create a split from a random fraction, a tag, or a list of paths."""
    wanted = None
    if paths is not None:
        wanted = [ln.strip() for ln in paths.read_text().splitlines() if ln.strip()]
    with open_workspace(workspace) as ws:
        info = ws.create_split(
            dataset, name, fraction=random, seed=seed, tag=tag, paths=wanted, replace=replace
        )
    console.print(f"[green]split {info['name']}[/]: {info['num_assets']:,} images ({info['how']})")


@app.command("list")
def list_splits(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    workspace: Path | None = workspace_option(),
) -> None:
    """List a dataset's splits."""
    with open_workspace(workspace) as ws:
        summary = ws.dataset_summary(dataset)
    table = Table("split", "images")
    for sp in summary["splits"]:
        table.add_row(sp["name"], f"{sp['num_assets']:,}")
    console.print(table)
