import numpy as np
import pytest

from labelwise.curate import (
    coverage_radius,
    get_selector,
    select_kcenter_greedy,
    select_random,
    select_typiclust,
    select_unlabeled,
    typicality,
)
from labelwise.curate.select import rare_share
from labelwise.errors import ValidationError

from .conftest import blobs


@pytest.mark.parametrize("method", ["labelwise", "typiclust"])
def test_tiny_budget_covers_every_mode_including_the_rare_one(modes, method):
    X, mode = modes
    chosen = get_selector(method)(X, budget=5, seed=0)
    assert sorted(mode[chosen].tolist()) == [0, 1, 2, 3, 4]


def test_unlabeled_covers_modes_at_larger_budgets_and_picks_in_proportion(modes):
    X, mode = modes
    chosen = select_unlabeled(X, budget=40, seed=0)
    counts = np.bincount(mode[chosen], minlength=5)
    assert (counts >= 1).all()
    assert counts[0] > counts[3]  # the big mode gets more than a small one


def test_unlabeled_adds_far_rows_at_large_budgets():
    X, _ = blobs((400,), d=16, spread=0.1)
    rng = np.random.default_rng(5)
    # Planted: 30 rows in a sparse shell around the mode.
    shell = (np.eye(16, dtype=np.float32)[0] * 3 + rng.normal(0, 1.0, (30, 16))).astype(np.float32)
    Xp = np.r_[X, shell]
    assert rare_share(80, len(Xp)) > 0
    chosen = select_unlabeled(Xp, budget=80, seed=0)
    assert (chosen >= 400).sum() >= 5


def test_tiny_and_large_budgets_spend_nothing_on_rare_rows():
    assert rare_share(10, 10_000) == 0.0
    assert rare_share(100, 10_000) == 0.0
    assert 0 < rare_share(1_000, 10_000) < rare_share(1_900, 10_000) <= 0.1
    # From a fifth of the pool on the selection is a stratified random sample.
    assert rare_share(2_500, 10_000) == rare_share(5_000, 10_000) == 0.0


def test_large_budgets_draw_a_stratified_random_sample():
    X, mode = blobs((600, 300, 100), d=16, spread=0.3)
    chosen = select_unlabeled(X, budget=500, seed=0)
    # Each mode in proportion to its size (a random draw would only do so on average).
    assert np.allclose(np.bincount(mode[chosen]), [300, 150, 50], atol=15)
    # Not the most typical rows: the picks spread like the pool, some are far from the mode.
    typ = typicality(X, mode, k=10)
    assert typ[chosen].mean() < np.quantile(typ, 0.75)
    assert not np.array_equal(chosen, select_unlabeled(X, budget=500, seed=1))


def test_tiny_budgets_take_the_row_nearest_each_centroid():
    # Two modes of 300: one wide, with a tight clump at its edge (the densest spot).
    rng = np.random.default_rng(0)
    axes = np.eye(8, dtype=np.float32) * 3
    wide = axes[0] + rng.normal(0, 0.4, (270, 8))
    clump = axes[0] + axes[2] / 3 + rng.normal(0, 0.01, (30, 8))
    other = axes[1] + rng.normal(0, 0.4, (300, 8))
    X = np.r_[wide, clump, other].astype(np.float32)
    chosen = select_unlabeled(X, budget=2, seed=0)
    # TypiClust takes the clump's row; the centroid's neighbour stands for the whole mode.
    assert np.isin(select_typiclust(X, budget=2, seed=0), np.arange(270, 300)).any()
    assert not np.isin(chosen, np.arange(270, 300)).any()
    assert sorted((chosen >= 300).tolist()) == [False, True]


def test_no_near_duplicate_group_is_chosen_twice():
    X, _ = blobs((50, 50, 50), d=16)
    rng = np.random.default_rng(1)
    # Planted: every row of the first mode gets a near-identical copy.
    copies = X[:50] + rng.normal(0, 1e-3, (50, 16)).astype(np.float32)
    Xd = np.r_[X, copies]
    groups = [np.array([i, 150 + i]) for i in range(50)]
    for budget in (5, 60, 150):
        chosen = select_unlabeled(Xd, budget=budget, seed=0, duplicate_groups=groups)
        assert len(set(chosen.tolist())) == len(chosen) == budget
        originals = np.where(chosen >= 150, chosen - 150, chosen)
        assert len(set(originals.tolist())) == len(chosen)
    # With every row taken, only one member of each group can be: fewer rows come back.
    everything = select_unlabeled(Xd, budget=200, seed=0, duplicate_groups=groups)
    assert len(everything) == 150


def test_kcenter_radius_shrinks_with_budget(modes):
    X, _ = modes
    radii = [coverage_radius(X, select_kcenter_greedy(X, budget=b, seed=0)) for b in (5, 20, 80)]
    assert radii[0] > radii[1] > radii[2]
    # The rare mode is far from the rest: 5 farthest-first picks reach it.
    chosen = select_kcenter_greedy(X, budget=5, seed=0)
    assert (chosen >= 680).any()


def test_typiclust_picks_the_most_typical_row_of_each_mode(modes):
    X, mode = modes
    chosen = select_typiclust(X, budget=5, seed=0)
    for c in chosen:
        members = X[mode == mode[c]]
        centre = members.mean(axis=0)
        dist = np.linalg.norm(members - centre, axis=1)
        assert np.linalg.norm(X[c] - centre) <= np.quantile(dist, 0.3)


@pytest.mark.parametrize("method", ["labelwise", "random", "kcenter", "typiclust"])
def test_selection_is_deterministic_and_distinct(modes, method):
    X, _ = modes
    a = get_selector(method)(X, budget=30, seed=7)
    b = get_selector(method)(X, budget=30, seed=7)
    assert a.dtype == np.int64
    assert np.array_equal(a, b)
    assert len(set(a.tolist())) == 30


def test_random_differs_across_seeds(modes):
    X, _ = modes
    assert not np.array_equal(select_random(X, budget=30, seed=0), select_random(X, budget=30, seed=1))


@pytest.mark.parametrize("budget", [0, -3, 689, 2.5, True])
def test_bad_budgets_get_clear_errors(modes, budget):
    X, _ = modes
    with pytest.raises(ValidationError, match="budget"):
        select_unlabeled(X, budget=budget)


def test_bad_shapes_and_names_get_clear_errors(modes):
    X, _ = modes
    with pytest.raises(ValidationError, match="shape"):
        select_typiclust(X.ravel(), budget=3)
    with pytest.raises(ValidationError, match="choose one of labelwise, random"):
        get_selector("coreset")
    with pytest.raises(ValidationError, match="outside"):
        select_unlabeled(X, budget=3, duplicate_groups=[np.array([0, 10_000])])


def test_kcenter_continues_from_initial_rows(modes):
    X, mode = modes
    initial = np.flatnonzero(mode != 4)[::50]  # nothing from the rare mode yet
    chosen = select_kcenter_greedy(X, budget=1, seed=0, initial=initial)
    assert mode[chosen[0]] == 4  # the farthest row from them is in the rare mode
    with pytest.raises(ValidationError, match="initial"):
        select_kcenter_greedy(X, budget=1, initial=np.array([10_000]))
