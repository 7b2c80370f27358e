"""Assets: a dataset's images a page at a time, one image with its labels, its bytes and
thumbnails."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from labelwise.db import queries
from labelwise.errors import ValidationError
from labelwise.server import media
from labelwise.server.auth import AssetViewer, require_role
from labelwise.server.deps import (
    AssetId,
    DatasetId,
    PageCursor,
    PageLimit,
    SessionDep,
    StoreDep,
)
from labelwise.server.errors import error_responses
from labelwise.server.schemas import AnnotationPublic, AssetDetail, AssetPublic, Page
from labelwise.storage import image_key

# A page of a dataset needs manager+; one asset also whoever a project gives it to (others
# get 404, as for an asset that does not exist).
router = APIRouter(prefix="/api", tags=["assets"], responses=error_responses(401, 503))

TagFilter = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Only images with this tag.")
]
SplitFilter = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Only images in this split.")
]
Version = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Content version as given in image_url/thumbnail_url; when it matches, "
        "the response may be cached forever.",
    ),
]
ThumbSize = Annotated[
    int,
    Query(
        ge=media.THUMB_MIN,
        le=media.THUMB_MAX,
        description=f"Longest side in pixels, {media.THUMB_MIN}..{media.THUMB_MAX} "
        "(smaller images are not upscaled).",
    ),
]


def _image_responses(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
              "description": description},
        304: {"description": "Not modified: the If-None-Match ETag still holds."},
        **error_responses(404, 422, 500),
    }


@router.get(
    "/datasets/{dataset_id}/assets",
    summary="List a dataset's images, a page at a time",
    description="Images in id order, optionally only those with a tag or in a split (one "
    "filter at a time). Pass next_cursor back as cursor for the next page; every page costs "
    "the same however deep.",
    dependencies=[Depends(require_role("manager"))],
    responses=error_responses(400, 403, 404, 422),
)
def list_assets(
    dataset_id: DatasetId,
    session: SessionDep,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
    tag: TagFilter = None,
    split: SplitFilter = None,
) -> Page[AssetPublic]:
    if tag is not None and split is not None:
        raise ValidationError(
            f"tag={tag!r} and split={split!r} were both given; filter by one of them at a time"
        )
    ds = queries.get_dataset(session, dataset_id)
    page = queries.list_assets(session, ds.id, tag=tag, split=split, cursor=cursor, limit=limit)
    return Page[AssetPublic](
        items=[AssetPublic.model_validate(a) for a in page["items"]],
        next_cursor=page["next_cursor"],
    )


@router.get(
    "/assets/{asset_id}",
    summary="One image with its annotations",
    responses=error_responses(404, 422),
)
def read_asset(asset_id: AssetId, _viewer: AssetViewer, session: SessionDep) -> AssetDetail:
    row = queries.get_asset(session, asset_id)
    tags = queries.tags_for(session, [row.id]).get(row.id, [])
    annotations = [
        AnnotationPublic.model_validate(a) for a in queries.asset_annotations(session, row)
    ]
    return AssetDetail.model_validate(
        {**queries.asset_public(row, tags), "annotations": annotations}
    )


@router.get(
    "/assets/{asset_id}/image",
    summary="The original image file",
    description="The bytes exactly as imported, with their media type. ETag is the content "
    "hash (If-None-Match answers 304).",
    response_class=Response,
    responses=_image_responses("The image file."),
)
def read_image(
    asset_id: AssetId,
    _viewer: AssetViewer,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    v: Version = None,
) -> Response:
    row = queries.get_asset(session, asset_id)
    return media.blob_response(
        request,
        store,
        image_key(row.content_hash, row.format),
        etag=f'"{row.content_hash}"',
        media=media.media_type(row.format),
        content_hash=row.content_hash,
        version=v,
    )


@router.get(
    "/assets/{asset_id}/thumbnail",
    summary="A WebP thumbnail of the image",
    description="Made on the first request and kept in the blob store; later requests read it.",
    response_class=Response,
    responses=_image_responses("A WebP image."),
)
def read_thumbnail(
    asset_id: AssetId,
    _viewer: AssetViewer,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    size: ThumbSize = media.THUMB_DEFAULT,
    v: Version = None,
) -> Response:
    row = queries.get_asset(session, asset_id)
    key = media.thumbnail_key(row.content_hash, size)
    etag = f'"{row.content_hash}-{size}"'
    data = None
    if not media.etag_matches(request.headers.get("if-none-match"), etag) and not store.exists(key):
        data = media.make_thumbnail(
            store, image_key=image_key(row.content_hash, row.format), thumb_key=key, size=size
        )
    return media.blob_response(
        request, store, key, etag=etag, media="image/webp", content_hash=row.content_hash,
        version=v, data=data,
    )
