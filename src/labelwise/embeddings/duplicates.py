"""Near-duplicate groups: images whose embeddings point (almost) the same way.

Two images are near-duplicates when the cosine distance ``1 - cos`` of their L2-normalised
embeddings is at most ``threshold``. Groups are the connected components of that relation
over the k-NN graph, so a chain of edited copies (original -> crop -> crop of the JPEG) lands
in one group even when its ends are further apart than the threshold.

Default threshold, ``DEFAULT_THRESHOLD = 0.05``, chosen for precision. Measured with
EfficientNet-Lite0 at 224 px on 2,000 Fashion-MNIST test images plus 200 edited copies (the
hardest case we have: small, centred product shots of the same few kinds, where distinct
images sit close together): at 0.05 no pair of different images is flagged (precision 1.00)
and 54% of the copies are found: flips 97%, brightness/contrast changes 85%, 2x resizes 65%,
but 90% crops 17% and JPEG re-encodes at quality 60 3%; these move a 28 px image further
than the gap to its nearest different image. Raising the threshold trades precision for
recall there (0.08: recall 0.75, precision 0.89; 0.10: 0.87 / 0.67). On 320 px photo crops
the median distance of a copy is 0.01 (resize, brightness/contrast), 0.03 (flip) and 0.06
(JPEG at quality 60, 90% crop): where different images are far apart, as in most photo
collections, ``threshold=0.1`` catches the heavier edits too. docs/algorithms.md has the
table.

    >>> import numpy as np
    >>> X = np.array([[1, 0], [0.999, 0.04], [0, 1]], dtype=np.float32)
    >>> [g.members.tolist() for g in find_near_duplicates(X, threshold=0.01)]
    [[0, 1]]
"""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass

import numpy as np

from labelwise.embeddings.index import (
    IndexOptions,
    VectorIndex,
    knn_graph,
    l2_normalize,
    validate_vectors,
)
from labelwise.errors import ValidationError

