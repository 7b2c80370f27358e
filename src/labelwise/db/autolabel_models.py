"""Auto-Label: trained models and their versions, pre-label runs and each image's pre-label.

A model (``autolabel_models``) has versions (``autolabel_versions``), each a folder under the
workspace written once with the data that trained it. Applying a version to a dataset is a
run (``prelabel_runs``); the run holds one ``prelabels`` row per image (uncertainty, bucket,
review status) and writes model-sourced annotations that point back at it
(``annotations.prelabel_run_id``), so a later run replaces only pending model labels.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from labelwise.db.models import Base, BigId, Json

MODEL_TASKS = ("category", "multilabel", "boxes", "keypoints")
PRELABEL_STATUSES = ("pending", "accepted", "edited", "rejected")
BUCKET_NAMES = ("easy", "medium", "hard")


def _created() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class AutolabelModelRow(Base):
    """A named model: what it predicts and the dataset it learns from."""

    __tablename__ = "autolabel_models"
    __table_args__ = (
        CheckConstraint("task IN ('category', 'multilabel', 'boxes', 'keypoints')", name="task"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = _created()


class AutolabelVersionRow(Base):
    """One trained version: its folder (relative to the workspace), the data that trained it
    (``trained_on``: dataset, split or export, asset count, class counts, data digest) and
    its model card."""

    __tablename__ = "autolabel_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("autolabel_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    trained_on: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    card: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = _created()


class PrelabelRunRow(Base):
    """A version applied to a dataset (or one split): ``summary`` holds counts and the
    expected error rate per difficulty bucket."""

    __tablename__ = "prelabel_runs"
    __table_args__ = (Index("ix_prelabel_runs_dataset_id_id", "dataset_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("autolabel_versions.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    split: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = _created()


class PrelabelRow(Base):
    """What a run said about one image, and where its review stands. The queue index walks
    a run's pending pre-labels most uncertain first."""

    __tablename__ = "prelabels"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'accepted', 'edited', 'rejected')",
                        name="status"),
        CheckConstraint("bucket IN ('easy', 'medium', 'hard')", name="bucket"),
        Index("ix_prelabels_run_id_status_uncertainty_asset_id", "run_id", "status",
              "uncertainty", "asset_id"),
        Index("ix_prelabels_asset_id_status", "asset_id", "status"),
    )

    run_id: Mapped[int] = mapped_column(
        ForeignKey("prelabel_runs.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    uncertainty: Mapped[float] = mapped_column(Float)
    expected_error: Mapped[float] = mapped_column(Float)
    bucket: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="pending")
