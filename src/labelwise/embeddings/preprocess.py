"""Turn stored image bytes into model input: decode, RGB, resize to size x size, uint8 HWC.

Decoding is bomb-safe: the pixel count is checked from the header, before any pixel is
allocated, against ``LABELWISE_MAX_IMAGE_PIXELS``. Object crops are boxes grown by a margin
(10% of the box per side by default) and clipped to the image; polygons, RLE masks and
keypoints use their bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from labelwise.errors import ImageError
from labelwise.io.images import guarded_open

#: A crop box in whole pixels: (x0, y0, x1, y1), x1/y1 exclusive.
Box = tuple[int, int, int, int]

DEFAULT_MARGIN = 0.1


def decode_image(
    data: bytes, *, name: str, max_pixels: int, draft: int | None = None
) -> Image.Image:
    """Decode image bytes into a loaded Pillow image (mode RGB, or L for grey images).

    ``draft`` lets a JPEG decode at a reduced scale that still covers ``draft`` x ``draft``
    pixels: much faster for photos embedded at a small size. Raises ImageError naming ``name``.
    """
    if not data:
        raise ImageError(f"{name}: the stored image is empty; import the image again")
    with guarded_open(
        data, name=name, max_pixels=max_pixels, fix="import a good copy again"
    ) as im:
        if draft and im.format == "JPEG":
            im.draft("RGB", (draft, draft))
        im.load()
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        return im


def resize_square(im: Image.Image, size: int, *, box: Box | None = None) -> np.ndarray:
    """Resize ``im`` (or its region ``box``) to (size, size, 3) uint8 RGB.

    Bilinear, with Pillow's antialiasing when shrinking. ``box`` is in ``im``'s pixels, so
    decode without ``draft`` when cropping.
    """
    out = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if out.mode != "RGB":  # grey: resize one channel, then copy it to three
        out = out.convert("RGB")
    return np.asarray(out, dtype=np.uint8)


def load_square(
    data: bytes,
    *,
    size: int,
    name: str,
    max_pixels: int,
    box: Box | None = None,
) -> np.ndarray:
    """Bytes -> (size, size, 3) uint8 RGB of the whole image or of the crop ``box``."""
    im = decode_image(data, name=name, max_pixels=max_pixels, draft=None if box else size)
    return resize_square(im, size, box=box)


# -- object crops ---------------------------------------------------------------------------------
def object_bounds(
    *,
    bbox: Sequence[float] | None = None,
    polygons: Sequence[Sequence[float]] | None = None,
    rle: dict[str, Any] | None = None,
    keypoints: Sequence[float] | None = None,
) -> tuple[float, float, float, float] | None:
    """An object's extent as (x, y, w, h): its box, else polygon, mask or visible-keypoint bounds.

    None for an image-level category (no geometry) or keypoints with none visible.
    """
    if bbox is not None:
        return tuple(float(v) for v in bbox)  # type: ignore[return-value]
    if polygons:
        xs = [float(v) for ring in polygons for v in ring[0::2]]
        ys = [float(v) for ring in polygons for v in ring[1::2]]
        if xs and ys:
            return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    if rle:
        from pycocotools import mask as mask_utils

        rle_c = dict(rle)
        if isinstance(rle_c.get("counts"), list):
            rle_c = mask_utils.frPyObjects(rle_c, *rle_c["size"])
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle_c))
        if w > 0 and h > 0:
            return x, y, w, h
    if keypoints:
        pts = [(keypoints[i], keypoints[i + 1]) for i in range(0, len(keypoints) - 2, 3)
               if keypoints[i + 2] > 0]
        if pts:
            xs, ys = zip(*pts, strict=True)
            return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    return None


def crop_box(
    bounds: Sequence[float], *, width: int, height: int, margin: float = DEFAULT_MARGIN
) -> Box | None:
    """Grow (x, y, w, h) by ``margin`` x its size per side, clip to the image, round outward.

    Returns None when nothing of the object lies inside the image. A zero-size extent (one
    keypoint) still gives a crop of at least one pixel.
    """
    x, y, w, h = (float(v) for v in bounds)
    x0, y0 = x - margin * w, y - margin * h
    x1, y1 = x + w + margin * w, y + h + margin * h
    x0, y0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    x1, y1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if x1 <= x0:
        x1 = x0 + 1 if x0 < width else x0
    if y1 <= y0:
        y1 = y0 + 1 if y0 < height else y0
    if x1 <= x0 or y1 <= y0 or x0 >= width or y0 >= height:
        return None
    return x0, y0, x1, y1


def box_key(box: Box) -> str:
    """The cache key of a crop: ``"x0,y0,x1,y1"``."""
    return ",".join(str(v) for v in box)


def parse_box_key(key: str) -> Box:
    x0, y0, x1, y1 = (int(v) for v in key.split(","))
    return x0, y0, x1, y1
