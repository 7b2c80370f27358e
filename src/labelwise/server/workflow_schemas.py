"""Pydantic models of the workflow API: projects, tasks, labels, review, analytics, exports.

Request bodies forbid unknown keys (a typo is a 422, not silently ignored); responses are built
explicitly from service rows, so a new column never leaks out by accident.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from labelwise.core.schema import ClassKind, Tool
from labelwise.db.queries import MAX_ID
from labelwise.server.schemas import AssetPublic, ClassPublic, ErrorDetail, RequestBody, Schema

ProjectRole = Literal["manager", "reviewer", "labeler"]
TaskStatus = Literal["todo", "in_progress", "submitted", "approved", "rejected", "skipped"]
Version = Field(ge=1, le=2**31 - 1, description="The task version you read; a stale one "
                "answers 409 with the current version.")
Seconds = Field(default=None, ge=0, le=86_400,
                description="Active labeling seconds since your last save or submit.")
#: An id in a request body. Ids are 64-bit: a bigger number names no record (422, not a
#: database overflow).
RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Body(RequestBody):
    """Base of request bodies: unknown keys and NUL characters are an error."""


# -- projects -----------------------------------------------------------------------------------
class ProjectCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    dataset: RecordId | str = Field(description="Dataset name or id.")
    split: str | None = Field(default=None, max_length=200,
                              description="Only this split of the dataset.")
    description: str = Field(default="", max_length=10_000)
    settings: dict[str, Any] = Field(default_factory=dict)
    import_labels: bool = Field(
        default=True, description="Copy the dataset's labels into the tasks as pre-labels.")


class ProjectPublic(Schema):
    id: int
    name: str
    description: str
    dataset_id: int
    split_id: int | None
    schema_id: int
    settings: dict[str, Any]
    created_by: int | None
    created_at: datetime | None
    role: ProjectRole = Field(description="Your role in this project.")


class ProjectDetail(ProjectPublic):
    """A project with its classes and task counts per status."""

    multi_label: bool
    classes: list[ClassPublic]
    tasks: dict[str, int] = Field(description="Tasks per status (labelers: their own only).")


class MemberIn(Body):
    user: RecordId | str = Field(description="User id or username.")
    role: ProjectRole


class MemberPublic(Schema):
    user_id: int
    username: str
    display_name: str
    role: ProjectRole


class ClassCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    kind: ClassKind = "object"
    tool: Tool | None = Field(default="bbox", description="Object classes only.")
    color: str | None = Field(default=None, max_length=16)
    skeleton: str | None = Field(
        default=None, max_length=50, description="Skeleton template name for keypoints.")


class ClassUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    color: str | None = Field(default=None, max_length=16)


class ClassRemoved(Schema):
    class_id: int
    labels_affected: int = Field(description="Labels moved to the target class or deleted.")


class AssignRequest(Body):
    """Either ``asset_ids`` (explicit) or ``spread`` (N unassigned tasks per user)."""

    users: list[RecordId | str] = Field(min_length=1, max_length=1000,
                                   description="User ids or usernames.")
    role: Literal["labeler", "reviewer"] = "labeler"
    asset_ids: list[RecordId] | None = Field(default=None, max_length=100_000)
    spread: int | None = Field(default=None, ge=1, le=1_000_000)


class AssignResult(Schema):
    assigned: dict[str, int] = Field(description="Tasks given, by username.")


# -- tasks and labels -------------------------------------------------------------------------
class TaskPublic(Schema):
    id: int
    project_id: int
    asset_id: int
    status: TaskStatus
    version: int
    assignee_id: int | None
    reviewer_id: int | None
    uncertainty: float | None = Field(description="Auto-label uncertainty; higher = review "
                                      "sooner.")
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    submitted_at: datetime | None
    reviewed_at: datetime | None


class LabelIn(Body):
    """A label as the editor holds it; leave ``id`` out for a new one."""

    id: RecordId | None = None
    class_id: RecordId
    bbox: list[float] | None = Field(default=None, description="[x, y, width, height] px")
    polygons: list[list[float]] | None = None
    rle: dict[str, Any] | None = None
    keypoints: list[float] | None = None
    attributes: dict[str, Any] | None = None
    iscrowd: bool = False


class TaskLabel(Schema):
    id: int
    class_id: int
    label: str
    bbox: list[float] | None
    polygons: list[list[float]] | None
    rle: dict[str, Any] | None
    keypoints: list[float] | None
    attributes: dict[str, Any] | None
    iscrowd: bool
    source: Literal["human", "model"]
    confidence: float | None


class CommentPublic(Schema):
    id: int
    user_id: int | None
    body: str
    created_at: datetime | None


class IssuePublic(Schema):
    id: int
    task_id: int
    annotation_id: int | None
    x: float | None
    y: float | None
    status: Literal["open", "resolved"]
    created_by: int | None
    resolved_by: int | None
    created_at: datetime | None
    resolved_at: datetime | None
    comments: list[CommentPublic]


class TaskDetail(TaskPublic):
    """A task with its image, its current labels and its review issues."""

    asset: AssetPublic
    labels: list[TaskLabel]
    issues: list[IssuePublic]


class NextTask(Schema):
    task: TaskDetail | None = Field(description="Null when the project has no task left for "
                                    "you.")


class SaveLabels(Body):
    version: int = Version
    labels: list[LabelIn] = Field(max_length=10_000)
    active_seconds: float | None = Seconds


class TransitionIn(Body):
    version: int = Version
    active_seconds: float | None = Seconds
    comment: str | None = Field(default=None, max_length=10_000)


class RejectIn(Body):
    version: int = Version
    reason: str = Field(min_length=1, max_length=10_000,
                        description="What the labeler should fix.")


class TaskEventPublic(Schema):
    id: int
    task_id: int
    user_id: int | None
    assignee_id: int | None
    action: str
    from_status: str
    to_status: str
    version: int
    active_seconds: float | None
    cycle_seconds: float | None
    num_labels: int | None
    tool: str | None
    turnaround_seconds: float | None
    payload: dict[str, Any]
    created_at: datetime | None


# -- review -------------------------------------------------------------------------------------
class IssueCreate(Body):
    body: str = Field(min_length=1, max_length=10_000)
    annotation_id: RecordId | None = Field(default=None, description="Anchor: one of the task's "
                                      "labels ...")
    x: float | None = Field(default=None, description="... or a point (x, y) in pixels.")
    y: float | None = None


class CommentIn(Body):
    body: str = Field(min_length=1, max_length=10_000)


class IssueStatusIn(Body):
    status: Literal["open", "resolved"]


# -- analytics ----------------------------------------------------------------------------------
class Progress(Schema):
    total: int
    by_status: dict[str, int]
    done_fraction: float = Field(description="Approved or skipped, over all tasks.")


class ThroughputRow(Schema):
    user_id: int | None
    username: str | None
    day: date
    tasks: int = Field(description="Submits (resubmits included) that day.")
    labels: int


class TimePerLabelRow(Schema):
    tool: str
    submits: int
    labels: int
    median_seconds_per_label: float


class RejectionRow(Schema):
    user_id: int | None
    username: str | None
    reviewed: int
    rejected: int
    rejection_rate: float


class Turnaround(Schema):
    reviews: int
    mean_seconds: float | None
    median_seconds: float | None
    p90_seconds: float | None


class Acceptance(Schema):
    """Model pre-labels in submitted tasks, by what the labeler did with them."""

    total: int
    accepted: int
    edited: int
    rejected: int
    accepted_rate: float
    edited_rate: float
    rejected_rate: float


class Items(Schema):
    """A short list returned whole (analytics rows, members)."""

    items: list[Any]


# -- exports ------------------------------------------------------------------------------------
class ExportCreate(Body):
    format: str = Field(description="coco, yolo, voc, csv or classfolders.")
    approved_only: bool = Field(default=True, description="Only labels of approved tasks.")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Writer options, e.g. {\"task\": \"detect\"} for "
        "yolo.")


class ExportPublic(Schema):
    id: int
    project_id: int
    export_id: int
    format: str
    approved_only: bool
    num_assets: int
    num_annotations: int
    sha256: str
    created_at: datetime | None
    download_url: str


# -- errors -------------------------------------------------------------------------------------
class StaleDetail(ErrorDetail):
    current_version: int = Field(description="The task's version now: reload and retry.")
    current_status: str


class StaleResponse(Schema):
    """409 for a stale version: the error plus the task's current version."""

    error: StaleDetail
