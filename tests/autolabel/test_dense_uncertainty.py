"""Doubt of box and keypoint pre-labels: matching, calibration, image error, evaluation splits."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.dense_service import DenseOptions, evaluation_splits
from labelwise.autolabel.dense_uncertainty import (
    Knots,
    image_expected_error,
    image_is_wrong,
    keypoints_right,
    match_detections,
    true_objects,
)
from labelwise.core.annotations import Annotation
from labelwise.errors import ValidationError


def box(label, x, y, w=10.0, h=10.0, conf=None):
    return Annotation(label=label, bbox=(x, y, w, h), source="model", confidence=conf)


def test_matching_is_greedy_by_score_within_a_class():
    truth = [box("a", 0, 0), box("b", 50, 50)]
    preds = [box("a", 1, 0, conf=0.6),   # overlaps truth 0 well, but scores lower
             box("a", 0, 0, conf=0.9),   # the exact box: matches first
             box("a", 50, 50, conf=0.8),  # right place, wrong class
             box("b", 58, 58, conf=0.7)]  # right class, IoU 4/196 < 0.5
    assert match_detections(truth, preds).tolist() == [-1, 0, -1, -1]
    assert match_detections(truth, preds, scores=[1.0, 0.0, 0.0, 0.0]).tolist() == [0, -1, -1, -1]
    assert match_detections([], preds).tolist() == [-1] * 4
    assert match_detections(truth, []).tolist() == []


def test_true_objects_take_boxes_from_polygons_and_points_and_skip_the_rest():
    anns = [
        Annotation("a", polygons=[[0, 0, 10, 0, 10, 5]]),
        Annotation("a", keypoints=[2, 3, 2, 8, 9, 1, 0, 0, 0]),
        Annotation("a", bbox=(0, 0, 4, 4), source="model"),
        Annotation("a", bbox=(0, 0, 4, 4), iscrowd=True),
        Annotation("b", bbox=(0, 0, 4, 4)),
        Annotation("a"),  # an image-level category
    ]
    got = true_objects(anns, ["a"])
    assert [a.bbox for a in got] == [(0, 0, 10, 5), (2, 3, 6, 6)]


def test_keypoints_are_right_when_most_labeled_points_are_close():
    truth = [10, 10, 2, 20, 20, 2, 30, 30, 1, 40, 40, 2, 0, 0, 0]
    near = [11, 10, 2, 20, 21, 2, 30, 30, 2, 40, 40, 2, 5, 5, 2]
    assert keypoints_right(truth, near, (0, 0, 50, 50)) is True
    # One of four labeled points 20 px off (limit 5 px): 75% < 80%.
    off = [11, 10, 2, 20, 21, 2, 30, 50, 2, 40, 40, 2, 0, 0, 0]
    assert keypoints_right(truth, off, (0, 0, 50, 50)) is False
    # A point predicted "not labeled" is a miss even at the right place.
    hidden = [10, 10, 0, 20, 20, 2, 30, 30, 2, 40, 40, 2, 0, 0, 0]
    assert keypoints_right(truth, hidden, (0, 0, 50, 50)) is False
    assert keypoints_right(truth, None, (0, 0, 50, 50)) is False
    assert keypoints_right([0, 0, 0] * 5, near, (0, 0, 50, 50)) is None


def test_image_expected_error_combines_kept_and_dropped_decisions():
    assert image_expected_error(np.array([]), np.array([])) == 0.0
    assert image_expected_error(np.array([0.9, 0.8]), np.array([0.1])) == pytest.approx(
        1 - 0.9 * 0.8 * 0.9)
    assert 0.0 <= image_expected_error(np.array([0.5] * 50), np.array([0.5] * 50)) <= 1.0


def test_an_image_is_wrong_when_a_box_is_spurious_missed_or_its_points_are_wrong():
    assert not image_is_wrong(2, np.array([0, 1]), np.array([True, True]))
    assert image_is_wrong(2, np.array([0, -1]), np.array([True, True]))     # spurious
    assert image_is_wrong(2, np.array([0]), np.array([True]))               # missed
    assert image_is_wrong(1, np.array([0]), np.array([False]))              # points wrong
    assert not image_is_wrong(0, np.array([], np.int64), np.array([], bool))
    assert image_is_wrong(1, np.array([], np.int64), np.array([], bool))


def test_calibration_knots_are_monotone_and_round_trip():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 2000)
    hits = rng.uniform(0, 1, 2000) < raw**2  # planted: the real hit rate is raw squared
    knots = Knots.fit(raw, hits)
    grid = np.linspace(0, 1, 101)
    p = knots(grid)
    assert np.all(np.diff(p) >= -1e-12)
    assert p[50] == pytest.approx(0.25, abs=0.08) and p[90] == pytest.approx(0.81, abs=0.08)
    # Never certain: the all-hit top block and all-miss bottom block are shrunk (Jeffreys).
    sure = Knots.fit(np.r_[np.zeros(9), np.ones(9)], np.r_[np.zeros(9), np.ones(9)])
    assert sure([0.0, 1.0]).tolist() == [0.05, 0.95]
    again = Knots.from_dict(knots.to_dict())
    assert np.allclose(again(grid), p)
    assert np.allclose(Knots.fit(np.array([0.3]), np.array([True]))(grid), grid)


def test_small_sets_get_k_folds_and_large_ones_a_held_out_share():
    method, splits = evaluation_splits(40, DenseOptions())
    assert method == "3-fold cross-validation" and len(splits) == 3
    held = np.sort(np.concatenate([test for _, test in splits]))
    assert held.tolist() == list(range(40))  # every image held out exactly once
    for train, test in splits:
        assert not set(train) & set(test) and len(train) + len(test) == 40
    method, splits = evaluation_splits(200, DenseOptions())
    assert method == "held-out 20% of the images" and len(splits) == 1
    assert len(splits[0][1]) == 40


@pytest.mark.parametrize("options, fragment", [
    ({"epoch": 3}, "unknown box/keypoint training option(s) ['epoch']"),
    ({"folds": 1}, "folds 1"),
    ({"epochs": 0}, "epochs, keypoint_epochs and patience"),
    ({"size": 100}, "size 100"),
    ({"crop": 48}, "crop 48"),
    ({"held_out": 0.9}, "held_out 0.9"),
    ({"classes": "disc"}, "classes must be a list"),
    ({"keep": 1.5}, "keep 1.5"),
])
def test_unusable_options_are_refused_with_the_fix(options, fragment):
    with pytest.raises(ValidationError) as err:
        DenseOptions.parse(options)
    assert fragment in str(err.value)
