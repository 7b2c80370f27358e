"""Decoding and resizing real images, refusing broken ones, and object crop boxes."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from labelwise.embeddings.preprocess import (
    box_key,
    crop_box,
    decode_image,
    load_square,
    object_bounds,
    parse_box_key,
    resize_square,
)
from labelwise.errors import ImageError

LIMIT = 10_000_000


def encode(array: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buf = BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    import skimage.data

    return skimage.data.chelsea()  # (300, 451, 3) RGB photo


def test_grey_png_becomes_rgb_of_the_requested_size(fmnist_dir):
    path = next(fmnist_dir.rglob("*.png"))
    grey = np.asarray(Image.open(path))
    out = load_square(path.read_bytes(), size=56, name="x.png", max_pixels=LIMIT)
    assert out.shape == (56, 56, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    expected = np.asarray(Image.fromarray(grey).resize((56, 56), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out[..., 0], expected)


def test_rgba_and_palette_images_are_converted(chelsea):
    rgba = np.dstack([chelsea, np.full(chelsea.shape[:2], 200, np.uint8)])
    out = load_square(encode(rgba), size=32, name="a.png", max_pixels=LIMIT)
    assert out.shape == (32, 32, 3)
    palette = Image.fromarray(chelsea).convert("P")
    buf = BytesIO()
    palette.save(buf, format="PNG")
    assert load_square(buf.getvalue(), size=32, name="p.png", max_pixels=LIMIT).shape == (32, 32, 3)


def test_jpeg_draft_decoding_stays_close_to_a_full_decode(chelsea):
    data = encode(chelsea, "JPEG", quality=95)
    fast = load_square(data, size=64, name="c.jpg", max_pixels=LIMIT)
    full = np.asarray(Image.open(BytesIO(data)).convert("RGB").resize(
        (64, 64), Image.Resampling.BILINEAR))
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 3


def test_crop_resizes_only_the_box(chelsea):
    data = encode(chelsea)
    box = (100, 50, 260, 210)
    out = load_square(data, size=40, name="c.png", max_pixels=LIMIT, box=box)
    expected = np.asarray(Image.fromarray(chelsea).crop(box).resize(
        (40, 40), Image.Resampling.BILINEAR))
    diff = np.abs(out.astype(int) - expected.astype(int))
    # Resizing the region may look at pixels just outside it (antialiasing); a crop cannot.
    assert diff[1:-1, 1:-1].max() <= 1 and diff.mean() < 0.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"GIF89a not really", "not an image"),
        (encode(np.zeros((40, 40, 3), np.uint8))[:60], "corrupt or truncated"),
    ],
)
def test_broken_bytes_are_image_errors_naming_the_file(data, message):
    with pytest.raises(ImageError, match=f"^cats/1.png: .*{message}"):
        load_square(data, size=32, name="cats/1.png", max_pixels=LIMIT)


def test_bombs_are_refused_before_decoding():
    big = encode(np.zeros((300, 400), np.uint8))  # 120,000 pixels, tiny file
    with pytest.raises(ImageError, match="120,000 pixels exceeds the limit of 100,000"):
        decode_image(big, name="big.png", max_pixels=100_000)


def test_resize_of_grey_and_rgb_agree(chelsea):
    grey = Image.fromarray(chelsea).convert("L")
    a = resize_square(grey, 24)
    b = resize_square(grey.convert("RGB"), 24)
    np.testing.assert_array_equal(a, b)


# -- object crops --------------------------------------------------------------------------------
def test_box_grows_by_the_margin_and_is_clipped():
    assert crop_box((10, 20, 50, 100), width=640, height=480) == (5, 10, 65, 130)
    assert crop_box((10, 20, 50, 100), width=640, height=480, margin=0) == (10, 20, 60, 120)
    # At the right/bottom edge: clipped to the image.
    assert crop_box((600, 400, 40, 80), width=640, height=480) == (596, 392, 640, 480)
    # Fractional boxes round outward.
    assert crop_box((1.5, 2.5, 3.2, 4.1), width=64, height=64, margin=0) == (1, 2, 5, 7)


def test_boxes_outside_the_image_and_points():
    assert crop_box((700, 10, 20, 20), width=640, height=480) is None
    assert crop_box((30, 40, 0, 0), width=640, height=480) == (30, 40, 31, 41)


def test_object_bounds_from_each_geometry():
    assert object_bounds(bbox=(1, 2, 3, 4), polygons=[[0, 0, 9, 9, 0, 9]]) == (1, 2, 3, 4)
    assert object_bounds(polygons=[[10, 20, 30, 20, 30, 60], [5, 25, 8, 30, 6, 28]]) == (
        5, 20, 25, 40)
    # Keypoints: only visible ones (v > 0) count.
    kps = [10, 10, 2, 500, 500, 0, 30, 50, 1]
    assert object_bounds(keypoints=kps) == (10, 10, 20, 40)
    assert object_bounds(keypoints=[0, 0, 0, 0, 0, 0]) is None
    assert object_bounds() is None  # an image-level category


def test_object_bounds_of_an_rle_mask():
    from pycocotools import mask as mask_utils

    m = np.zeros((40, 60), np.uint8, order="F")
    m[10:20, 30:45] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    assert object_bounds(rle=rle) == (30, 10, 15, 10)


def test_box_keys_round_trip():
    assert box_key((1, 2, 30, 40)) == "1,2,30,40"
    assert parse_box_key("1,2,30,40") == (1, 2, 30, 40)
