"""Similarity search, near-duplicate groups and the 2-D map of a dataset's embeddings.

Every route reads embeddings computed with ``labelwise embed DATASET``; a dataset without them
answers 404 with that advice. Distances are cosine distances in [0, 2], lower = more similar.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile

from labelwise.db import queries
from labelwise.db.queries import MAX_PAGE, decode_cursor, encode_cursor
from labelwise.embeddings import search
from labelwise.embeddings.backbones import BUILTIN, MAX_SIZE, MIN_SIZE
from labelwise.embeddings.duplicates import DEFAULT_THRESHOLD
from labelwise.embeddings.verify import DEFAULT_MIN_NCC, VERIFIED_THRESHOLD
from labelwise.server.auth import require_role
from labelwise.server.deps import AssetId, DatasetId, PageCursor, WorkspaceDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import (
    DuplicateGroupPublic,
    DuplicateGroups,
    EmbeddingMapPublic,
    ErrorResponse,
    SimilarAssets,
)

# Searching and mapping a dataset is for managers and above.
router = APIRouter(
    prefix="/api",
    tags=["embeddings"],
    dependencies=[Depends(require_role("manager"))],
    responses=error_responses(401, 403, 503),
)

#: Largest uploaded image ``POST /datasets/{id}/similar`` accepts.
MAX_UPLOAD_BYTES = 20 * 2**20

Model = Annotated[
    str,
    Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
          description="Embedding model (see `labelwise models list`)."),
]
Size = Annotated[
    int | None,
    Query(ge=MIN_SIZE, le=MAX_SIZE,
          description="Input size in pixels the embeddings were computed at; default the "
          "model's (224 for the built-in)."),
]
K = Annotated[
    int, Query(ge=1, le=search.MAX_NEIGHBOURS, description="How many matches to return.")
]
Threshold = Annotated[
    float | None,
    Query(ge=0.0, le=2.0, description="Largest cosine distance between candidate copies; default "
          f"{VERIFIED_THRESHOLD} with the pixel check, {DEFAULT_THRESHOLD} without it."),
]
Verify = Annotated[
    bool,
    Query(description="Confirm candidates by comparing pixels (allows flips, crops, re-encodes)."),
]
MinNcc = Annotated[
    float, Query(ge=-1.0, le=1.0, description="Pixel check: thumbnail correlation a pair needs."),
]
GroupLimit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"Groups per page, 1..{MAX_PAGE}.")
]
ImageUpload = Annotated[
    UploadFile,
    File(description="The query image (JPEG, PNG, WebP, ...), at most "
         f"{MAX_UPLOAD_BYTES // 2**20} MB."),
]


@router.get(
    "/assets/{asset_id}/similar",
    summary="Images most similar to an image",
    description="The k images of the asset's dataset nearest to it in embedding space, nearest "
    "first, with their cosine distance. The asset itself is left out.",
    responses=error_responses(404, 422),
)
def similar_to_asset(
    asset_id: AssetId, ws: WorkspaceDep, k: K = 10, model: Model = BUILTIN, size: Size = None
) -> SimilarAssets:
    with ws.session() as s:
        dataset_id = queries.get_asset(s, asset_id).dataset_id
    # Resolved once here and passed on, so the response names the size the search used.
    size = search.resolve_size(ws, model, size, dataset=dataset_id)
    matches = search.similar_to_asset(ws, asset_id, k=k, model=model, size=size)
    return SimilarAssets.model_validate(
        {"query_asset_id": asset_id, "model": model, "size": size, "items": matches}
    )


@router.post(
    "/datasets/{dataset_id}/similar",
    summary="Images most similar to an uploaded image",
    description="Upload an image as multipart form field `image`; it is embedded like the "
    "dataset's images and the k nearest are returned, nearest first. A file that is not a "
    "readable image answers 422; one over the size limit 413.",
    responses={
        **error_responses(404, 422),
        413: {"model": ErrorResponse, "description": "The uploaded image is too large."},
    },
)
def similar_to_image(
    dataset_id: DatasetId,
    image: ImageUpload,
    ws: WorkspaceDep,
    k: K = 10,
    model: Model = BUILTIN,
    size: Size = None,
) -> SimilarAssets:
    data = image.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(
            413, f"the image is larger than {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller one"
        )
    size = search.resolve_size(ws, model, size, dataset=dataset_id)
    matches = search.similar_to_image(ws, dataset_id, data, k=k, model=model, size=size)
    return SimilarAssets.model_validate(
        {"query_asset_id": None, "model": model, "size": size, "items": matches}
    )


@router.get(
    "/datasets/{dataset_id}/duplicates",
    summary="Groups of near-identical images",
    description="Images whose embeddings are within `threshold` cosine distance of each other "
    "and (with `verify`) whose pixels match allowing a flip or crop, joined into groups "
    "(largest first), each with its most central member as representative. "
    "Pass next_cursor back as cursor for the next page of groups.",
    responses=error_responses(400, 404, 422),
)
def near_duplicates(
    dataset_id: DatasetId,
    ws: WorkspaceDep,
    threshold: Threshold = None,
    verify: Verify = True,
    min_ncc: MinNcc = DEFAULT_MIN_NCC,
    model: Model = BUILTIN,
    size: Size = None,
    limit: GroupLimit = 100,
    cursor: PageCursor = None,
) -> DuplicateGroups:
    start = decode_cursor(cursor)
    report = search.near_duplicates(
        ws, dataset_id, threshold=threshold, verify=verify, min_ncc=min_ncc, model=model,
        size=size,
    )
    page = report.groups[start : start + limit]
    more = start + limit < len(report.groups)
    return DuplicateGroups(
        dataset_id=dataset_id,
        model=model,
        size=report.size,
        threshold=report.threshold,
        num_embedded=report.num_embedded,
        num_groups=len(report.groups),
        num_duplicates=report.num_duplicates,
        items=[DuplicateGroupPublic.model_validate(g) for g in page],
        next_cursor=encode_cursor(start + limit) if more else None,
    )


@router.get(
    "/datasets/{dataset_id}/map",
    summary="The 2-D map of a dataset's images",
    description="One point per embedded image, [asset_id, x, y] in the unit square; nearby "
    "points look alike. Made with UMAP on the first request (or `labelwise embed-map`) and "
    "stored; later requests read it.",
    responses=error_responses(404, 422),
)
def embedding_map(
    dataset_id: DatasetId, ws: WorkspaceDep, model: Model = BUILTIN, size: Size = None
) -> EmbeddingMapPublic:
    result = search.get_or_compute_map(ws, dataset_id, model=model, size=size)
    return EmbeddingMapPublic(
        dataset_id=result.dataset_id, model=result.model, size=result.size,
        method=result.method, points=result.as_rows(),
    )
