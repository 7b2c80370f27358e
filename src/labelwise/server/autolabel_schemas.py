"""Request and response bodies of the Auto-Label routes (``server/routes/autolabel.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from labelwise.server.schemas import RequestBody, Schema

ModelName = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                  description="Auto-label model name.")
Bucket = Literal["easy", "medium", "hard"]


class TrainRequest(RequestBody):
    name: str = ModelName
    from_split: str | None = Field(None, min_length=1, max_length=200,
                                   description="Train on this split's labels (default: all).")
    from_export: int | None = Field(None, ge=1, le=2**63 - 1,
                                    description="Train on this project export's approved labels.")
    task: Literal["auto", "category", "multilabel", "boxes", "keypoints"] = "auto"
    seed: int = Field(0, ge=0, le=2**31 - 1)


class ApplyRequest(RequestBody):
    model: str = ModelName
    split: str | None = Field(None, min_length=1, max_length=200,
                              description="Pre-label only this split's images.")
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="Default: the latest.")
    engine: Literal["local", "ray"] = "local"


class NextRequest(RequestBody):
    budget: str = Field(min_length=1, max_length=20, description='A count ("100") or a share '
                        'of the unlabeled pool ("5%").', examples=["100", "5%"])
    name: str = Field(min_length=1, max_length=200, description="Name of the split to create.")
    model: str | None = Field(None, min_length=1, max_length=100,
                              description="Model whose uncertainty ranks the images.")
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    replace: bool = False


class AcceptRequest(RequestBody):
    bucket: Bucket = "easy"
    model: str | None = Field(None, min_length=1, max_length=100,
                              description="This model's latest run (default: the latest run).")
    run: int | None = Field(None, ge=1, le=2**63 - 1, description="This run (its id).")
    dry_run: bool = Field(False, description="Only say how many and the expected error rate.")


class RejectRequest(RequestBody):
    asset_ids: list[int] = Field(min_length=1, max_length=10_000,
                                 description="Images whose pending pre-labels are wrong.")
    model: str | None = Field(None, min_length=1, max_length=100)
    run: int | None = Field(None, ge=1, le=2**63 - 1)


class ModelPublic(Schema):
    name: str
    task: str
    dataset_id: int
    dataset: str
    created_at: datetime
    versions: int
    latest_version: int | None
    accuracy: float | None


class ModelList(Schema):
    items: list[ModelPublic]


class VersionPublic(Schema):
    version: int
    path: str
    trained_on: dict[str, Any]
    created_at: datetime
    onnx_url: str


class ModelDetail(ModelPublic):
    version: int = Field(description="The version whose card this is.")
    card: dict[str, Any]
    trained_on: dict[str, Any]
    all_versions: list[VersionPublic]
    runs: int


class TrainResultPublic(Schema):
    name: str
    version: int
    task: str
    dataset: str
    path: str
    trained_on: dict[str, Any]
    card: dict[str, Any]
    warnings: list[str]


class BucketSummary(Schema):
    count: int
    share: float
    expected_error: float | None
    held_out_error: float | None


class ApplyResultPublic(Schema):
    run_id: int
    model: str
    version: int
    task: str
    dataset: str
    split: str | None
    engine: str
    images: int
    labels: int
    skipped_labeled: int
    replaced: int
    tasks_updated: int
    tasks_prelabeled: int
    buckets: dict[str, BucketSummary]
    seconds: float
    warnings: list[str]


class NextBatchPublic(Schema):
    dataset: str
    split: str
    model: str | None
    version: int | None
    budget: int
    pool: int
    labeled: int
    asset_ids: list[int]
    mean_uncertainty_picked: float | None
    mean_uncertainty_pool: float


class RunPublic(Schema):
    id: int
    model: str
    version: int
    split: str | None
    created_at: datetime
    buckets: dict[str, BucketSummary]


class PrelabelLabel(Schema):
    model_config = ConfigDict(populate_by_name=True)

    annotation_id: int
    class_: str = Field(alias="class")
    confidence: float | None
    bbox: list[float] | None
    keypoints: list[float] | None


class QueueItem(Schema):
    asset_id: int
    path: str
    uncertainty: float
    expected_error: float
    bucket: Bucket
    status: str
    labels: list[PrelabelLabel]


class ReviewQueuePage(Schema):
    run: RunPublic
    items: list[QueueItem]
    next_cursor: str | None


class AcceptResult(Schema):
    run: RunPublic
    bucket: Bucket
    count: int = Field(description="Pending pre-labels in the bucket.")
    accepted: int
    expected_error_rate: float | None = Field(description="Mean expected error of them: the "
                                              "share likely wrong.")
    expected_errors: float
    held_out_error_rate: float | None


class RejectResult(Schema):
    run: RunPublic
    rejected: int
    skipped: list[int] = Field(description="Asset ids without a pending pre-label in the run.")
