"""Open image files safely: hash them, read their size, refuse bombs and broken files."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from labelwise.errors import ImageError

#: Formats we store and serve (Pillow's names).
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff", "GIF": "gif"}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_hash: str  # sha256 of the file's bytes
    width: int
    height: int
    format: str  # file extension we store it under: jpg, png, ...
    size_bytes: int


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def probe_bytes(data: bytes, *, name: str, max_pixels: int, verify: bool = True) -> ImageInfo:
    """Check one image's bytes; raise ImageError naming ``name`` and the fix.

    The pixel limit is checked from the header before any decoding, so a decompression bomb
    never allocates its pixels. With ``verify`` the whole image is decoded to catch truncation.
    """
    if not data:
        raise ImageError(f"{name}: the file is empty; replace it with the real image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{name}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (a decompression bomb?); shrink the image or raise "
                    "LABELWISE_MAX_IMAGE_PIXELS"
                )
            fmt = im.format
            if fmt not in SUPPORTED_FORMATS:
                raise ImageError(
                    f"{name}: {fmt} images are not supported; convert it to JPEG or PNG"
                )
            if verify:
                im.load()
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(
            f"{name}: not an image file Pillow can read; remove it or replace it with a "
            "JPEG/PNG/WebP"
        ) from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"{name}: the image is corrupt or truncated ({err}); re-export or re-download it"
        ) from err
    return ImageInfo(
        content_hash=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=_EXT[fmt],
        size_bytes=len(data),
    )


def probe_file(path: Path, *, name: str, max_pixels: int, verify: bool = True) -> ImageInfo:
    """``probe_bytes`` on a file; a missing or unreadable file is an ImageError too."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as err:
        raise ImageError(f"{name}: file not found at {path}; check the images folder") from err
    except IsADirectoryError as err:
        raise ImageError(f"{name}: {path} is a folder, not an image file") from err
    except OSError as err:
        raise ImageError(f"{name}: cannot read {path}: {err.strerror}") from err
    return probe_bytes(data, name=name, max_pixels=max_pixels, verify=verify)
