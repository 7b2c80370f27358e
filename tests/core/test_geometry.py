"""Pure geometry checks: boxes, polygons, keypoints and RLE masks in COCO pixel conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from labelwise.core.geometry import (
    EDGE_TOLERANCE,
    bbox_problem,
    clip_bbox,
    keypoints_bbox,
    keypoints_problem,
    num_labeled,
    polygon_area,
    polygon_bbox,
    polygon_problem,
    rle_area,
    rle_bbox,
    rle_counts,
    rle_problem,
)

W, H = 640, 480


# -- boxes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bbox", [
    [0, 0, W, H], [10, 20, 30, 40], [0.5, 0.5, 1.25, 2.75], (600, 400, 40, 80),
    [W - 1, H - 1, 1, 1],
    [-EDGE_TOLERANCE, 0, 10, 10],  # a rounding tool's box may poke out by up to the tolerance
    [0, 0, W + EDGE_TOLERANCE, H + 0.4],
])
def test_good_boxes(bbox):
    assert bbox_problem(bbox, W, H) is None


@pytest.mark.parametrize("bbox,fragments", [
    ([1, 2, 3], ["must have 4 numbers [x, y, width, height], got 3"]),
    ([1, 2, 3, 4, 5], ["got 5"]),
    ([0, 0, math.nan, 5], ["not a finite number", "fix the box"]),
    ([0, math.inf, 5, 5], ["not a finite number"]),
    ([0, 0, "5", 5], ["not a finite number"]),
    ([0, 0, True, 5], ["not a finite number"]),  # a bool is not a size
    ([10, 10, 0, 5], ["non-positive size (width 0, height 5)", "[x, y, width, height]"]),
    ([10, 10, 5, -3], ["non-positive size (width 5, height -3)"]),
    ([100, 100, -50, -50], ["non-positive size"]),
    ([-5, 0, 10, 10], ["lies outside the 640x480 image", "fix the box"]),
    ([0, -2, 10, 10], ["lies outside"]),
    ([600, 0, 50, 10], ["right edge 650", "lies outside"]),
    ([0, 470, 10, 20], ["bottom edge 490"]),
    ([W + 0.5, 0, 0.4, 10], ["has no area inside the 640x480 image"]),
    ([-0.9, 0, 0.5, 10], ["has no area inside"]),
])
def test_bad_boxes(bbox, fragments):
    problem = bbox_problem(bbox, W, H)
    assert problem is not None
    for fragment in fragments:
        assert fragment in problem


def test_clip_bbox_pulls_edges_into_the_image():
    assert clip_bbox([-0.5, -1, 10, 10], W, H) == (0.0, 0.0, 9.5, 9.0)
    assert clip_bbox([630, 470, 10.6, 10.4], W, H) == (630.0, 470.0, 10.0, 10.0)
    assert clip_bbox([1, 2, 3, 4], W, H) == (1.0, 2.0, 3.0, 4.0)


finite = st.floats(min_value=-50, max_value=700, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(x=finite, y=finite, w=finite, h=finite)
def test_an_accepted_box_clips_to_a_nonempty_box_inside_the_image(x, y, w, h):
    if bbox_problem([x, y, w, h], W, H) is not None:
        return
    cx, cy, cw, ch = clip_bbox([x, y, w, h], W, H)
    assert cw > 0 and ch > 0
    assert 0 <= cx and 0 <= cy and cx + cw <= W and cy + ch <= H


# -- polygons -----------------------------------------------------------------------------------

def test_polygon_checks():
    assert polygon_problem([0, 0, 10, 0, 10, 10], W, H) is None
    assert polygon_problem([0, 0, W + 1, 0, 5, H], W, H) is None  # within tolerance
    assert "at least 3 points" in polygon_problem([0, 0, 10, 10], W, H)
    assert "at least 3 points" in polygon_problem([0, 0, 10, 10, 5], W, H)  # odd count
    assert "not a finite number" in polygon_problem([0, 0, 10, math.nan, 5, 5], W, H)
    problem = polygon_problem([0, 0, 700, 0, 5, 5], W, H)
    assert "polygon spans x 0..700, y 0..5, outside the 640x480 image" in problem
    assert "fix the polygon's points" in problem


def test_polygon_bbox_covers_every_ring():
    assert polygon_bbox([[1, 2, 5, 2, 3, 8], [10, 1, 12, 1, 11, 4]]) == (1, 1, 11, 7)


@pytest.mark.parametrize("ring,area", [
    ([0, 0, 10, 0, 10, 10, 0, 10], 100.0),
    ([0, 0, 0, 10, 10, 10, 10, 0], 100.0),  # clockwise: same area
    ([0, 0, 4, 0, 0, 3], 6.0),
    ([0, 0, 4, 0, 4, 4, 2, 2, 0, 4], 12.0),  # concave: a notch of 4 out of 16
])
def test_polygon_area(ring, area):
    assert polygon_area(ring) == pytest.approx(area)


# -- keypoints ----------------------------------------------------------------------------------

def test_keypoints_problem():
    ok = [10, 10, 2, 20, 20, 1, 0, 0, 0]
    assert keypoints_problem(ok, 3, W, H) is None
    # An unlabeled point (v=0) may hold any placeholder coordinates.
    assert keypoints_problem([10, 10, 2, -999, 5000, 0, 0, 0, 0], 3, W, H) is None
    assert keypoints_problem([10, 10, 2.0, 20, 20, 1.0, 0, 0, 0.0], 3, W, H) is None
    wrong = keypoints_problem(ok[:6], 3, W, H)
    assert "must have 3 x 3 = 9 numbers [x, y, visibility, ...] for this skeleton, got 6" in wrong
    assert "got 12" in keypoints_problem(ok + [1, 1, 2], 3, W, H)
    assert "not a finite number" in keypoints_problem([10, math.nan, 2, 0, 0, 0, 0, 0, 0], 3, W, H)
    for v in (3, -1, 0.5):
        kps = [10, 10, 2, 20, 20, v, 0, 0, 0]
        expected = f"keypoint 1 has visibility {v:g}; it must be 0, 1 or 2"
        assert keypoints_problem(kps, 3, W, H) == expected
    outside = keypoints_problem([10, 10, 2, 700, 20, 1, 0, 0, 0], 3, W, H)
    assert "keypoint 1 at (700, 20) lies outside the 640x480 image" in outside
    assert "set its visibility to 0" in outside


def test_keypoints_bbox_and_count_use_labeled_points_only():
    kps = [10, 20, 2, 30, 5, 1, 500, 400, 0]
    assert keypoints_bbox(kps) == (10, 5, 20, 15)
    assert num_labeled(kps) == 2
    assert keypoints_bbox([1, 1, 0, 2, 2, 0]) is None
    assert num_labeled([1, 1, 0]) == 0


# -- RLE masks ----------------------------------------------------------------------------------

def _random_masks(n: int = 200):
    rng = np.random.default_rng(7)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = (rng.random((h, w)) < rng.random() * 0.4).astype(np.uint8)
        if i % 4 == 0:
            m[:] = 0
        if i % 5 == 0:
            m[rng.integers(0, h):, rng.integers(0, w):] = 1
        if i % 7 == 0:
            m[:] = 1
        yield np.asfortranarray(m)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_rle_decoding_matches_pycocotools():
    for m in _random_masks():
        h, w = m.shape
        rle = mask_utils.encode(m)
        runs = rle_counts({"size": [h, w], "counts": rle["counts"].decode()})
        assert sum(runs) == h * w
        assert rle_area(runs) == int(m.sum()) == int(mask_utils.area(rle))
        flat = m.flatten(order="F")
        expected_runs = [len(list(g)) for _, g in __import__("itertools").groupby(flat)]
        if flat[0] == 1:
            expected_runs = [0, *expected_runs]
        assert runs == expected_runs
        box = rle_bbox(runs, h)
        if m.sum() == 0:
            assert box is None
        else:
            assert box == pytest.approx(mask_utils.toBbox(rle).tolist())
        assert rle_problem({"size": [h, w], "counts": rle["counts"].decode()}, w, h) is None
        assert rle_problem({"size": [h, w], "counts": runs}, w, h) is None


def test_rle_counts_refuses_bad_encodings():
    with pytest.raises(ValueError, match="invalid character"):
        rle_counts({"counts": "ab\x7f"})
    with pytest.raises(ValueError, match="ends in the middle of a number"):
        rle_counts({"counts": "0P"})  # 'P' sets the continue bit and nothing follows
    with pytest.raises(ValueError, match="ends in the middle"):
        rle_counts({"counts": "o" * 20})  # a number longer than 64 bits
    with pytest.raises(ValueError, match="negative run length"):
        rle_counts({"counts": [3, -1, 4]})
    with pytest.raises(ValueError, match="list of run lengths or a COCO-compressed string"):
        rle_counts({"counts": [1.5, 2]})
    with pytest.raises(ValueError, match="list of run lengths"):
        rle_counts({"counts": [True, 3]})
    with pytest.raises(ValueError, match="list of run lengths"):
        rle_counts({"size": [2, 2]})
    # Deltas from the fourth run on can go negative: a valid encoding of an invalid mask.
    with pytest.raises(ValueError, match="negative"):
        rle_counts({"counts": "1111@"})  # "@" is -16 after the sign bit


def test_rle_problem():
    not_rle = rle_problem([1, 2], 2, 2)
    assert not_rle == "RLE segmentation must be an object with 'size' and 'counts'"
    assert "size [3, 3] does not match the image's [height, width] [2, 4]" in rle_problem(
        {"size": [3, 3], "counts": [9]}, 4, 2)
    assert "size 'ab' does not match" in rle_problem({"size": "ab", "counts": [9]}, 4, 2)
    assert "RLE runs cover 7 pixels but the mask is 2x4 = 8" in rle_problem(
        {"size": [2, 4], "counts": [3, 4]}, 4, 2)
    assert "invalid character" in rle_problem({"size": [2, 4], "counts": "\u00e9"}, 4, 2)


def test_rle_bbox_of_a_run_that_wraps_columns_spans_full_height():
    # 4x3 mask (h=4): pixels 2..5 set -> column 0 rows 2-3 and column 1 rows 0-1.
    assert rle_bbox([2, 4, 6], 4) == (0.0, 0.0, 2.0, 4.0)
    assert rle_bbox([5, 0, 7], 4) is None  # a zero-length run sets nothing
