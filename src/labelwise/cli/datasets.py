"""``labelwise import | export | datasets | show | assets | formats``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from labelwise.cli.output import console, progress_bars, workspace_option
from labelwise.io.formats import FORMATS
from labelwise.workspace import open_workspace

FORMAT_HELP = "Format: " + ", ".join(FORMATS) + " (see `labelwise formats`)."


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_cmd(
        fmt: str = typer.Argument(..., metavar="FORMAT", help=FORMAT_HELP),
        source: Path = typer.Argument(..., help="The file or folder to import."),
        dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset to import into (created if missing)."),
        images: Path = typer.Option(None, "--images", help="Images folder (COCO, CSV); default next to the file."),
        task: str = typer.Option(None, "--task", help="YOLO: detect, segment or pose (default: detected)."),
        split: str = typer.Option(None, "--split", help="YOLO: import only this split (train, val, test)."),
        tag: list[str] = typer.Option(None, "--tag", help="folder: tag every image (repeatable)."),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Decode every image fully to catch truncated files."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Import a dataset: all of it or, if anything is wrong, none of it."""
        options = {k: v for k, v in {"task": task, "split": split, "tags": tag or None}.items() if v}
        with open_workspace(workspace) as ws, progress_bars() as progress:
            report = ws.import_dataset(
                fmt, source, dataset=dataset, images=images, verify_images=verify,
                progress=progress, **options,
            )
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
            return
        console.print(
            f"[green]imported[/] {source} into dataset [bold]{report.dataset}[/]: "
            f"{report.assets_added} new images ({report.assets_existing} already there), "
            f"{report.annotations_added} new annotations ({report.annotations_existing} already "
            f"there) in {report.seconds:.1f} s"
        )
        if report.classes_added:
            console.print(f"  new classes: {', '.join(report.classes_added)}")
        for name, n in report.splits.items():
            console.print(f"  split {name}: +{n} images")

    @app.command("export")
    def export_cmd(
        dataset: str = typer.Argument(..., help="Dataset name or id."),
        fmt: str = typer.Argument(..., metavar="FORMAT", help=FORMAT_HELP),
        dest: Path = typer.Argument(..., help="Folder to write into."),
        split: str = typer.Option(None, "--split", help="Export only this split."),
        images: bool = typer.Option(True, "--images/--no-images", help="Copy the images too."),
        task: str = typer.Option(None, "--task", help="YOLO: detect, segment or pose."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Export a dataset or one split; a frozen snapshot is kept in the workspace."""
        options = {"task": task} if task else {}
        with open_workspace(workspace) as ws, progress_bars() as progress:
            report = ws.export_dataset(
                dataset, fmt, dest, split=split, copy_images=images, progress=progress, **options
            )
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
            return
        console.print(
            f"[green]exported[/] {report.num_images} images, {report.num_annotations} "
            f"annotations to {dest} as {report.format} in {report.seconds:.1f} s "
            f"(snapshot #{report.export_id})"
        )
        for reason, n in report.skipped.items():
            console.print(f"  [yellow]left out[/] {n}: {reason}")

    @app.command("datasets")
    def datasets_cmd(workspace: Path | None = workspace_option()) -> None:
        """List the workspace's datasets."""
        with open_workspace(workspace) as ws:
            rows = ws.datasets()
        table = Table("id", "name", "images", "created")
        for d in rows:
            table.add_row(str(d["id"]), d["name"], f"{d['num_assets']:,}", d["created_at"] or "")
        console.print(table)

    @app.command("show")
    def show_cmd(
        dataset: str = typer.Argument(..., help="Dataset name or id."),
        as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """Summarise a dataset: images, classes with annotation counts, splits."""
        with open_workspace(workspace) as ws:
            s = ws.dataset_summary(dataset)
        if as_json:
            console.print_json(json.dumps(s))
            return
        print_summary(s)

    @app.command("assets")
    def assets_cmd(
        dataset: str = typer.Argument(..., help="Dataset name or id."),
        tag: str = typer.Option(None, "--tag", help="Only assets with this tag."),
        split: str = typer.Option(None, "--split", help="Only assets in this split."),
        limit: int = typer.Option(20, "--limit", min=1, max=1000, help="Page size."),
        cursor: str = typer.Option(None, "--cursor", help="Continue after a previous page."),
        workspace: Path | None = workspace_option(),
    ) -> None:
        """List a dataset's assets, a page at a time."""
        with open_workspace(workspace) as ws:
            page = ws.list_assets(dataset, tag=tag, split=split, limit=limit, cursor=cursor)
        table = Table("id", "path", "size", "format", "tags")
        for a in page["items"]:
            table.add_row(str(a["id"]), a["path"], f"{a['width']}x{a['height']}", a["format"],
                          ", ".join(a["tags"]))
        console.print(table)
        if page["next_cursor"]:
            console.print(f"next page: --cursor {page['next_cursor']}")

    @app.command("formats")
    def formats_cmd() -> None:
        """List the dataset formats and what they can do."""
        table = Table("format", "import", "export", "what")
        for spec in FORMATS.values():
            table.add_row(spec.name, "yes", "yes" if spec.writer else "-", spec.description)
        console.print(table)


def print_summary(s: dict) -> None:
    console.print(
        f"[bold]{s['name']}[/] (id {s['id']}): {s['num_assets']:,} images, "
        f"{s['num_annotations']:,} annotations"
        + (" [dim](multi-label)[/]" if s.get("multi_label") else "")
    )
    if s["classes"]:
        table = Table("class", "kind", "tool", "annotations")
        for c in s["classes"]:
            tool = c["tool"] or ""
            if c.get("skeleton"):
                tool += f" ({len(c['skeleton']['keypoints'])} points)"
            table.add_row(f"[{c['color']}]■[/] {c['name']}", c["kind"], tool,
                          f"{c['num_annotations']:,}")
        console.print(table)
    for sp in s["splits"]:
        console.print(f"  split {sp['name']}: {sp['num_assets']:,} images")
