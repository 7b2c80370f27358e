"""Pydantic models at the API boundary: what every JSON response looks like.

One model per boundary: ``*Public`` is what a client sees of a row, ``Page[T]`` is the envelope
of every list, ``ErrorResponse`` the envelope of every failure. Routes build these explicitly
from the dicts ``labelwise.db.queries`` returns, so a column added to a table never leaks out
by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from labelwise.core.annotations import Source
from labelwise.core.schema import ClassKind, Tool

T = TypeVar("T")

#: How many hex digits of the content hash version an image URL (64 bits: no collisions).
URL_VERSION_DIGITS = 16


class Schema(BaseModel):
    """Base of every response model: unknown keys are dropped, never echoed. Times are UTC
    and always carry their offset."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _times_in_utc(cls, value: Any) -> Any:
        # The database stores UTC; SQLite hands it back without an offset, and an RFC 3339
        # date-time (what the schema promises) must have one.
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def nul_location(value: Any, where: str = "") -> str | None:
    """Where in a JSON value a string (or key) holds a NUL character, e.g. "labels.0.note";
    None if nowhere."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        here = f"{where}.{key}" if where else str(key)
        if isinstance(key, str) and "\x00" in key:
            return here
        if (found := nul_location(item, here)) is not None:
            return found
    return None


class RequestBody(BaseModel):
    """Base of request bodies: unknown keys are an error, and no text may hold a NUL."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        # PostgreSQL stores no NUL in text or JSON: refuse it here, naming the field, rather
        # than fail in the database.
        if (where := nul_location(data)) is not None:
            raise ValueError(f"{where or 'the body'} contains a NUL character (\\u0000); "
                             "remove it")
        return data


class Page(Schema, Generic[T]):
    """One page of a list. Pass ``next_cursor`` back as ``cursor`` to get the next page.

    ``next_cursor`` is null on the last page. Lists are in id order and use keyset pagination,
    so page 10,000 is as fast as page 1 and pages never skip or repeat an item.
    """

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Opaque cursor of the next page; null on the last page."
    )


class ErrorDetail(Schema):
    type: str = Field(description="Error class, e.g. NotFoundError, RequestValidationError.")
    message: str = Field(description="What happened and how to fix it.")
    problems: list[str] = Field(default_factory=list, description="One line per problem.")


class ErrorResponse(Schema):
    """The body of every non-2xx JSON response."""

    error: ErrorDetail


class Health(Schema):
    """Public, so it says nothing about the workspace's contents."""

    status: Literal["ok"] = "ok"
    version: str


class DatasetPublic(Schema):
    id: int
    name: str
    description: str = ""
    created_at: datetime | None = None
    num_assets: int = Field(description="Number of images in the dataset.")


class ClassPublic(Schema):
    """A label class and how many annotations use it."""

    id: int
    name: str
    kind: ClassKind
    tool: Tool | None = Field(
        default=None, description="Drawing tool of object classes; null for categories."
    )
    color: str = Field(description="Display color, e.g. '#1f77b4'.")
    skeleton: dict[str, Any] | None = Field(
        default=None, description="Keypoint names, 0-based edges and flip pairs."
    )
    supercategory: str | None = None
    num_annotations: int = 0


class SplitPublic(Schema):
    name: str
    num_assets: int


class DatasetSummary(DatasetPublic):
    """A dataset with its classes (and annotation counts) and splits."""

    multi_label: bool = Field(description="Whether an image may carry several categories.")
    num_annotations: int
    classes: list[ClassPublic]
    splits: list[SplitPublic]


class AssetPublic(Schema):
    """An image in a dataset. ``image_url`` and ``thumbnail_url`` are cacheable forever."""

    id: int
    dataset_id: int
    path: str = Field(description="Path of the image inside the dataset, '/'-separated.")
    content_hash: str = Field(description="sha256 of the image file's bytes.")
    width: int
    height: int
    format: str = Field(description="File type: jpg, png, webp, bmp, tiff or gif.")
    size_bytes: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)

    @computed_field(description="The original bytes; the URL changes when the content does.")
    @property
    def image_url(self) -> str:
        return f"/api/assets/{self.id}/image?v={self.content_hash[:URL_VERSION_DIGITS]}"

    @computed_field(description="A 256 px WebP thumbnail; pass ?size= for another size.")
    @property
    def thumbnail_url(self) -> str:
        return (
            f"/api/assets/{self.id}/thumbnail?size=256"
            f"&v={self.content_hash[:URL_VERSION_DIGITS]}"
        )


class AnnotationPublic(Schema):
    """A label on an image. Coordinates are in pixels of the original image.

    ``bbox`` is ``[x, y, width, height]``; ``polygons`` a list of flat ``[x1, y1, x2, y2, ...]``
    rings; ``keypoints`` flat ``[x, y, v] * K`` in the class skeleton's order, with visibility
    0 (not labeled), 1 (labeled, hidden) or 2 (visible). A category has no geometry.
    """

    id: int
    asset_id: int
    class_id: int
    label: str = Field(description="Class name.")
    bbox: list[float] | None = None
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = Field(default=None, description="COCO run-length mask.")
    keypoints: list[float] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    iscrowd: bool = False
    source: Source = "human"
    confidence: float | None = Field(default=None, description="Model score in [0, 1].")


class AssetDetail(AssetPublic):
    """An image with all its annotations."""

    annotations: list[AnnotationPublic]


# -- embeddings: similarity, near-duplicates, the map --------------------------------------------
COSINE_DISTANCE = (
    "Cosine distance 1 - cos of the L2-normalised embeddings, in [0, 2]; lower = more similar."
)


class SimilarAsset(Schema):
    """One match of a similarity search."""

    distance: float = Field(description=COSINE_DISTANCE)
    asset: AssetPublic


class SimilarAssets(Schema):
    """The k nearest images, nearest first. ``query_asset_id`` is null for an uploaded image."""

    query_asset_id: int | None = None
    model: str = Field(description="Embedding model searched.")
    size: int = Field(description="Input size in pixels of the embeddings searched.")
    items: list[SimilarAsset]


class DuplicateMember(Schema):
    distance: float = Field(description="Cosine distance to the group's representative.")
    asset: AssetPublic


class DuplicateGroupPublic(Schema):
    """Near-identical images; ``members`` in id order, the representative among them."""

    representative: int = Field(description="Asset id of the most central member.")
    members: list[DuplicateMember]


class DuplicateGroups(Page[DuplicateGroupPublic]):
    """A page of a dataset's near-duplicate groups, largest first."""

    dataset_id: int
    model: str
    size: int
    threshold: float = Field(description="Largest cosine distance between two copies.")
    num_embedded: int = Field(description="Images with an embedding, all looked at.")
    num_groups: int = Field(description="Groups in all pages.")
    num_duplicates: int = Field(
        description="Images in some group that are not its representative, in all pages."
    )


class EmbeddingMapPublic(Schema):
    """Every embedded image of a dataset as a point of the 2-D map."""

    dataset_id: int
    model: str
    size: int
    method: Literal["umap", "pca"] = Field(description="How the map was made.")
    points: list[tuple[int, float, float]] = Field(
        description="[asset_id, x, y] per image, x and y in [0, 1]; nearby points look alike."
    )
