import numpy as np
import pytest

from labelwise.curate.objects import select_images_by_objects
from labelwise.errors import ValidationError

from .conftest import blobs


def _scene():
    """Objects of 5 planted appearance modes; class = mode; 2 objects per image, shuffled."""
    X, mode = blobs()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    image_of = np.empty(len(X), np.int64)
    image_of[order] = np.arange(len(X)) // 2
    return X, mode, image_of


def test_every_class_gets_an_image_even_the_rare_one():
    X, mode, image_of = _scene()
    chosen = select_images_by_objects(X, mode, image_of, budget=5, seed=0)
    assert len(chosen) == len(set(chosen.tolist())) == 5
    classes = {int(mode[i]) for i in np.flatnonzero(np.isin(image_of, chosen))}
    assert classes == {0, 1, 2, 3, 4}


def test_object_classes_are_balanced_not_proportional():
    X, mode, image_of = _scene()
    chosen = select_images_by_objects(X, mode, image_of, budget=40, seed=0)
    objects = np.flatnonzero(np.isin(image_of, chosen))
    counts = np.bincount(mode[objects], minlength=5)
    assert counts[4] == 8  # the rare class: all of it
    assert counts[3] >= 12  # a small class gets far more than its 7% share of 80 objects


def test_suspected_mislabels_come_last():
    X, mode, image_of = _scene()
    suspicion = np.zeros(len(X))
    suspicion[mode == 4] = 0.9
    chosen = select_images_by_objects(X, mode, image_of, budget=4, seed=0,
                                      mislabel_scores=suspicion)
    # The rare class still takes its turn, but with its least suspicious object first.
    assert len(chosen) == 4


def test_bad_input_is_refused():
    X, mode, image_of = _scene()
    with pytest.raises(ValidationError, match="more than the"):
        select_images_by_objects(X, mode, image_of, budget=10_000)
    with pytest.raises(ValidationError, match="positive"):
        select_images_by_objects(X, mode, image_of, budget=0)
    with pytest.raises(ValidationError, match="image_of"):
        select_images_by_objects(X, mode, image_of[:3], budget=2)
