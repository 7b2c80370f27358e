"""Read and extend a dataset's label schema. Class ids never change once given."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelwise.core.schema import LabelClass, default_color
from labelwise.db.models import DatasetRow, LabelClassRow
from labelwise.errors import ConflictError, ValidationError


def add_class(session: Session, dataset: DatasetRow, cls: LabelClass) -> LabelClassRow:
    """Add ``cls`` to the dataset's schema; a class of the same kind and name is a conflict."""
    schema = dataset.schema
    taken = session.scalar(
        select(LabelClassRow).where(
            LabelClassRow.schema_id == schema.id,
            LabelClassRow.kind == cls.kind,
            LabelClassRow.name == cls.name,
        )
    )
    if taken is not None:
        raise ConflictError(
            f"dataset {dataset.name!r} already has a {cls.kind} class {cls.name!r} (id {taken.id})"
        )
    row = class_row(cls, position=len(schema.classes))
    row.schema_id = schema.id
    session.add(row)
    session.flush()
    return row


def class_row(cls: LabelClass, *, position: int) -> LabelClassRow:
    """A new row for ``cls`` (not yet added to a session); colour from the palette if unset."""
    return LabelClassRow(
        name=cls.name,
        kind=cls.kind,
        tool=cls.tool,
        color=cls.color or default_color(position),
        skeleton=cls.skeleton.to_dict() if cls.skeleton else None,
        supercategory=cls.supercategory,
        external_id=cls.external_id,
        position=position,
    )


def set_multi_label(session: Session, dataset: DatasetRow, multi_label: bool) -> None:
    """Switch categorization between single- and multi-label."""
    if not multi_label and dataset.schema.multi_label:
        from sqlalchemy import func

        from labelwise.db.models import AnnotationRow

        crowded = session.scalar(
            select(func.count())
            .select_from(
                select(AnnotationRow.asset_id)
                .join(LabelClassRow, LabelClassRow.id == AnnotationRow.class_id)
                .where(AnnotationRow.dataset_id == dataset.id, LabelClassRow.kind == "category")
                .group_by(AnnotationRow.asset_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
        if crowded:
            raise ValidationError(
                f"{crowded} image(s) in {dataset.name!r} have several categories; remove the "
                "extra labels before making the schema single-label"
            )
    dataset.schema.multi_label = multi_label
