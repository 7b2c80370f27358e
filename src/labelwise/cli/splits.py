"""``labelwise split``: named subsets of a dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.db import queries
from labelwise.db.models import AssetRow
from labelwise.db.splits import create_split, random_asset_ids, tagged_asset_ids
from labelwise.errors import LabelwiseError
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
    if sum(x is not None for x in (random, tag, paths)) != 1:
        raise LabelwiseError("give exactly one of --random, --tag or --paths")
    with open_workspace(workspace) as ws, ws.session() as s, s.begin():
        ds = queries.get_dataset(s, dataset)
        if random is not None:
            ids = random_asset_ids(s, ds, fraction=random, seed=seed)
            how = f"random {random:g} (seed {seed})"
        elif tag is not None:
            ids, how = tagged_asset_ids(s, ds, tag), f"tag {tag}"
        else:
            wanted = [ln.strip() for ln in paths.read_text().splitlines() if ln.strip()]
            by_path = dict(
                s.execute(
                    select(AssetRow.path, AssetRow.id).where(AssetRow.dataset_id == ds.id)
                )
            )
            missing = [p for p in wanted if p not in by_path]
            if missing:
                raise LabelwiseError(
                    f"{paths}: {len(missing)} path(s) are not in dataset {ds.name!r}",
                    problems=missing,
                )
            ids, how = [by_path[p] for p in wanted], f"paths from {paths}"
        row = create_split(s, ds, name, ids, description=how, replace=replace)
        console.print(f"[green]split {row.name}[/]: {len(set(ids)):,} images ({how})")


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