#: Cosine distance at or below which two images count as near-duplicates (see module doc).
DEFAULT_THRESHOLD = 0.05
#: Neighbours per image looked at: a group of m copies needs each copy to see another one.
DEFAULT_K = 10
#: Centrality scores this close count as equal.
TIE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class DuplicateGroup:
    """One group of near-duplicates, by row position (or id, after ``relabel``).

    ``members`` (m,) int64 sorted ascending, m >= 2; ``representative`` the most central
    member (highest mean cosine similarity to the others; the smallest on a tie, so the
    first of a pair); ``distances`` (m,) float32 the
    cosine distance of each member to the representative (0 for itself), aligned with
    ``members``; lower = closer copy.
    """

    members: np.ndarray
    representative: int
    distances: np.ndarray

    def relabel(self, ids: np.ndarray) -> DuplicateGroup:
        """The same group with positions replaced by ``ids[position]``, members re-sorted."""
        new = np.asarray(ids)[self.members]
        order = np.argsort(new, kind="stable")
        return DuplicateGroup(
            members=new[order].astype(np.int64),
            representative=int(np.asarray(ids)[self.representative]),
            distances=self.distances[order],
        )


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float in [0, 2] (the range of cosine distance), or a clear error."""
    t = float(threshold)
    if not 0.0 <= t <= 2.0:
        raise ValidationError(
            f"threshold must be a cosine distance between 0 and 2, got {threshold}; "
            f"the default {DEFAULT_THRESHOLD} finds edited copies"
        )
    return t


def duplicate_pairs(
    distances: np.ndarray, neighbours: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Edges of the k-NN graph at cosine distance <= ``threshold``, each pair once.

    Args:
        distances: (n, k) cosine distances from ``knn_graph``.
        neighbours: (n, k) row positions from ``knn_graph`` (-1 = none).

    Returns:
        ``(pairs, pair_distances)``: (p, 2) int64 with ``pairs[:, 0] < pairs[:, 1]``, sorted,
        and their (p,) float32 distances.
    """
    t = check_threshold(threshold)
    dist = np.asarray(distances, dtype=np.float32)
    nbr = np.asarray(neighbours, dtype=np.int64)
    if dist.shape != nbr.shape or dist.ndim != 2:
        raise ValidationError(
            f"distances and neighbours must both be (n, k), got {dist.shape} and {nbr.shape}"
        )
    rows, cols = np.nonzero((dist <= t) & (nbr >= 0))
    a, b = rows.astype(np.int64), nbr[rows, cols]
    d = dist[rows, cols]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    lo, hi, d = lo[keep], hi[keep], d[keep]
    if len(lo) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    # A pair found from both sides appears twice: keep one.
    order = np.lexsort((hi, lo))
    lo, hi, d = lo[order], hi[order], d[order]
    first = np.ones(len(lo), bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return np.stack([lo[first], hi[first]], axis=1), d[first]


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` nodes joined by ``pairs`` (p, 2): union-find in numpy.

    Each round hooks every edge's larger root under its smaller one, then compresses paths
    by pointer jumping, until no edge joins two roots. A label is the smallest node of its
    component, so labels are stable across runs.
    """
    parent = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return parent
    a, b = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    while True:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            return parent
        lo, hi = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        np.minimum.at(parent, hi, lo)  # parents only ever decrease: no cycles
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def group_duplicates(Xn: np.ndarray, labels: np.ndarray) -> list[DuplicateGroup]:
    """Groups of size >= 2 from component ``labels`` (n,), for unit vectors ``Xn`` (n, d).

    The representative maximises ``x_i . sum_j x_j``, which for unit vectors is exactly the
    member with the highest mean cosine similarity to the others: O(m d), no m x m matrix.
    Groups come largest first, ties by smallest member.
    """
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sizes = np.diff(np.r_[starts, len(labels)])
    groups = []
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        members = np.sort(order[start : start + size])
        V = Xn[members]
        scores = V @ V.sum(axis=0)
        # Near-ties (a pair is always a tie) go to the smallest member: stable across runs.
        centre = int(np.flatnonzero(scores >= scores.max() - TIE_TOLERANCE)[0])
        dist = np.clip(1.0 - V @ V[centre], 0.0, 2.0).astype(np.float32)
        dist[centre] = 0.0
        groups.append(DuplicateGroup(members.astype(np.int64), int(members[centre]), dist))
    groups.sort(key=lambda g: (-len(g.members), int(g.members[0])))
    return groups


def find_near_duplicates(
    X: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    index: VectorIndex | None = None,
    options: IndexOptions | None = None,
    pair_filter: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> list[DuplicateGroup]:
    """Near-duplicate groups among the rows of ``X`` (n, d) raw embeddings.

    Args:
        X: embeddings, one row per image (normalised here).
        threshold: largest cosine distance (``1 - cos``, in [0, 2]) between two copies.
        k: neighbours per row looked at in the k-NN graph.
        index: an index built on ``X`` to reuse (its ids are ignored: results are positions).
        options: how to build the index when none is given (``auto`` backend).
        pair_filter: a second check ``(pairs (p, 2), distances (p,)) -> keep (p,) bool`` on the
            candidate pairs before they are joined (``labelwise.embeddings.verify``'s pixel
            check in the service).

    Returns:
        Groups by row position, largest first; rows in no group are unique at ``threshold``.
    """
    t = check_threshold(threshold)
    arr = validate_vectors(X)
    if len(arr) < 2:
        return []
    dist, nbr = knn_graph(arr, k, index=index, options=options)
    pairs, pair_dist = duplicate_pairs(dist, nbr, threshold=t)
    if pair_filter is not None and len(pairs):
        pairs = pairs[np.asarray(pair_filter(pairs, pair_dist), dtype=bool)]
    labels = connected_components(len(arr), pairs)
    return group_duplicates(l2_normalize(arr), labels)
