import numpy as np
import pytest

from labelwise.curate import select_validation
from labelwise.errors import ValidationError


def _labels():
    return np.r_[np.zeros(500, int), np.ones(300, int), np.full(12, 2)]


def test_every_class_is_in_and_the_large_ones_in_proportion():
    labels = _labels()
    chosen = select_validation(labels, size=100, seed=0)
    counts = np.bincount(labels[chosen], minlength=3)
    assert len(chosen) == len(set(chosen.tolist())) == 100
    assert counts[2] >= 1 and counts[0] > counts[1] > counts[2]


def test_suspicious_items_are_left_out_while_enough_others_remain():
    labels = _labels()
    rng = np.random.default_rng(0)
    suspicion = rng.uniform(0, 0.3, len(labels))
    wrong = rng.choice(len(labels), 80, replace=False)
    suspicion[wrong] = rng.uniform(0.6, 1.0, 80)
    chosen = select_validation(labels, size=200, seed=0, mislabel_scores=suspicion)
    assert not np.isin(chosen, wrong).any()


def test_a_class_whose_items_all_look_suspicious_is_still_represented():
    labels = _labels()
    suspicion = np.where(labels == 2, 0.9, 0.1)
    chosen = select_validation(labels, size=60, seed=0, mislabel_scores=suspicion)
    assert (labels[chosen] == 2).sum() >= 1


def test_rare_items_get_their_share_and_the_training_split_is_excluded():
    labels = _labels()
    rarity = np.linspace(0, 1, len(labels))
    train = np.arange(0, len(labels), 3)
    chosen = select_validation(labels, size=100, seed=1, rarity_scores=rarity, exclude=train)
    assert not np.isin(chosen, train).any()
    free = np.setdiff1d(np.arange(len(labels)), train)
    rarest_of_class0 = free[labels[free] == 0][-5:]
    assert np.isin(rarest_of_class0, chosen).all()


def test_same_seed_same_set_and_bad_input_is_refused():
    labels = _labels()
    assert (select_validation(labels, size=50, seed=4)
            == select_validation(labels, size=50, seed=4)).all()
    with pytest.raises(ValidationError, match="at least 1"):
        select_validation(labels, size=0)
    with pytest.raises(ValidationError, match="larger than the pool"):
        select_validation(labels, size=900)
    with pytest.raises(ValidationError, match="larger than the pool"):
        select_validation(labels, size=800, exclude=np.arange(100))
    with pytest.raises(ValidationError, match="outside"):
        select_validation(labels, size=5, exclude=[10_000])
    with pytest.raises(ValidationError, match="one value per row"):
        select_validation(labels, size=5, mislabel_scores=np.zeros(3))
