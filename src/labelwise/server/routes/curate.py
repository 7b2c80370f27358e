"""Auto-Curate over HTTP: stored scores, curated splits, validation sets, mislabel ranking.

Everything here reads a dataset's embeddings (``labelwise embed DATASET``); a dataset without
them answers 404 with that advice. Curating a dataset is for managers and above.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from labelwise.curate import service
from labelwise.db.queries import MAX_PAGE
from labelwise.server.auth import require_role
from labelwise.server.curate_schemas import (
    CurateRequest,
    MislabelItem,
    Mislabels,
    ReviewMarked,
    ReviewRequest,
    ScoreRequest,
    ScoreRunPublic,
    ScoresPage,
    SelectionPublic,
    ValidationRequest,
)
from labelwise.server.deps import DatasetId, PageCursor, WorkspaceDep
from labelwise.server.errors import error_responses

router = APIRouter(
    prefix="/api/datasets/{dataset_id}/curation",
    tags=["curation"],
    dependencies=[Depends(require_role("manager"))],
    responses=error_responses(401, 403, 404, 422, 503),
)

SortKey = Annotated[
    Literal["asset_id", "rarity", "typicality", "mislabel_score", "cluster"],
    Query(description="Sort key; scores sort high first unless descending=false."),
]


@router.get("/scores", summary="Stored scores of a dataset's images, filtered and sorted",
            response_model=ScoresPage)
def list_scores(
    dataset_id: DatasetId,
    ws: WorkspaceDep,
    sort: SortKey = "asset_id",
    descending: Annotated[bool | None, Query(description="Order; default per sort key.")] = None,
    cluster: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Only this cluster.")] = None,
    duplicates: Annotated[bool, Query(description="Only near-duplicates.")] = False,
    flagged: Annotated[bool | None, Query(description="Only marked (or unmarked) items.")] = None,
    min_rarity: Annotated[float | None, Query(ge=0, le=2, description="rarity >= this")] = None,
    min_mislabel: Annotated[float | None, Query(ge=0, le=1, description="mislabel >= this")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 100,
    cursor: PageCursor = None,
) -> dict:
    return service.list_scores(
        ws, dataset_id, sort=sort, descending=descending, cluster=cluster,
        duplicates_only=duplicates, flagged=flagged, min_rarity=min_rarity,
        min_mislabel=min_mislabel, limit=limit, cursor=cursor,
    )


@router.post("/scores", summary="Compute and store every score of a dataset",
             response_model=ScoreRunPublic)
def compute_scores(dataset_id: DatasetId, body: ScoreRequest, ws: WorkspaceDep) -> dict:
    run = service.compute_scores(
        ws, dataset_id, model=body.model, size=body.size, objects=body.objects, seed=body.seed,
        verify=body.verify, n_clusters=body.clusters,
    )
    return run.as_dict()


@router.post("/select", summary="Choose images as a named split (what to label, or a smaller "
             "training set)", response_model=SelectionPublic, status_code=201,
             responses=error_responses(409))
def select_split(dataset_id: DatasetId, body: CurateRequest, ws: WorkspaceDep) -> dict:
    sel = service.select_split(
        ws, dataset_id, budget=body.budget, name=body.name, mode=body.mode, seed=body.seed,
        model=body.model, size=body.size, from_split=body.from_split, replace=body.replace,
        verify=body.verify,
    )
    return sel.as_dict()


@router.post("/validation", summary="A clean validation split", response_model=SelectionPublic,
             status_code=201, responses=error_responses(409))
def validation_set(dataset_id: DatasetId, body: ValidationRequest, ws: WorkspaceDep) -> dict:
    sel = service.validation_set(
        ws, dataset_id, size=body.size, name=body.name, exclude=body.exclude, seed=body.seed,
        model=body.model, embed_size=body.embed_size, replace=body.replace, verify=body.verify,
    )
    return sel.as_dict()


@router.get(
    "/mislabels",
    summary="Labels most likely wrong, most suspicious first",
    response_model=Mislabels,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def mislabels(
    dataset_id: DatasetId,
    ws: WorkspaceDep,
    top: Annotated[int | None, Query(ge=1, le=100_000, description="Only the K first.")] = None,
    objects: Annotated[bool, Query(description="Object classes, not image categories.")] = False,
    min_score: Annotated[float, Query(ge=0, le=1, description="Only scores >= this.")] = 0.0,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
) -> dict | Response:
    items = service.mislabels(ws, dataset_id, top=top, objects=objects, min_score=min_score)
    if format == "csv":
        return Response(_csv(items), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="mislabels-{dataset_id}.csv"'})
    return {"items": [MislabelItem(**it) for it in items]}


@router.post("/mislabels/review", summary="Mark likely-mislabeled items for review",
             response_model=ReviewMarked)
def mark_for_review(dataset_id: DatasetId, body: ReviewRequest, ws: WorkspaceDep) -> dict:
    items = service.mislabels(ws, dataset_id, top=body.top, objects=body.objects,
                              min_score=body.min_score)
    return {"marked_images": service.mark_for_review(ws, dataset_id, items) if items else 0,
            "tag": service.REVIEW_TAG}


def _csv(items: list[dict]) -> str:
    out = io.StringIO()
    keys = list(items[0]) if items else list(MislabelItem.model_fields)
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(items)
    return out.getvalue()
