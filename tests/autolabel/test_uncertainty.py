"""Uncertainty scores, difficulty buckets with known error rates, coverage and review lift."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.metrics import coverage_at_precision, review_lift
from labelwise.autolabel.uncertainty import (
    DifficultyBuckets,
    expected_error,
    fit_buckets,
    uncertainty,
)
from labelwise.errors import ValidationError

PROBS = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])


def test_scores_on_known_distributions():
    assert uncertainty(PROBS, method="margin") == pytest.approx([0.0, 1.0, 0.7, 1.0])
    assert uncertainty(PROBS, method="least_confidence") == pytest.approx([0, 0.5, 0.4, 2 / 3])
    ent = uncertainty(PROBS, method="entropy")
    assert ent[0] == 0 and ent[3] == pytest.approx(1.0) and 0 < ent[1] < ent[2] < 1
    assert expected_error(PROBS) == pytest.approx([0, 0.5, 0.4, 2 / 3])


def test_multi_label_uncertainty_is_the_distance_to_each_threshold():
    P = np.array([[0.9, 0.05], [0.3, 0.0], [0.95, 0.2]])
    u = uncertainty(P, multi_label=True, thresholds=np.array([0.3, 0.2]))
    # Row 0: class 0 is 0.6 / 0.7 of the way to certain-yes, class 1 0.15 / 0.2 to certain-no.
    assert u == pytest.approx([1 - 0.15 / 0.2, 1.0, 1.0])
    err = expected_error(P, multi_label=True, thresholds=np.array([0.3, 0.2]))
    assert err[0] == pytest.approx(1 - 0.9 * 0.95)


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValidationError, match="choose one of least_confidence, margin, entropy"):
        uncertainty(PROBS, method="bald")
    with pytest.raises(ValidationError, match="between 0 and 1"):
        uncertainty(PROBS * 2)
    with pytest.raises(ValidationError, match="strictly between 0 and 1"):
        uncertainty(PROBS, multi_label=True, thresholds=np.array([0.5, 0.0, 0.5]))
    with pytest.raises(ValidationError, match="same items"):
        fit_buckets(np.zeros(3), np.ones(2, bool), np.zeros(3))


def _planted(seed: int = 0):
    """Uncertainty uniform on [0, 1]; error rate 0 below 0.4, 10% up to 0.7, 60% above."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=20000)
    rate = np.select([u < 0.4, u < 0.7], [0.0, 0.1], 0.6)
    wrong = rng.uniform(size=u.size) < rate
    return u, ~wrong, rate


def test_buckets_find_the_planted_error_regions():
    u, correct, rate = _planted()
    b = fit_buckets(u, correct, rate)
    # Easy runs past 0.4 until the errors from 0.4 on make 1% of the bucket: 0.4 + x with
    # 0.1 x / (0.4 + x) = 0.01, x = 0.044.
    assert b.easy_max == pytest.approx(0.444, abs=0.02)
    assert b.hard_min == pytest.approx(0.7, abs=0.02)
    held = b.held_out
    assert held["easy"].estimated_error <= 0.01
    assert held["hard"].observed_error == pytest.approx(0.6, abs=0.03)
    assert held["easy"].share + held["medium"].share + held["hard"].share == pytest.approx(1)
    # New items from the same process fall in buckets with the error rates the card promised.
    u2, correct2, rate2 = _planted(seed=1)
    names = b.assign(u2)
    assert (~correct2[names == "easy"]).mean() <= 0.015  # 1% plus sampling noise
    summary = b.summary(u2, rate2)
    assert summary["hard"]["expected_error"] == pytest.approx(0.6, abs=0.02)
    assert DifficultyBuckets.from_dict(b.to_dict()).assign(u2).tolist() == names.tolist()


def test_a_few_lucky_items_do_not_make_an_easy_bucket():
    # 30 held-out items, all right, but the calibrated model expects 5% errors on each.
    b = fit_buckets(np.linspace(0, 1, 30), np.ones(30, bool), np.full(30, 0.05))
    assert b.easy_max is None and b.held_out["easy"].count == 0


def test_coverage_at_precision_and_review_lift():
    u = np.arange(100) / 100  # least uncertain first
    correct = np.ones(100, bool)
    correct[[50, 90, 91, 92, 93, 94, 95, 96, 97, 98]] = False
    # The first 99 hold 9 errors; the first 50 none, the first 90 one (98.9%).
    assert coverage_at_precision(u, correct, precision=0.99) == pytest.approx(0.50)
    assert coverage_at_precision(u, correct, precision=0.98) == pytest.approx(0.90)
    # The 10 most uncertain hold 9 of the 10 errors: lift 0.9 / 0.1 = 9.
    assert review_lift(u, correct, share=0.10) == pytest.approx(9.0)
    assert np.isnan(review_lift(u, np.ones(100, bool)))


def test_a_one_percent_promise_needs_enough_held_out_items():
    # No errors and a model sure of itself: 30 items cannot vouch for 1%, 100 can.
    small = fit_buckets(np.linspace(0, 0.1, 30), np.ones(30, bool), np.zeros(30))
    large = fit_buckets(np.linspace(0, 0.1, 100), np.ones(100, bool), np.zeros(100))
    assert small.easy_max is None
    assert large.easy_max == pytest.approx(0.1) and large.held_out["easy"].count == 100
    assert large.held_out["easy"].estimated_error == pytest.approx(0.5 / 101)
