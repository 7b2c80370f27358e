"""Custom Auto-Label over HTTP: models and their cards, training, pre-labeling, the next batch
to label, and the review queue of pre-labels.

Reading models and reviewing pre-labels is for reviewers and above; training, applying,
picking batches and downloading a model's ONNX file for managers and above. A dataset
without embeddings answers 404 with the `labelwise embed` command to run.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from labelwise.autolabel import service
from labelwise.server.auth import require_role
from labelwise.server.autolabel_schemas import (
    AcceptRequest,
    AcceptResult,
    ApplyRequest,
    ApplyResultPublic,
    Bucket,
    ModelDetail,
    ModelList,
    NextBatchPublic,
    NextRequest,
    RejectRequest,
    RejectResult,
    ReviewQueuePage,
    TrainRequest,
    TrainResultPublic,
)
from labelwise.server.deps import DatasetId, PageCursor, WorkspaceDep
from labelwise.server.errors import error_responses

reviewers = [Depends(require_role("reviewer"))]
managers = [Depends(require_role("manager"))]
router = APIRouter(prefix="/api", tags=["autolabel"],
                   responses=error_responses(401, 403, 404, 422, 503))

ModelPath = Annotated[str, Path(min_length=1, max_length=100, description="Model name.")]
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Model version.")]


@router.get("/autolabel/models", summary="Every auto-label model", response_model=ModelList,
            dependencies=reviewers)
def list_models(ws: WorkspaceDep) -> dict:
    return {"items": service.list_models(ws)}


@router.get("/autolabel/models/{name}", summary="A model's card and versions",
            response_model=ModelDetail, dependencies=reviewers)
def show_model(
    name: ModelPath,
    ws: WorkspaceDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                         description="Card of this version (default: latest).")
                       ] = None,
) -> dict:
    info = service.show(ws, name, version)
    for v in info["all_versions"]:
        v["onnx_url"] = f"/api/autolabel/models/{name}/versions/{v['version']}/onnx"
    return info


@router.get(
    "/autolabel/models/{name}/versions/{version}/onnx",
    summary="Download a model version as ONNX",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {"schema": {
        "type": "string", "format": "binary"}}}, "description": "The ONNX file."}},
    dependencies=managers,
)
def download_onnx(name: ModelPath, version: VersionPath, ws: WorkspaceDep) -> Response:
    path, v = service.onnx_path(ws, name, version)
    filename = f"{name}-v{v}.onnx"
    return Response(path.read_bytes(), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/datasets/{dataset_id}/autolabel/train",
             summary="Train a model (its next version) on the dataset's labels",
             response_model=TrainResultPublic, status_code=201, dependencies=managers,
             responses=error_responses(409))
def train(dataset_id: DatasetId, body: TrainRequest, ws: WorkspaceDep) -> dict:
    result = service.train(ws, dataset_id, name=body.name, source_split=body.from_split,
                           source_export=body.from_export, task=body.task,
                           options={"seed": body.seed})
    return result.as_dict()


@router.post("/datasets/{dataset_id}/autolabel/apply",
             summary="Pre-label the dataset's unlabeled images with a model",
             response_model=ApplyResultPublic, status_code=201, dependencies=managers)
def apply(dataset_id: DatasetId, body: ApplyRequest, ws: WorkspaceDep) -> dict:
    result = service.apply(ws, body.model, dataset_id, split=body.split, version=body.version,
                           engine=body.engine)
    return result.as_dict()


@router.post("/datasets/{dataset_id}/autolabel/next",
             summary="Pick the next images to label (uncertainty + diversity) as a split",
             response_model=NextBatchPublic, status_code=201, dependencies=managers,
             responses=error_responses(409))
def next_batch(dataset_id: DatasetId, body: NextRequest, ws: WorkspaceDep) -> dict:
    return service.next_batch(ws, dataset_id, budget=body.budget, name=body.name,
                              model=body.model, version=body.version, seed=body.seed,
                              replace=body.replace)


@router.get("/datasets/{dataset_id}/autolabel/review-queue",
            summary="Pre-labels most uncertain first, a page at a time",
            response_model=ReviewQueuePage, dependencies=reviewers,
            responses=error_responses(400))
def review_queue(
    dataset_id: DatasetId,
    ws: WorkspaceDep,
    model: Annotated[str | None, Query(max_length=100, description="This model's latest run."
                                       )] = None,
    run: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="This run.")] = None,
    bucket: Annotated[Bucket | None, Query(description="Only this bucket.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page.")] = 50,
    cursor: PageCursor = None,
) -> dict:
    return service.review_queue(ws, dataset_id, run=run, model=model, bucket=bucket,
                                limit=limit, cursor=cursor)


@router.post("/datasets/{dataset_id}/autolabel/review/accept",
             summary="Accept a difficulty bucket's pending pre-labels",
             description="Answers with the bucket's expected error rate; dry_run only says it.",
             response_model=AcceptResult, dependencies=reviewers)
def accept(dataset_id: DatasetId, body: AcceptRequest, ws: WorkspaceDep) -> dict:
    return service.accept(ws, dataset_id, run=body.run, model=body.model, bucket=body.bucket,
                          dry_run=body.dry_run)


@router.post("/datasets/{dataset_id}/autolabel/review/reject",
             summary="Reject pending pre-labels (their model labels are deleted)",
             response_model=RejectResult, dependencies=reviewers)
def reject(dataset_id: DatasetId, body: RejectRequest, ws: WorkspaceDep) -> dict:
    return service.reject(ws, dataset_id, body.asset_ids, run=body.run, model=body.model)
