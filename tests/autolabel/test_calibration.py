"""Calibration: planted miscalibration is found and undone; thresholds and ECE are right."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.calibration import (
    Calibrator,
    apply_knots,
    expected_calibration_error,
    fit_calibrator,
    fit_isotonic,
    fit_temperature,
    fit_thresholds,
    sigmoid,
    softmax,
)
from labelwise.errors import ValidationError


def _overconfident(n: int, k: int, temperature: float, seed: int = 0):
    """Logits whose true class distribution is softmax(logits / temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 3
    truth = softmax(logits / temperature)
    y = (rng.uniform(size=(n, 1)) > truth.cumsum(axis=1)).sum(axis=1)
    return logits, y


@pytest.mark.parametrize("planted", [0.5, 1.0, 3.0])
def test_temperature_recovers_the_planted_temperature(planted):
    logits, y = _overconfident(5000, 4, planted)
    assert fit_temperature(logits, y) == pytest.approx(planted, rel=0.1)


def test_temperature_scaling_lowers_the_calibration_error():
    logits, y = _overconfident(4000, 5, 3.0)
    before = expected_calibration_error(softmax(logits), y)
    cal = fit_calibrator(logits[:2000], y[:2000], multi_label=False)
    after = expected_calibration_error(cal(logits[2000:]), y[2000:])
    assert before > 0.1 and after < 0.03
    assert (cal(logits).argmax(axis=1) == logits.argmax(axis=1)).all()  # ranking unchanged


def test_ece_of_a_known_miscalibration():
    # Always 90% sure, right 60% of the time: ECE = 0.3.
    probs = np.tile([0.9, 0.1], (100, 1))
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    assert expected_calibration_error(probs, y) == pytest.approx(0.3)
    # Multi-label: each probability against the 0/1 truth.
    P = np.full((10, 2), 0.5)
    Y = np.r_[np.ones((5, 2)), np.zeros((5, 2))]
    assert expected_calibration_error(P, Y, multi_label=True) == pytest.approx(0.0)
    with pytest.raises(ValidationError, match="at least one prediction"):
        expected_calibration_error(np.zeros((0, 2)), np.zeros(0))


def test_isotonic_undoes_a_planted_monotone_distortion():
    rng = np.random.default_rng(0)
    s = rng.uniform(size=20000)
    y = rng.uniform(size=s.size) < s**2  # the score says s, the truth is s^2
    x, p = fit_isotonic(s[:10000], y[:10000])
    assert (np.diff(x) > 0).all() and (np.diff(p) >= 0).all()
    grid = np.linspace(0.05, 0.95, 19)
    assert np.abs(apply_knots(grid, x, p) - grid**2).max() < 0.06
    assert apply_knots(np.array([-1.0, 2.0]), x, p).tolist() == [p[0], p[-1]]  # flat outside


def test_multi_label_calibrator_is_per_class_and_round_trips():
    rng = np.random.default_rng(1)
    n = 20000
    logits = rng.normal(size=(n, 2)) * 3
    Y = np.c_[rng.uniform(size=n) < sigmoid(logits[:, 0] / 3),   # over-confident
              rng.uniform(size=n) < sigmoid(logits[:, 1] * 2)]   # timid
    half = n // 2
    cal = fit_calibrator(logits[:half], Y[:half], multi_label=True)
    before = expected_calibration_error(sigmoid(logits[half:]), Y[half:], multi_label=True)
    after = expected_calibration_error(cal(logits[half:]), Y[half:], multi_label=True)
    assert after < before / 2
    again = Calibrator.from_dict(cal.to_dict())
    assert np.array_equal(again(logits), cal(logits))


def test_thresholds_maximise_f1_per_class():
    # Class 0: positives score 0.6-0.9, negatives 0.1-0.4 -> the cut falls between.
    p0 = np.r_[np.linspace(0.6, 0.9, 20), np.linspace(0.1, 0.4, 30)]
    t0 = np.r_[np.ones(20), np.zeros(30)]
    # Class 1: rare positives with low scores -> a low threshold beats 0.5.
    p1 = np.r_[np.linspace(0.2, 0.3, 5), np.linspace(0.0, 0.15, 45)]
    t1 = np.r_[np.ones(5), np.zeros(45)]
    th = fit_thresholds(np.c_[p0, p1], np.c_[t0, t1])
    assert 0.4 < th[0] < 0.6
    assert 0.15 < th[1] <= 0.2
    assert ((np.c_[p0, p1] >= th) == np.c_[t0, t1]).all()
