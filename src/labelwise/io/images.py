"""Open image files safely: hash them, read their size, refuse bombs and broken files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
import re
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from labelwise.errors import ImageError

#: Formats we store and serve (Pillow's names).
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# MPO is what Pillow calls a camera JPEG with an embedded preview: stored as the JPEG it is.
_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff",
        "GIF": "gif"}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_hash: str  # sha256 of the file's bytes
    width: int
    height: int
    format: str  # file extension we store it under: jpg, png, ...
    size_bytes: int


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


@contextmanager
def guarded_open(
    data: bytes, *, name: str, max_pixels: int, fix: str = "re-export or re-download it"
) -> Iterator[Image.Image]:
    """Open image bytes for reading; every failure inside becomes an ImageError naming ``name``.

    The pixel limit is checked from the header before anything is decoded, so a
    decompression bomb never allocates its pixels. ``fix`` ends the message for broken bytes.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty; replace it with the real image")
    _follow_pixel_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise _bomb(name, f"{width}x{height} = {width * height:,} pixels", max_pixels)
            yield im
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(
            f"{name}: not an image file Pillow can read; remove it or replace it with a "
            "JPEG/PNG/WebP"
        ) from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow's own guard fired first (on open, or for a frame while decoding).
        claimed = re.search(r"\((\d+) pixels\)", str(err))
        what = f"{int(claimed[1]):,} pixels" if claimed else "its size"
        raise _bomb(name, what, max_pixels) from err
    except MemoryError as err:
        raise _bomb(name, "decoding it ran out of memory", max_pixels) from err
    except Exception as err:  # noqa: BLE001 - decoders raise many types on hostile bytes
        raise ImageError(
            f"{name}: the image is corrupt or truncated ({type(err).__name__}: {err}); {fix}"
        ) from err


def probe_bytes(data: bytes, *, name: str, max_pixels: int, verify: bool = True) -> ImageInfo:
    """Check one image's bytes; raise ImageError naming ``name`` and the fix.

    The pixel limit is checked from the header before any decoding, so a decompression bomb
    never allocates its pixels. With ``verify`` the whole image is decoded to catch truncation.
    """
    with guarded_open(data, name=name, max_pixels=max_pixels) as im:
        width, height = im.size
        fmt = im.format
        if fmt not in SUPPORTED_FORMATS:
            raise ImageError(f"{name}: {fmt} images are not supported; convert it to JPEG or PNG")
        if verify:
            im.load()
    return ImageInfo(
        content_hash=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=_EXT[fmt],
        size_bytes=len(data),
    )


def _bomb(name: str, what: str, max_pixels: int) -> ImageError:
    return ImageError(
        f"{name}: {what} exceeds the limit of {max_pixels:,} pixels (a decompression bomb?); "
        "shrink the image or raise LABELWISE_MAX_IMAGE_PIXELS"
    )


def _follow_pixel_limit(max_pixels: int) -> None:
    """Let our limit, not Pillow's global one, decide: raise Pillow's when ours is higher.

    Pillow refuses images over twice ``Image.MAX_IMAGE_PIXELS`` on open and warns above it;
    left alone it would refuse images the configured limit allows. It only ever grows, so
    concurrent probes with different limits stay safe: ours is checked right after open.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def read_image_file(path: Path | str, *, name: str) -> bytes:
    """An image file's bytes; a missing, folder or unreadable path is an ImageError naming it."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as err:
        raise ImageError(f"{name}: file not found at {path}; check the images folder") from err
    except IsADirectoryError as err:
        raise ImageError(f"{name}: {path} is a folder, not an image file") from err
    except OSError as err:
        raise ImageError(f"{name}: cannot read {path}: {err.strerror}") from err


def probe_file(path: Path, *, name: str, max_pixels: int, verify: bool = True) -> ImageInfo:
    """``probe_bytes`` on a file; a missing or unreadable file is an ImageError too."""
    data = read_image_file(path, name=name)
    return probe_bytes(data, name=name, max_pixels=max_pixels, verify=verify)
