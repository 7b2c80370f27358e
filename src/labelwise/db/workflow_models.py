"""The team workflow: projects, members, tasks and their audit log, task labels, review issues.

A project works on a dataset (or one split of it) with its own copy of the label schema. It
has one task per asset; a task's labels live in ``task_annotations`` (project-scoped, so work
in progress never touches the dataset's imported labels). Every status change bumps
``tasks.version`` and writes a ``task_events`` row: the audit log the analytics read.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from labelwise.db.models import Base, BigId, Json

TASK_STATUSES = ("todo", "in_progress", "submitted", "approved", "rejected", "skipped")
PROJECT_ROLES = ("manager", "reviewer", "labeler")


def _created() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _user_fk(*, ondelete: str = "SET NULL") -> Any:
    return mapped_column(ForeignKey("users.id", ondelete=ondelete), nullable=True)


class ProjectRow(Base):
    """A labeling project on a dataset or one of its splits."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    split_id: Mapped[int | None] = mapped_column(ForeignKey("splits.id", ondelete="SET NULL"))
    schema_id: Mapped[int] = mapped_column(ForeignKey("label_schemas.id"), index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_by: Mapped[int | None] = _user_fk()
    created_at: Mapped[datetime] = _created()


class ProjectMemberRow(Base):
    """A user's role in one project: manager, reviewer or labeler."""

    __tablename__ = "project_members"
    __table_args__ = (
        CheckConstraint("role IN ('manager', 'reviewer', 'labeler')", name="role"),
        Index("ix_project_members_user_id_project_id", "user_id", "project_id"),
        Index("ix_project_members_project_id_role_user_id", "project_id", "role", "user_id"),
    )

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created()


class TaskRow(Base):
    """The work on one asset in one project. ``version`` grows with every change."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "asset_id"),
        CheckConstraint(
            "status IN ('todo', 'in_progress', 'submitted', 'approved', 'rejected', 'skipped')",
            name="status",
        ),
        Index("ix_tasks_project_id_status_assignee_id_id", "project_id", "status", "assignee_id",
              "id"),
        Index("ix_tasks_project_id_assignee_id_status_id", "project_id", "assignee_id", "status",
              "id"),
        Index("ix_tasks_project_id_status_uncertainty_id", "project_id", "status", "uncertainty",
              "id"),
        Index("ix_tasks_project_id_reviewer_id_status", "project_id", "reviewer_id", "status"),
        Index("ix_tasks_asset_id_assignee_id", "asset_id", "assignee_id"),
        Index("ix_tasks_assignee_id", "assignee_id"),
        Index("ix_tasks_reviewer_id", "reviewer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="todo")
    version: Mapped[int] = mapped_column(Integer, default=1)
    assignee_id: Mapped[int | None] = _user_fk()
    reviewer_id: Mapped[int | None] = _user_fk()
    # Auto-label uncertainty in [0, 1] (higher = review sooner); NULL when no model labeled it.
    uncertainty: Mapped[float | None] = mapped_column(Float)
    # Active labeling seconds reported since the last submit; moved into the submit event.
    pending_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TaskEventRow(Base):
    """One change of a task: the audit log. Analytics aggregate these rows.

    ``active_seconds`` is the labeling time the client reported with this change. Submit
    events also carry the cycle's total (``cycle_seconds``), the number of labels, their main
    tool and ``seconds_per_label``; approve/reject events carry ``turnaround_seconds`` (time
    since submit). ``assignee_id`` is the task's labeler when the event happened.
    """

    __tablename__ = "task_events"
    __table_args__ = (
        Index("ix_task_events_task_id_id", "task_id", "id"),
        # No index on user_id/assignee_id alone: SQLite's planner would scan one of them for
        # the per-user aggregates. Users are deactivated, not deleted, so the foreign keys'
        # ON DELETE SET NULL never has to find their rows.
        # Covering indexes: each analytics aggregate reads one index range, not the table.
        Index("ix_task_events_project_id_action_user_id_day_num_labels", "project_id", "action",
              "user_id", "day", "num_labels"),
        Index("ix_task_events_project_id_action_assignee_id", "project_id", "action",
              "assignee_id"),
        # Only submit events have a tool, only review events a turnaround: medians are an
        # OFFSET into one contiguous index range.
        Index("ix_task_events_project_id_tool_seconds_per_label_num_labels", "project_id",
              "tool", "seconds_per_label", "num_labels"),
        Index("ix_task_events_project_id_turnaround_seconds", "project_id",
              "turnaround_seconds"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = _user_fk()
    assignee_id: Mapped[int | None] = _user_fk()
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    active_seconds: Mapped[float | None] = mapped_column(Float)
    cycle_seconds: Mapped[float | None] = mapped_column(Float)
    num_labels: Mapped[int | None] = mapped_column(Integer)
    tool: Mapped[str | None] = mapped_column(String(16))
    seconds_per_label: Mapped[float | None] = mapped_column(Float)
    turnaround_seconds: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = _created()


class TaskAnnotationRow(Base):
    """A label saved in a task, in the project's schema; same geometry columns as
    ``annotations``.

    Model pre-labels keep ``model_fingerprint`` (the label as the model proposed it) and
    ``prelabel_run_id`` (the Auto-Label run that proposed it, if any), and are soft-deleted
    (``deleted``) so the submit can record whether each was accepted as is, edited or
    rejected (``model_outcome``).
    """

    __tablename__ = "task_annotations"
    __table_args__ = (
        Index("ix_task_annotations_task_id_id", "task_id", "id"),
        Index("ix_task_annotations_project_id_model_outcome", "project_id", "model_outcome"),
        Index("ix_task_annotations_project_id_class_id", "project_id", "class_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(ForeignKey("label_classes.id"))
    bbox_x: Mapped[float | None] = mapped_column(Float)
    bbox_y: Mapped[float | None] = mapped_column(Float)
    bbox_w: Mapped[float | None] = mapped_column(Float)
    bbox_h: Mapped[float | None] = mapped_column(Float)
    polygons: Mapped[list[Any] | None] = mapped_column(Json)
    rle: Mapped[dict[str, Any] | None] = mapped_column(Json)
    keypoints: Mapped[list[Any] | None] = mapped_column(Json)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(Json)
    iscrowd: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="human")
    confidence: Mapped[float | None] = mapped_column(Float)
    fingerprint: Mapped[str] = mapped_column(String(32))
    model_fingerprint: Mapped[str | None] = mapped_column(String(32))
    model_outcome: Mapped[str | None] = mapped_column(String(16))  # accepted|edited|rejected
    prelabel_run_id: Mapped[int | None] = mapped_column(BigInteger)  # the run a model label is of
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = _user_fk()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ReviewIssueRow(Base):
    """A review thread on a task, anchored to one of its labels or to a point (x, y)."""

    __tablename__ = "review_issues"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        Index("ix_review_issues_task_id_id", "task_id", "id"),
        Index("ix_review_issues_project_id_status_id", "project_id", "status", "id"),
        Index("ix_review_issues_annotation_id", "annotation_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("task_annotations.id", ondelete="SET NULL")
    )
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    resolved_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IssueCommentRow(Base):
    """One message in a review issue's thread."""

    __tablename__ = "issue_comments"
    __table_args__ = (Index("ix_issue_comments_issue_id_id", "issue_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("review_issues.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class ProjectExportRow(Base):
    """A frozen export of a project's labels; the files live in ``exports`` / the blob store."""

    __tablename__ = "project_exports"
    __table_args__ = (Index("ix_project_exports_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    export_id: Mapped[int] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), index=True
    )
    approved_only: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created()
