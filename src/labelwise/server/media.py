"""Serving image bytes: media types, HTTP caching, and thumbnails made on first request.

Image bytes never change for a given content hash, so an image URL that carries the hash
(``?v=<first 16 hex digits>``, as ``AssetPublic.image_url`` does) is cached by browsers for a
year without asking again. A URL without it is still answered, but with ``no-cache``: asset ids
are not content (another workspace served on the same port has another asset 1), so the
browser must revalidate, which the ETag makes a cheap 304.

Thumbnails are WebP, longest side ``size`` pixels (never upscaled), made lazily with Pillow and
kept in the blob store under ``thumbs/<content_hash>_<size>.webp``; later requests read them.
"""

from __future__ import annotations

import warnings
from io import BytesIO

from fastapi import Request, Response
from fastapi.responses import FileResponse
from PIL import Image

from labelwise.errors import StorageError
from labelwise.server.schemas import URL_VERSION_DIGITS
from labelwise.storage import BlobStore

MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "gif": "image/gif",
}
CACHE_FOREVER = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "public, no-cache"

THUMB_MIN, THUMB_MAX, THUMB_DEFAULT = 32, 1024, 256
THUMB_QUALITY = 80


def media_type(fmt: str) -> str:
    """The MIME type of a stored image format (``"jpg"`` -> ``"image/jpeg"``)."""
    return MEDIA_TYPES.get(fmt.lower(), "application/octet-stream")


def thumbnail_key(content_hash: str, size: int) -> str:
    return f"thumbs/{content_hash}_{size}.webp"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak or strong, or ``*``)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def cache_headers(etag: str, *, content_hash: str, version: str | None) -> dict[str, str]:
    """ETag plus Cache-Control: immutable only when the URL names this content's version."""
    versioned = version is not None and version == content_hash[:URL_VERSION_DIGITS]
    return {"ETag": etag, "Cache-Control": CACHE_FOREVER if versioned else CACHE_REVALIDATE}


def blob_response(
    request: Request,
    store: BlobStore,
    key: str,
    *,
    etag: str,
    media: str,
    content_hash: str,
    version: str | None,
    data: bytes | None = None,
) -> Response:
    """Answer with the blob at ``key`` (or ``data`` when already in hand), or 304 if unchanged.

    A local store streams the file (with Range support); others read the bytes.
    """
    headers = cache_headers(etag, content_hash=content_hash, version=version)
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if data is not None:
        return Response(data, media_type=media, headers=headers)
    path = store.local_path(key)
    if path is not None:
        if not path.is_file():
            raise _missing(key)
        return FileResponse(path, media_type=media, headers=headers)
    return Response(read_blob(store, key), media_type=media, headers=headers)


def _missing(key: str) -> StorageError:
    # Said without the store's path or URL: clients need not learn where blobs live.
    return StorageError(f"blob {key!r} is missing from the blob store; re-import its dataset")


def read_blob(store: BlobStore, key: str) -> bytes:
    """The blob's bytes; a missing one is reported without the store's location."""
    try:
        return store.get_bytes(key)
    except StorageError as err:
        raise _missing(key) from err


def render_thumbnail(data: bytes, *, size: int) -> bytes:
    """WebP bytes of the image in ``data`` scaled so its longest side is at most ``size``.

    JPEGs are decoded at a reduced scale first (``draft``), so a 24-megapixel photo costs a
    fraction of a full decode. Transparency is kept.

    >>> from PIL import Image; buf = BytesIO(); Image.new("RGB", (400, 200)).save(buf, "PNG")
    >>> Image.open(BytesIO(render_thumbnail(buf.getvalue(), size=100))).size
    (100, 50)
    """
    with warnings.catch_warnings():
        # The image passed the pixel limit on import; Pillow's own, lower default may warn.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(BytesIO(data)) as im:
            im.draft("RGB", (size, size))
            mode = "RGBA" if im.has_transparency_data else "RGB"
            thumb = im.convert(mode)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = BytesIO()
    thumb.save(out, "WEBP", quality=THUMB_QUALITY, method=4)
    return out.getvalue()


def make_thumbnail(store: BlobStore, *, image_key: str, thumb_key: str, size: int) -> bytes:
    """Render the thumbnail of the image at ``image_key``, keep it at ``thumb_key``, return it."""
    original = read_blob(store, image_key)
    try:
        data = render_thumbnail(original, size=size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise StorageError(
            f"blob {image_key!r} cannot be decoded ({err}); the stored image is damaged, "
            "re-import its dataset"
        ) from err
    store.put_bytes(thumb_key, data)
    return data
