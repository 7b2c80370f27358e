"""Annotations and images as plain data: what format readers produce and writers consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from labelwise.core.geometry import BBox
from labelwise.core.schema import LabelSchema

Source = Literal["human", "model"]
SOURCES: tuple[str, ...] = ("human", "model")


@dataclass(slots=True)
class Annotation:
    """One label on an image.

    With no geometry it is an image-level category. Otherwise it is an object with any of a
    box, polygons (or an RLE mask) and keypoints, as a COCO annotation may carry all three.
    Coordinates are pixels; see ``labelwise.core.geometry`` for the conventions.
    """

    label: str
    bbox: BBox | None = None
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    keypoints: list[float] | None = None
    attributes: dict[str, Any] | None = None
    source: Source = "human"
    confidence: float | None = None
    iscrowd: bool = False
    area: float | None = None

    @property
    def kind(self) -> str:
        if self.keypoints is not None:
            return "keypoints"
        if self.polygons is not None or self.rle is not None:
            return "polygon"
        if self.bbox is not None:
            return "bbox"
        return "category"

    @property
    def is_category(self) -> bool:
        return self.kind == "category"


@dataclass(slots=True)
class ImageRecord:
    """An image as a format describes it. ``path`` is relative to the images folder."""

    path: str
    width: int | None = None
    height: int | None = None
    annotations: list[Annotation] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    external_id: int | str | None = None
    split: str | None = None  # a named split the format put it in (YOLO's train/val)
    # Where in the source this image was described, for error messages ("images[12]").
    origin: str | None = None


@dataclass(slots=True)
class DatasetDraft:
    """Everything one import brings: the schema and the images with their annotations."""

    schema: LabelSchema
    images: list[ImageRecord]
    source: str = ""  # the file or folder it came from, for messages
    images_root: Path | None = None  # the folder that image paths are relative to
    info: dict[str, Any] = field(default_factory=dict)
