"""The registry of dataset formats: the CLI, the API and the services pick them by name.

Each format module provides:

- ``read_<fmt>(source: Path, *, images: Path | None = None, **options) -> DatasetDraft`` that
  only parses and converts (paths relative to ``draft.images_root``; it does not open images);
- ``write_<fmt>(draft, dest: Path, **options) -> WriteResult`` that writes the annotation
  files only (the exporter then copies images to ``dest / images_dir(options) / record.path``;
  a writer may change ``record.path`` to place an image elsewhere, e.g. under its class);
- optionally ``images_dir(options) -> str`` when that folder depends on the options.
"""

from __future__ import annotations

import importlib

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
    """A format by name. Its module is imported only when the format is used."""

    name: str
    description: str
    module: str
    reader: str
    writer: str | None
    images_subdir: str = ""

    def _module(self):
        return importlib.import_module(f"labelwise.io.{self.module}")

    @property
    def read(self) -> Callable[..., DatasetDraft]:
        return getattr(self._module(), self.reader)

    @property
    def write(self) -> Callable[..., WriteResult] | None:
        return getattr(self._module(), self.writer) if self.writer else None

    def images_dir(self, options: dict[str, Any]) -> str:
        """Folder under the export root where images go (a module may compute it)."""
        custom = getattr(self._module(), "images_dir", None)
        return custom(options) if callable(custom) else self.images_subdir


FORMATS: dict[str, FormatSpec] = {
    s.name: s
    for s in [
        FormatSpec("folder", "a folder of images, searched recursively (no labels)",
                   "folder", "read_folder", None),
        FormatSpec("classfolders", "one subfolder per class: categorization labels",
                   "folder", "read_class_folders", "write_class_folders"),
        FormatSpec("coco", "COCO JSON: boxes, polygons, RLE, keypoints, image categories",
                   "coco", "read_coco", "write_coco", "images"),
        FormatSpec("yolo", "YOLO txt labels with data.yaml: detect, segment, pose",
                   "yolo", "read_yolo", "write_yolo", "images"),
        FormatSpec("voc", "Pascal VOC XML: boxes", "voc", "read_voc", "write_voc", "JPEGImages"),
        FormatSpec("csv", "CSV rows of path,label[,label...] for categorization",
                   "csv", "read_csv", "write_csv", "images"),
    ]
}


def get_format(name: str, *, writable: bool = False) -> FormatSpec:
    """The format called ``name``; unknown names list the choices."""
    choices = sorted(n for n, s in FORMATS.items() if s.writer or not writable)
    spec = FORMATS.get(name.lower())
    if spec is None or (writable and spec.writer is None):
        verb = "export" if writable else "import"
        raise LabelwiseError(f"cannot {verb} format {name!r}; choose one of {', '.join(choices)}")
    return spec
