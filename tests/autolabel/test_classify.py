"""Training categorization heads: planted blobs are learned, bad training data is refused."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.classify import (
    MIN_PER_CLASS,
    TrainOptions,
    check_training_data,
    held_out_splits,
    train_classifier,
)
from labelwise.autolabel.metrics import data_digest
from labelwise.errors import ValidationError

from .blobs import blobs, multilabel_blobs

CLASSES = ["cat", "dog", "fox"]


def test_separable_blobs_are_learned_and_the_card_says_so():
    X, y = blobs(40)
    model = train_classifier(X, y, classes=CLASSES)
    X_new, y_new = blobs(50, seed=7)
    assert (model.predict(X_new) == y_new).mean() >= 0.98
    card = model.card
    assert card.accuracy >= 0.95
    assert card.evaluation == "5-fold cross-validation" and card.held_out_rows == 120
    assert card.counts == {"cat": 40, "dog": 40, "fox": 40}
    assert np.array(card.confusion).sum() == 120 and card.warnings == []
    assert [c["support"] for c in card.per_class] == [40, 40, 40]
    probs = model.predict_proba(X_new)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_overlapping_blobs_score_below_separable_ones_and_calibration_helps():
    X, y = blobs(150, spread=4.0, seed=1)
    card = train_classifier(X, y, classes=CLASSES).card
    assert 0.4 < card.accuracy < 0.95  # planted overlap: the card reports errors honestly
    assert card.ece_after <= card.ece_before + 0.02
    buckets = card.buckets["held_out"]
    assert sum(b["count"] for b in buckets.values()) == 450
    assert buckets["hard"]["observed_error"] > buckets["medium"]["observed_error"] or \
        buckets["medium"]["count"] == 0


def test_large_sets_use_a_held_out_share():
    X, y = blobs(700, spread=2.0)
    card = train_classifier(X, y, classes=CLASSES, options=TrainOptions(head="linear")).card
    assert card.evaluation.startswith("held-out 20%") and card.held_out_rows == 420


def test_mlp_head_learns_classes_that_no_line_separates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) * 2
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)  # XOR of two signs
    X = np.c_[X, np.full((400, 1), 5.0)]  # 3-d, off the origin
    linear = train_classifier(X, y, classes=["same", "mixed"],
                              options=TrainOptions(head="linear"))
    mlp = train_classifier(X, y, classes=["same", "mixed"], options=TrainOptions(head="mlp"))
    assert mlp.card.head.startswith("mlp") and mlp.card.accuracy > linear.card.accuracy + 0.1


def test_multi_label_learns_each_tag_with_its_own_threshold():
    X, Y = multilabel_blobs(300)
    model = train_classifier(X, Y, classes=list("wxyz"), multi_label=True)
    card = model.card
    assert card.task == "multi-label" and card.calibration == "isotonic"
    assert min(c["f1"] for c in card.per_class) >= 0.85
    assert all(0 < c["threshold"] < 1 for c in card.per_class)
    X_new, Y_new = multilabel_blobs(200, seed=7)
    assert (model.predict(X_new) == Y_new).mean() >= 0.9


def test_few_labels_train_with_a_warning():
    X, y = blobs(10)
    model = train_classifier(X, y, classes=CLASSES)
    assert any("only 30 labeled images" in w for w in model.card.warnings)


@pytest.mark.parametrize(
    ("y", "classes", "message"),
    [
        (np.zeros(0, np.int64), CLASSES, "no labels to train on"),
        (np.zeros(30, np.int64), ["cat"], "at least 2 classes"),
        (np.r_[np.zeros(20, int), np.ones(7, int), np.full(3, 2)], CLASSES,
         "class 'fox' has 3 labeled examples; label 2 more"),
        (np.r_[np.zeros(25, int), np.ones(5, int)], CLASSES, "class 'fox' has 0 labeled"),
        (np.full(30, 3), CLASSES, "outside 0..2"),
        (np.zeros((30, 2), np.int64), CLASSES, "shape (30, 2)"),
        (np.r_[np.zeros(15), np.ones(15)] + 0.5, CLASSES, "whole numbers"),
    ],
)
def test_bad_training_data_is_refused_with_the_reason(y, classes, message):
    X = np.random.default_rng(0).normal(size=(max(len(y), 1), 8)) if len(y) else np.zeros((0, 8))
    with pytest.raises(ValidationError) as err:
        train_classifier(X[: len(y)], y, classes=classes)
    assert message in str(err.value)


def test_multi_label_refuses_a_tag_on_every_image():
    X, Y = multilabel_blobs(60)
    Y[:, 2] = 1
    with pytest.raises(ValidationError) as err:
        check_training_data(X, Y, classes=list("wxyz"), multi_label=True)
    assert "class 'y' is on 60 of 60 images" in str(err.value)


def test_bad_embeddings_and_options_are_refused():
    X, y = blobs(10)
    X[3, 1] = np.nan
    with pytest.raises(ValidationError, match="row 3 holds NaN"):
        train_classifier(X, y, classes=CLASSES)
    X, y = blobs(10)
    with pytest.raises(ValidationError, match="unknown head 'svm'; choose one of auto, linear"):
        train_classifier(X, y, classes=CLASSES, options=TrainOptions(head="svm"))
    with pytest.raises(ValidationError, match="unknown uncertainty"):
        train_classifier(X, y, classes=CLASSES, options=TrainOptions(uncertainty="vibes"))
    with pytest.raises(ValidationError, match="ids must be unique"):
        train_classifier(X, y, classes=CLASSES, ids=np.zeros(30, np.int64))
    with pytest.raises(ValidationError, match="X_unlabeled has 4 dimensions"):
        train_classifier(X, y, classes=CLASSES, X_unlabeled=np.zeros((5, 4)))
    model = train_classifier(X, y, classes=CLASSES)
    with pytest.raises(ValidationError, match="have 4 dimensions but the model was trained on 16"):
        model.predict(np.zeros((2, 4)))


def test_every_held_out_split_keeps_every_class():
    y = np.r_[np.zeros(50, int), np.ones(MIN_PER_CLASS, int)]
    splits = held_out_splits(y, multi_label=False, seed=0)
    assert len(splits) == 5
    assert all((y[s] == 1).any() for s in splits)
    assert sorted(np.concatenate(splits).tolist()) == list(range(len(y)))


def test_data_digest_names_the_training_data():
    ids = np.array([5, 9, 2])
    y = np.array([0, 1, 1])
    assert data_digest(ids, y) == data_digest(ids[::-1], y[::-1])  # order does not matter
    assert data_digest(ids, y) != data_digest(ids, np.array([0, 1, 0]))
    X, y30 = blobs(10)
    a = train_classifier(X, y30, classes=CLASSES, ids=np.arange(100, 130)).card.data_digest
    assert a == data_digest(np.arange(100, 130), y30)
