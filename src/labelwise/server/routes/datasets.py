"""``/api/datasets``: the datasets of the workspace and their summaries."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from labelwise.db import queries
from labelwise.server.auth import require_role
from labelwise.server.deps import DatasetId, SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import DatasetPublic, DatasetSummary, Page

# Whole datasets are for managers and above; labelers and reviewers work through projects.
router = APIRouter(
    prefix="/api/datasets",
    tags=["datasets"],
    dependencies=[Depends(require_role("manager"))],
    responses=error_responses(401, 403, 503),
)


@router.get(
    "",
    summary="List datasets",
    description="Every dataset with its number of images, in creation order. One page: "
    "next_cursor is null until datasets are many enough to need paging.",
)
def list_datasets(session: SessionDep) -> Page[DatasetPublic]:
    items = [DatasetPublic.model_validate(d) for d in queries.list_datasets(session)]
    return Page[DatasetPublic](items=items, next_cursor=None)


@router.get(
    "/{dataset_id}",
    summary="Dataset summary",
    description="The dataset with its classes (annotation count per class) and splits.",
    responses=error_responses(404, 422),
)
def read_dataset(dataset_id: DatasetId, session: SessionDep) -> DatasetSummary:
    ds = queries.get_dataset(session, dataset_id)
    return DatasetSummary.model_validate(queries.dataset_summary(session, ds))
