"""Near-duplicate groups: planted copies are grouped, distinct images are not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from labelwise.embeddings.duplicates import (
    DEFAULT_THRESHOLD,
    connected_components,
    duplicate_pairs,
    find_near_duplicates,
)
from labelwise.embeddings.index import knn_graph
from labelwise.errors import ValidationError


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def nudge(v: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly ``distance`` (cosine) from unit ``v``, in a random direction."""
    w = rng.normal(size=v.shape)
    w -= (w @ v) * v
    w = unit(w)
    cos = 1.0 - distance
    return cos * v + np.sqrt(1 - cos**2) * w


@pytest.fixture
def planted():
    """300 distinct vectors (pairwise distance ~1) plus planted copies of a few of them."""
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(300, 64)))
    extra, groups = [], {}
    for original, copies in {5: [0.01], 17: [0.02, 0.03], 40: [0.0, 0.004, 0.02]}.items():
        members = [original]
        for d in copies:
            members.append(300 + len(extra))
            extra.append(nudge(base[original], d, rng))
        groups[original] = members
    # A chain: 100 -> a (0.03) -> b (0.03 from a, further from 100): one group.
    a = nudge(base[100], 0.03, rng)
    b = nudge(a, 0.03, rng)
    groups[100] = [100, 300 + len(extra), 301 + len(extra)]
    extra += [a, b]
    # Just too far to count: 0.08 from its original at the default threshold.
    extra.append(nudge(base[200], 0.08, rng))
    X = np.vstack([base, np.array(extra)]).astype(np.float32)
    return X * rng.uniform(0.5, 3.0, size=(len(X), 1)).astype(np.float32), groups


def test_planted_copies_form_exactly_the_planted_groups(planted):
    X, groups = planted
    found = find_near_duplicates(X)
    assert sorted(g.members.tolist() for g in found) == sorted(groups.values())
    by_first = {int(g.members[0]): g for g in found}
    for original, members in groups.items():
        g = by_first[original]
        assert g.members.dtype == np.int64 and (np.diff(g.members) > 0).all()
        assert g.distances.shape == g.members.shape
        assert g.distances[g.members.tolist().index(g.representative)] == 0
        assert (g.distances <= 2 * DEFAULT_THRESHOLD + 1e-6).all()
    # The original sits between its copies, so it is the most central member.
    assert by_first[17].representative == 17 and by_first[40].representative == 40
    assert by_first[100].representative == groups[100][1]  # the middle of the chain
    assert by_first[5].representative == 5  # a pair: the smaller position
    sizes = sorted((len(m) for m in groups.values()), reverse=True)
    assert [len(g.members) for g in found] == sizes


def test_the_threshold_decides(planted):
    X, groups = planted
    exact_only = find_near_duplicates(X, threshold=0.0005)
    assert [g.members.tolist() for g in exact_only] == [[40, 303]]  # the 0.0 copy only
    loose = find_near_duplicates(X, threshold=0.1)
    assert [200, len(X) - 1] in [g.members.tolist() for g in loose]


def test_relabel_maps_positions_to_ids(planted):
    X, _ = planted
    ids = np.arange(len(X), dtype=np.int64)[::-1] * 10  # descending: order flips
    g = next(g for g in find_near_duplicates(X) if g.members[0] == 17)
    r = g.relabel(ids)
    assert r.members.tolist() == sorted(ids[g.members].tolist())
    assert r.representative == ids[17]
    lookup = dict(zip(g.members.tolist(), g.distances.tolist()))
    assert r.distances.tolist() == [lookup[int(np.flatnonzero(ids == m)[0])] for m in r.members]


def test_no_duplicates_no_groups():
    X = np.eye(20, dtype=np.float32)
    assert find_near_duplicates(X) == []
    assert find_near_duplicates(X[:1]) == []


def test_a_large_group_of_identical_images_is_one_group():
    """More copies than neighbours looked at: chains through the k-NN graph still join them."""
    rng = np.random.default_rng(1)
    X = np.vstack([np.tile(rng.normal(size=16), (25, 1)), rng.normal(size=(30, 16))])
    [g] = find_near_duplicates(X.astype(np.float32), k=3)
    assert g.members.tolist() == list(range(25))


def test_pairs_are_listed_once():
    X = np.array([[1, 0], [1, 0.01], [0, 1]], dtype=np.float32)
    dist, nbr = knn_graph(X, 2)
    pairs, d = duplicate_pairs(dist, nbr, threshold=0.01)
    assert pairs.tolist() == [[0, 1]] and d.shape == (1,)


def test_union_find_matches_scipy():
    rng = np.random.default_rng(2)
    n = 2000
    pairs = rng.integers(0, n, size=(1500, 2))
    labels = connected_components(n, pairs)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, want = scipy_components(graph, directed=False)
    # Same partition: a one-to-one map between the two labelings.
    assert len(set(zip(labels.tolist(), want.tolist()))) == len(set(want.tolist()))
    assert len(set(labels.tolist())) == len(set(want.tolist()))
    for comp in np.unique(labels):  # a label is the smallest member
        assert comp == np.flatnonzero(labels == comp).min()


def test_long_chain_is_one_component():
    n = 1000
    pairs = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)[::-1]
    assert (connected_components(n, pairs) == 0).all()


@pytest.mark.parametrize("threshold", [-0.1, 2.5, float("nan")])
def test_bad_threshold(threshold):
    with pytest.raises(ValidationError, match="cosine distance between 0 and 2"):
        find_near_duplicates(np.eye(3, dtype=np.float32), threshold=threshold)
