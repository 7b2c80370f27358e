import numpy as np
import pytest

from labelwise.curate import class_quotas, select_labeled
from labelwise.errors import ValidationError

from .conftest import blobs


def test_quotas_keep_rare_classes_whole_and_share_the_rest():
    assert class_quotas(np.array([500, 300, 12, 0]), 100).tolist() == [44, 44, 12, 0]
    assert class_quotas(np.array([5, 5]), 100).tolist() == [5, 5]
    assert class_quotas(np.array([10, 10, 10]), 7).tolist() == [3, 2, 2]


def labeled_pool():
    """Three classes of unequal size; class 0 has two sub-modes (300 + 30 rows)."""
    X, mode = blobs((300, 30, 200, 15), d=32)
    labels = np.array([0, 0, 1, 2])[mode]
    return X, labels, mode


def test_balanced_counts_with_rare_class_kept_whole():
    X, labels, _ = labeled_pool()
    chosen = select_labeled(X, labels, budget=90, seed=0)
    assert len(set(chosen.tolist())) == 90
    assert np.bincount(labels[chosen]).tolist() == [38, 37, 15]


def test_covers_each_class_clusters():
    X, labels, mode = labeled_pool()
    chosen = select_labeled(X, labels, budget=30, seed=0)
    # The small sub-mode of class 0 is covered although it is 9% of the class.
    assert (mode[chosen] == 1).any()


def test_leaves_out_likely_mislabeled_rows():
    X, labels, _ = labeled_pool()
    scores = np.zeros(len(X))
    # 40 suspects (7% of the pool: material noise), one of them in the rare class.
    suspects = np.r_[np.arange(0, 300, 10), np.arange(330, 530, 22), 535]
    scores[suspects] = 0.9
    chosen = select_labeled(X, labels, budget=200, seed=0, mislabel_scores=scores)
    assert not np.isin(suspects[:-1], chosen).any()
    # The rare class is kept whole, a suspect included: its quota needs every row.
    assert 535 in chosen


def test_deterministic_given_seed():
    X, labels, _ = labeled_pool()
    a = select_labeled(X, labels, budget=50, seed=4)
    assert np.array_equal(a, select_labeled(X, labels, budget=50, seed=4))


def test_bad_input_gets_clear_errors():
    X, labels, _ = labeled_pool()
    with pytest.raises(ValidationError, match="budget"):
        select_labeled(X, labels, budget=0)
    with pytest.raises(ValidationError, match="larger than the pool"):
        select_labeled(X, labels, budget=len(X) + 1)
    with pytest.raises(ValidationError, match="mislabel_scores"):
        select_labeled(X, labels, budget=5, mislabel_scores=np.zeros(3))
    with pytest.raises(ValidationError, match="shape"):
        select_labeled(X, labels[:-1], budget=5)


def test_a_few_suspects_in_a_clean_pool_stay_in():
    # Under MATERIAL_NOISE of the pool looks mislabeled: hard examples, not noise.
    X, labels, _ = labeled_pool()
    scores = np.zeros(len(X))
    suspects = np.array([0, 5, 340])
    scores[suspects] = 0.9
    everything_but_one = select_labeled(X, labels, budget=len(X) - 1, seed=0,
                                        mislabel_scores=scores)
    assert np.isin(suspects, everything_but_one).sum() >= 2


def test_margins_favour_boundary_rows_and_keep_classes_balanced():
    X, labels, _ = labeled_pool()
    rng = np.random.default_rng(0)
    margins = rng.uniform(0.9, 1.0, len(X))  # easy
    hard = rng.choice(np.flatnonzero(labels < 2), 60, replace=False)
    margins[hard] = rng.uniform(-0.1, 0.2, len(hard))
    chosen = select_labeled(X, labels, budget=90, seed=0, margins=margins)
    assert len(set(chosen.tolist())) == 90
    # The given margins steer the first half of the budget (the rest follows models trained
    # on the picks): a uniform draw of 75 from the 530 rows of classes 0 and 1 takes about 8.
    assert np.isin(hard, chosen).sum() >= 20
    counts = np.bincount(labels[chosen], minlength=3)
    assert counts[2] == 15  # the rare class is kept whole
    assert (counts[:2] >= 37 // 2).all()  # every class keeps half of its balanced quota
    assert np.array_equal(chosen, select_labeled(X, labels, budget=90, seed=0, margins=margins))


def test_margins_keep_whole_a_class_the_full_budget_keeps_whole():
    # Budget 50 over 3 classes: the rare class (15 rows) fits its fair share (16) whole; the
    # first, margin-drawn half alone (25 rows, 8 a class) would not take all of it.
    X, labels, _ = labeled_pool()
    margins = np.random.default_rng(1).uniform(-0.5, 1.0, len(X))
    chosen = select_labeled(X, labels, budget=50, seed=0, margins=margins)
    assert len(set(chosen.tolist())) == 50
    assert np.bincount(labels[chosen], minlength=3)[2] == 15


def test_bad_margins_get_a_clear_error():
    X, labels, _ = labeled_pool()
    with pytest.raises(ValidationError, match="margins must be"):
        select_labeled(X, labels, budget=5, margins=np.full(len(X), 3.0))


def test_refine_passes_draw_rows_near_the_boundary_of_the_picks_model():
    # Two classes split by the sign of column 0; the given margins say nothing (all equal),
    # so only the retrained models can steer the later draws towards the boundary.
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 400)
    X = np.c_[np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 0.6, 800),
              np.full(800, 4.0), rng.normal(0, 0.05, (800, 6))].astype(np.float32)
    flat = np.full(800, 0.5)
    chosen = select_labeled(X, labels, budget=200, seed=0, margins=flat)
    assert len(np.unique(chosen)) == 200
    # A random half and a boundary-weighted half: about 0.8 of the pool's mean distance from
    # the boundary (a random draw of 200: about 1.0).
    assert np.abs(X[chosen, 0]).mean() < 0.9 * np.abs(X[:, 0]).mean()
