"""``labelwise schema``: a dataset's classes, colours and keypoint skeletons."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from labelwise.cli.output import LabelwiseTyper, console, workspace_option
from labelwise.core.schema import SKELETON_TEMPLATES
from labelwise.db import queries
from labelwise.db.schemas import set_multi_label
from labelwise.errors import ValidationError
from labelwise.workspace import open_workspace

app = LabelwiseTyper(help="Label schemas: classes, tools and keypoint skeletons.", no_args_is_help=True)


@app.command("show")
def show(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    workspace: Path | None = workspace_option(),
) -> None:
    """List a dataset's classes with their ids, tools, colours and skeletons."""
    with open_workspace(workspace) as ws:
        s = ws.dataset_summary(dataset)
    console.print(f"[bold]{s['name']}[/]: categorization is "
                  f"{'multi-label' if s['multi_label'] else 'single-label'}")
    table = Table("id", "class", "kind", "tool", "colour", "skeleton")
    for c in s["classes"]:
        sk = c.get("skeleton")
        desc = ""
        if sk:
            desc = f"{len(sk['keypoints'])} points, {len(sk['edges'])} edges"
            desc += f" ({sk['template']})" if sk.get("template") else ""
        table.add_row(str(c["id"]), c["name"], c["kind"], c["tool"] or "", c["color"], desc)
    console.print(table)


@app.command("add")
def add(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    name: str = typer.Argument(..., help="Class name."),
    kind: str = typer.Option("object", "--kind", help="category (image-level) or object."),
    tool: str = typer.Option("bbox", "--tool", help="Objects: bbox, polygon or keypoints."),
    skeleton: str = typer.Option(None, "--skeleton", help="Keypoints: a template, see `schema templates`."),
    color: str = typer.Option(None, "--color", help="Colour as #RRGGBB (default: from the palette)."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Add a class to a dataset's schema."""
    if tool == "keypoints" and kind == "object" and not skeleton:
        raise ValidationError(
            f"a keypoints class needs --skeleton; choose one of {', '.join(SKELETON_TEMPLATES)}"
        )
    with open_workspace(workspace) as ws:
        row = ws.add_class(dataset, name, kind=kind, tool=tool, skeleton=skeleton, color=color)
    console.print(f"[green]added[/] {row['kind']} class {row['name']!r} (id {row['id']})")


@app.command("multi-label")
def multi_label(
    dataset: str = typer.Argument(..., help="Dataset name or id."),
    enabled: bool = typer.Argument(..., help="true: several categories per image; false: one."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Switch categorization between single- and multi-label."""
    with open_workspace(workspace) as ws, ws.session() as s, s.begin():
        set_multi_label(s, queries.get_dataset(s, dataset), enabled)
    console.print(f"categorization is now {'multi' if enabled else 'single'}-label")


@app.command("templates")
def templates() -> None:
    """List the built-in keypoint skeletons."""
    table = Table("template", "points", "edges", "flip pairs", "first points")
    for name, sk in SKELETON_TEMPLATES.items():
        table.add_row(name, str(len(sk)), str(len(sk.edges)), str(len(sk.flip_pairs)),
                      ", ".join(sk.keypoints[:5]) + ", ...")
    console.print(table)
