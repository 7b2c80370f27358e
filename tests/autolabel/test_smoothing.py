"""Neighbour smoothing of pre-labels: the kernel, and train/apply measuring what they return."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.classify import TrainOptions, train_classifier
from labelwise.autolabel.smoothing import neighbours_within, smooth_probabilities
from labelwise.autolabel.store import load_classifier, save_classifier
from labelwise.errors import ValidationError


def _blobs(n_per: int, *, seed: int = 0, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (3, 16))
    X = np.concatenate([c + rng.normal(0, spread, (n_per, 16)) for c in centres])
    return X.astype(np.float32), np.repeat(np.arange(3), n_per)


def test_smooth_probabilities_mixes_the_neighbours_mean():
    P = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    nbrs = np.array([[1, 2], [2, -1], [-1, -1]])
    out = smooth_probabilities(P, P, nbrs, weight=0.5)
    np.testing.assert_allclose(out[0], [0.5, 0.5])  # own [1, 0], neighbours' mean [0, 1]
    np.testing.assert_allclose(out[1], [0.0, 1.0])  # the -1 is skipped
    np.testing.assert_allclose(out[2], [0.0, 1.0])  # no neighbour: unchanged
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_weight_zero_and_bad_weights():
    P = np.array([[0.9, 0.1], [0.2, 0.8]])
    np.testing.assert_allclose(smooth_probabilities(P, P, np.array([[1], [0]]), weight=0), P)
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ValidationError, match="smoothing weight"):
            smooth_probabilities(P, P, np.array([[1], [0]]), weight=bad)


def test_neighbours_within_finds_same_blob_and_never_self():
    X, y = _blobs(30)
    nbrs = neighbours_within(X, k=5)
    assert nbrs.shape == (90, 5)
    assert not (nbrs == np.arange(90)[:, None]).any()
    assert (y[nbrs] == y[:, None]).mean() > 0.95
    # queries against another set: positions into that set
    Q, yq = _blobs(4, seed=0)
    pos = neighbours_within(X, k=3, queries=Q)
    assert pos.shape == (12, 3) and (y[pos] == yq[:, None]).mean() > 0.95


def test_smoothing_fixes_an_isolated_confident_mistake():
    """A point whose own prediction is wrong among 5 neighbours all of another class is
    pulled to the neighbours' class; a consistent neighbourhood keeps its class."""
    P = np.tile([[0.1, 0.9]], (6, 1))
    P[0] = [0.8, 0.2]  # wrong and fairly sure
    nbrs = np.array([[1, 2, 3, 4, 5]] + [[0, 1, 2, 3, 4]] * 5)
    out = smooth_probabilities(P, P, nbrs, weight=0.5)
    assert out[0].argmax() == 1 and out[1:].argmax(axis=1).tolist() == [1] * 5
    assert out[0].max() < 0.6  # and it is now uncertain, so reviewed early


def test_train_records_smoothing_only_with_unlabeled_single_label(tmp_path):
    X, y = _blobs(40, spread=2.5)
    rng = np.random.default_rng(1)
    labeled = rng.choice(len(X), 30, replace=False)
    rest = np.setdiff1d(np.arange(len(X)), labeled)
    classes = ["a", "b", "c"]
    plain = train_classifier(X[labeled], y[labeled], classes=classes)
    assert plain.smoothing is None and plain.card.params["smoothing"] is None
    off = train_classifier(X[labeled], y[labeled], classes=classes, X_unlabeled=X[rest],
                           options=TrainOptions(smoothing=0))
    assert off.smoothing is None
    model = train_classifier(X[labeled], y[labeled], classes=classes, X_unlabeled=X[rest])
    assert model.smoothing == {"weight": 0.5, "k": 10}
    assert "smoothed over 10 neighbours" in model.card.evaluation
    P = model.prelabel_proba(X[rest])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-6)
    assert (P.argmax(axis=1) == y[rest]).mean() > 0.9
    # stored and loaded: apply smooths the same way; smooth=False gives the raw model
    stored = load_classifier(save_classifier(tmp_path / "m", model).parent)
    assert stored.smoothing == model.smoothing
    np.testing.assert_allclose(stored.apply(X[rest]).probabilities, P, atol=1e-4)
    raw = stored.apply(X[rest], smooth=False).probabilities
    np.testing.assert_allclose(raw, model.predict_proba(X[rest]), atol=1e-4)
    with pytest.raises(ValidationError, match="smoothing"):
        train_classifier(X[labeled], y[labeled], classes=classes, X_unlabeled=X[rest],
                         options=TrainOptions(smoothing_k=0))


def test_multi_label_models_do_not_smooth():
    X, y = _blobs(30)
    T = np.eye(3, dtype=np.int64)[y]
    T[::4, (y[::4] + 1) % 3] = 1  # some rows carry two labels
    model = train_classifier(X[:60], T[:60], classes=["a", "b", "c"], multi_label=True,
                             X_unlabeled=X[60:])
    assert model.smoothing is None
