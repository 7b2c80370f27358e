"""Request and response bodies of the Auto-Curate routes (``server/routes/curate.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.embeddings.backbones import BUILTIN, MAX_SIZE, MIN_SIZE
from labelwise.server.schemas import RequestBody

ModelName = Field(BUILTIN, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                  description="Embedding model the dataset was embedded with.")
SplitName = Field(min_length=1, max_length=200, description="Name of the split to create.")


class _Body(RequestBody):
    pass


class ScoreRequest(_Body):
    objects: bool = Field(False, description="Score annotated objects instead of images.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    verify: bool = Field(True, description="Confirm near-duplicates with the pixel check.")
    clusters: int | None = Field(None, ge=1, le=10_000, description="Number of clusters.")
    model: str = ModelName
    size: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)


class CurateRequest(_Body):
    budget: str = Field(min_length=1, max_length=20, description='A count ("500") or a share '
                        'of the pool ("25%").', examples=["25%", "500"])
    name: str = SplitName
    mode: Literal["auto", "unlabeled", "labeled", "objects"] = "auto"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    from_split: str | None = Field(None, max_length=200, description="Choose only in this split.")
    replace: bool = False
    verify: bool = True
    model: str = ModelName
    size: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)


class ValidationRequest(_Body):
    size: int = Field(ge=1, le=10_000_000, description="Images in the validation set.")
    name: str = Field("val", min_length=1, max_length=200)
    exclude: str | None = Field(None, max_length=200, description="Training split to avoid.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    replace: bool = False
    verify: bool = True
    model: str = ModelName
    embed_size: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)


class ReviewRequest(_Body):
    top: int | None = Field(None, ge=1, le=100_000, description="Mark the K most suspicious.")
    objects: bool = False
    min_score: float = Field(0.5, ge=0, le=1, description="Mark items scoring at least this.")


class ScorePublic(BaseModel):
    asset_id: int
    path: str
    cluster: int
    cluster_size: int
    rarity: float
    typicality: float
    duplicate_group: int | None
    mislabel_score: float | None
    suggested_class: str | None
    flagged: bool
    model: str
    size: int


class ScoresPage(BaseModel):
    items: list[ScorePublic]
    next_cursor: str | None


class ScoreRunPublic(BaseModel):
    dataset: str
    model: str
    size: int
    items: int
    objects: bool
    clusters: int
    duplicate_groups: int
    in_duplicate_groups: int
    labeled: int
    likely_mislabeled: int


class ClassCount(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(alias="class")
    pool: int
    selected: int


class SelectionSummary(BaseModel):
    pool: int
    selected: int
    budget: int
    mode: str
    classes: list[ClassCount]
    clusters: int
    clusters_covered: int
    rare_in_pool: int
    rare_selected: int
    duplicate_groups_in_pool: int
    duplicates_selected_twice: int
    likely_mislabeled_selected: int
    excluded_split: str | None = None


class SelectionPublic(BaseModel):
    dataset: str
    split: str
    mode: str
    seed: int
    asset_ids: list[int]
    summary: SelectionSummary


class MislabelItem(BaseModel):
    asset_id: int
    path: str
    annotation_id: int | None = None
    label: str | None
    suggested: str | None
    score: float
    cluster: int
    flagged: bool


class Mislabels(BaseModel):
    items: list[MislabelItem]


class ReviewMarked(BaseModel):
    marked_images: int
    tag: Literal["needs-review"]
