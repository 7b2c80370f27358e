"""The registry of dataset formats: the CLI, the API and the services pick them by name.

Each format module provides:

- ``read_<fmt>(source: Path, *, images: Path | None = None, **options) -> DatasetDraft`` that
  only parses and converts (paths relative to ``draft.images_root``; it does not open images);
- ``write_<fmt>(draft, dest: Path, **options) -> WriteResult`` that writes the annotation
  files only (the exporter copies images to ``dest / images_dir(options) / record.path``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelwise.core.annotations import DatasetDraft
from labelwise.errors import LabelwiseError


@dataclass
class WriteResult:
    """What a writer wrote and what it had to leave out (kind -> count, with the reason)."""

    files: list[Path] = field(default_factory=list)
    num_images: int = 0
    num_annotations: int = 0
    skipped: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class FormatSpec:
    name: str
    description: str
    read: Callable[..., DatasetDraft]
    write: Callable[..., WriteResult] | None
    images_dir: Callable[[dict[str, Any]], str]


def _load() -> dict[str, FormatSpec]:
    from labelwise.io import coco, csv, folder, voc, yolo

    specs = [
        FormatSpec("folder", "a folder of images, searched recursively (no labels)",
                   folder.read_folder, None, lambda o: ""),
        FormatSpec("classfolders", "one subfolder per class: categorization labels",
                   folder.read_class_folders, folder.write_class_folders, lambda o: ""),
        FormatSpec("coco", "COCO JSON: boxes, polygons, RLE, keypoints, image categories",
                   coco.read_coco, coco.write_coco, lambda o: "images"),
        FormatSpec("yolo", "YOLO txt labels with data.yaml: detect, segment, pose",
                   yolo.read_yolo, yolo.write_yolo, yolo.images_dir),
        FormatSpec("voc", "Pascal VOC XML boxes", voc.read_voc, voc.write_voc,
                   lambda o: "JPEGImages"),
        FormatSpec("csv", "CSV rows of path,label[,label...] for categorization",
                   csv.read_csv, csv.write_csv, lambda o: "images"),
    ]
    return {s.name: s for s in specs}


_FORMATS: dict[str, FormatSpec] | None = None


def formats() -> dict[str, FormatSpec]:
    global _FORMATS
    if _FORMATS is None:
        _FORMATS = _load()
    return _FORMATS


def get_format(name: str, *, writable: bool = False) -> FormatSpec:
    """The format called ``name``; unknown names list the choices."""
    specs = formats()
    choices = sorted(n for n, s in specs.items() if s.write or not writable)
    spec = specs.get(name.lower())
    if spec is None or (writable and spec.write is None):
        verb = "export" if writable else "import"
        raise LabelwiseError(f"cannot {verb} format {name!r}; choose one of {', '.join(choices)}")
    return spec
