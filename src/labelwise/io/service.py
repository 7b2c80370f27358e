"""Import and export services: the one place the CLI, API and Python API go through."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelwise.io.exporter import ExportReport, export_draft
from labelwise.io.formats import get_format
from labelwise.io.importer import ImportReport, Progress, import_draft

if TYPE_CHECKING:
    from labelwise.workspace import Workspace


def import_dataset(
    ws: Workspace,
    fmt: str,
    source: str | Path,
    *,
    dataset: str,
    images: str | Path | None = None,
    verify_images: bool | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> ImportReport:
    """Read ``source`` in format ``fmt`` and import it into ``dataset`` (all or nothing)."""
    spec = get_format(fmt)
    draft = spec.read(Path(source), images=Path(images) if images else None, **options)
    return import_draft(
        ws, draft, dataset=dataset, fmt=spec.name, verify_images=verify_images, progress=progress
    )


def export_dataset(
    ws: Workspace,
    dataset: str,
    fmt: str,
    dest: str | Path,
    *,
    split: str | None = None,
    copy_images: bool = True,
    progress: Progress | None = None,
    **options: Any,
) -> ExportReport:
    """Write ``dataset`` (or one ``split``) to ``dest`` in ``fmt`` and keep a frozen snapshot."""
    spec = get_format(fmt, writable=True)
    if spec.name == "yolo" and split and "split_name" not in options:
        options["split_name"] = split  # images/val, labels/val for an exported val split
    return export_draft(
        ws, dataset, spec, Path(dest), split=split, copy_images=copy_images,
        progress=progress, options=options,
    )
