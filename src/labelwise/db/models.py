"""SQLAlchemy models: the rows labelwise keeps. Every list and filter has an index.

Ids are integers that grow with insertion order, so keyset pagination is ``WHERE id > :cursor
ORDER BY id``. Tags live in their own table with ``(dataset_id, tag, asset_id)`` indexed so a
tag-filtered page is one index range scan, however deep the page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments "INTEGER PRIMARY KEY"; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: Json, list[Any]: Json}


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class LabelSchemaRow(Base):
    """A set of classes. A dataset has one; projects (later) may have their own."""

    __tablename__ = "label_schemas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    multi_label: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _now()

    classes: Mapped[list[LabelClassRow]] = relationship(
        back_populates="schema", order_by="LabelClassRow.position", cascade="all, delete-orphan"
    )


class LabelClassRow(Base):
    """A class. Ids stay stable across schema edits; renames keep the id."""

    __tablename__ = "label_classes"
    __table_args__ = (UniqueConstraint("schema_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    schema_id: Mapped[int] = mapped_column(
        ForeignKey("label_schemas.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # category | object
    tool: Mapped[str | None] = mapped_column(String(16))  # bbox | polygon | keypoints
    color: Mapped[str] = mapped_column(String(16))
    skeleton: Mapped[dict[str, Any] | None] = mapped_column(Json)
    supercategory: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[int | None] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _now()

    schema: Mapped[LabelSchemaRow] = relationship(back_populates="classes")


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    schema_id: Mapped[int] = mapped_column(ForeignKey("label_schemas.id"), index=True)
    info: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    schema: Mapped[LabelSchemaRow] = relationship()


class AssetRow(Base):
    """An image in a dataset. The bytes live once in the blob store under ``content_hash``."""

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("dataset_id", "path"),
        Index("ix_assets_dataset_id_id", "dataset_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", Json, default=dict)
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()


class AssetTagRow(Base):
    __tablename__ = "asset_tags"
    __table_args__ = (Index("ix_asset_tags_dataset_id_tag_asset_id", "dataset_id", "tag", "asset_id"),)

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))


class AnnotationRow(Base):
    """A label on an asset: a category (no geometry) or an object (box/polygons/keypoints).

    ``fingerprint`` hashes the label's content so re-importing the same file adds nothing.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        Index("ix_annotations_asset_id_fingerprint", "asset_id", "fingerprint"),
        Index("ix_annotations_dataset_id_id", "dataset_id", "id"),
        Index("ix_annotations_dataset_id_class_id", "dataset_id", "class_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
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
    area: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="human")
    confidence: Mapped[float | None] = mapped_column(Float)
    # The Auto-Label run that wrote a model label (prelabel_runs.id). No foreign key: adding
    # one would rebuild this large table on SQLite; runs go only with their dataset.
    prelabel_run_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()


class SplitRow(Base):
    """A named subset of a dataset (train, val, a curated selection, ...)."""

    __tablename__ = "splits"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    info: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = _now()


class SplitAssetRow(Base):
    __tablename__ = "split_assets"

    split_id: Mapped[int] = mapped_column(
        ForeignKey("splits.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ImportRow(Base):
    """A record of every import: what came in, from where, and what it added."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    format: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = _now()


class ExportRow(Base):
    """A frozen label export: the files as written, kept in the blob store as one zip."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    split_id: Mapped[int | None] = mapped_column(ForeignKey("splits.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    storage_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    num_assets: Mapped[int] = mapped_column(Integer)
    num_annotations: Mapped[int] = mapped_column(BigInteger)
    options: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = _now()


class EmbeddingShardRow(Base):
    """One .npy file of embeddings in the blob store: ``num_rows`` float32 vectors of ``dim``."""

    __tablename__ = "embedding_shards"
    __table_args__ = (Index("ix_embedding_shards_model_size", "model", "size"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(300))
    num_rows: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()


class EmbeddingRow(Base):
    """Where the embedding of some image content lives: (shard, row).

    Keyed by content, not by asset: identical bytes in two datasets are embedded once.
    ``object_key`` is "" for the whole image, else the crop box ``"x0,y0,x1,y1"`` in pixels.
    """

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("content_hash", "model", "size", "object_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(String(64), default="")
    shard_id: Mapped[int] = mapped_column(
        ForeignKey("embedding_shards.id", ondelete="CASCADE"), index=True
    )
    row_index: Mapped[int] = mapped_column(Integer)


class _ScoreColumns:
    """Auto-Curate's per-item scores; see docs/algorithms.md for what each one means."""

    model: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    cluster: Mapped[int] = mapped_column(Integer)
    cluster_size: Mapped[int] = mapped_column(Integer)
    rarity: Mapped[float] = mapped_column(Float)
    typicality: Mapped[float] = mapped_column(Float)
    # Items sharing a group id are near-duplicates of each other; NULL: no duplicate.
    duplicate_group: Mapped[int | None] = mapped_column(Integer)
    # Labeled items only: how likely the label is wrong (0..1) and the class it more likely is.
    mislabel_score: Mapped[float | None] = mapped_column(Float)
    suggested_class_id: Mapped[int | None] = mapped_column(
        ForeignKey("label_classes.id", ondelete="SET NULL")
    )
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # marked for review
    computed_at: Mapped[datetime] = _now()


class AssetScoreRow(_ScoreColumns, Base):
    """Scores of a whole image. Each filter and sort key is indexed with the asset id last,
    so a filtered page sorted by a score is a keyset range scan."""

    __tablename__ = "asset_scores"
    __table_args__ = (
        Index("ix_asset_scores_dataset_id_cluster_asset_id", "dataset_id", "cluster", "asset_id"),
        Index("ix_asset_scores_dataset_id_rarity_asset_id", "dataset_id", "rarity", "asset_id"),
        Index(
            "ix_asset_scores_dataset_id_typicality_asset_id", "dataset_id", "typicality", "asset_id"
        ),
        Index(
            "ix_asset_scores_dataset_id_mislabel_score_asset_id",
            "dataset_id",
            "mislabel_score",
            "asset_id",
        ),
        Index("ix_asset_scores_dataset_id_duplicate_group", "dataset_id", "duplicate_group"),
        Index("ix_asset_scores_dataset_id_flagged_asset_id", "dataset_id", "flagged", "asset_id"),
    )

    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))


class ObjectScoreRow(_ScoreColumns, Base):
    """Scores of one annotated object (a box, polygon or keypoint instance)."""

    __tablename__ = "object_scores"
    __table_args__ = (
        Index("ix_object_scores_dataset_id_cluster", "dataset_id", "cluster"),
        Index("ix_object_scores_dataset_id_rarity", "dataset_id", "rarity"),
        Index("ix_object_scores_dataset_id_mislabel_score", "dataset_id", "mislabel_score"),
        Index("ix_object_scores_dataset_id_flagged", "dataset_id", "flagged"),
    )

    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))


# Tables of the other parts of the system live in their own modules; importing them here puts
# them in ``Base.metadata`` wherever the models are used (migrations, tests).
from labelwise.db import account_models, workflow_models  # noqa: E402, F401
from labelwise.db import autolabel_models  # noqa: E402, F401
