"""Detection data: choose images by the objects in them.

A detector learns from objects, but people label images. ``select_images_by_objects`` ranks
the objects of each class (every appearance cluster's most typical object first, then more
per cluster in proportion to its size, then the rare appearances), deals classes out in
turn, rarest class first, so object classes stay balanced, and takes the image of each
object dealt until ``budget`` images are chosen. An image chosen for one object brings its
other objects along, which count towards their classes' turns.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 8)).astype(np.float32)
    >>> labels = np.r_[np.zeros(27, int), np.ones(3, int)]
    >>> image_of = np.arange(30) // 2          # two objects per image
    >>> chosen = select_images_by_objects(X, labels, image_of, budget=4, seed=0)
    >>> len(chosen), bool(np.isin([13, 14], chosen).any())    # the rare class is in
    (4, True)
"""

from __future__ import annotations

import numpy as np

from labelwise.curate.labeled import MISLABEL_THRESHOLD
from labelwise.curate.scores import DEFAULT_K, _kmeans, check_embeddings, check_labels
from labelwise.curate.select import MAX_CLUSTERS, _Picker, _typical_fill
from labelwise.embeddings.index import l2_normalize
from labelwise.errors import ValidationError

#: Share of a class's objects ranked by the rare fill (the rest by typicality per cluster).
RARE_SHARE = 0.2


def select_images_by_objects(
    X: np.ndarray,
    labels: np.ndarray,
    image_of: np.ndarray,
    *,
    budget: int,
    seed: int = 0,
    mislabel_scores: np.ndarray | None = None,
    rarity_scores: np.ndarray | None = None,
    k: int = DEFAULT_K,
) -> np.ndarray:
    """Image ids to label (or keep), chosen through their objects.

    Args:
        X: (n, d) raw embeddings of the objects (crops).
        labels: (n,) object class indices (-1 = unlabeled object: ranked, no class turn).
        image_of: (n,) the image id of each object.
        budget: images to choose, 1..number of distinct images.
        mislabel_scores: optional (n,); objects above ``MISLABEL_THRESHOLD`` are ranked last.
        rarity_scores: optional (n,) ``rarity``; the rarest objects of each class get
            ``RARE_SHARE`` of its ranking after the typical ones.

    Returns: (budget,) int64 image ids in the order they were chosen.
    """
    arr = check_embeddings(X)
    n = len(arr)
    lab = np.asarray(labels, dtype=np.int64)
    if lab.shape != (n,) or (n and lab.min() < -1):
        raise ValidationError(f"labels must be {n} class indices (-1 = unlabeled)")
    images = np.asarray(image_of, dtype=np.int64)
    if images.shape != (n,):
        raise ValidationError(f"image_of must give the image of each of the {n} objects")
    distinct = np.unique(images)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValidationError(f"budget must be a positive number of images, got {budget!r}")
    if budget > len(distinct):
        raise ValidationError(
            f"budget {budget} is more than the {len(distinct)} images that hold objects"
        )
    suspicion = np.zeros(n) if mislabel_scores is None else np.asarray(mislabel_scores)
    rare = None if rarity_scores is None else np.asarray(rarity_scores, dtype=np.float64)
    Xn = l2_normalize(arr)
    groups = np.where(lab >= 0, lab, lab.max(initial=-1) + 1)  # unlabeled: their own group
    check_labels(groups, n=n)
    queues = [
        _rank_class(Xn, np.flatnonzero(groups == g), suspicion, rare, seed=seed, k=k)
        for g in np.unique(groups)
    ]
    # Rarest class first: it gets its turn before the budget runs out.
    queues.sort(key=len)
    return _deal(queues, groups, images, budget)


def _rank_class(
    Xn: np.ndarray,
    members: np.ndarray,
    suspicion: np.ndarray,
    rare: np.ndarray | None,
    *,
    seed: int,
    k: int,
) -> list[int]:
    """All of a class's objects, best first: typical per cluster, then rare, then suspects."""
    trusted = members[suspicion[members] <= MISLABEL_THRESHOLD]
    suspects = members[suspicion[members] > MISLABEL_THRESHOLD]
    suspects = suspects[np.argsort(suspicion[suspects], kind="stable")]
    if len(trusted) <= 2:
        return [*trusted.tolist(), *suspects.tolist()]
    n_typical = max(1, round(len(trusted) * (1 - RARE_SHARE))) if rare is not None else len(trusted)
    labels, _ = _kmeans(Xn[trusted], min(max(1, round(np.sqrt(len(trusted)))), MAX_CLUSTERS),
                        seed)
    picker = _Picker(len(trusted))
    _typical_fill(Xn[trusted], labels, picker, n_typical, k=k, proportional=True)
    typical = trusted[picker.result()]
    rest = np.setdiff1d(trusted, typical)
    if rare is not None:
        rest = rest[np.argsort(-rare[rest], kind="stable")]
    return [*typical.tolist(), *rest.tolist(), *suspects.tolist()]


def _deal(
    queues: list[list[int]], groups: np.ndarray, images: np.ndarray, budget: int
) -> np.ndarray:
    """Take one object per class in turn; each object's image is chosen, objects counted."""
    chosen: list[int] = []
    taken_images: set[int] = set()
    counted = np.zeros(int(groups.max()) + 1, np.int64)
    by_image: dict[int, list[int]] = {}
    for obj, img in enumerate(images.tolist()):
        by_image.setdefault(img, []).append(obj)
    cursors = [0] * len(queues)
    class_of = [int(groups[q[0]]) for q in queues]
    while len(chosen) < budget:
        # The class with the fewest objects counted so far takes its turn.
        open_ = [i for i, q in enumerate(queues) if cursors[i] < len(q)]
        if not open_:
            break
        turn = min(open_, key=lambda i: (counted[class_of[i]], len(queues[i])))
        queue = queues[turn]
        while cursors[turn] < len(queue) and int(images[queue[cursors[turn]]]) in taken_images:
            cursors[turn] += 1
        if cursors[turn] == len(queue):
            continue
        img = int(images[queue[cursors[turn]]])
        taken_images.add(img)
        chosen.append(img)
        np.add.at(counted, groups[by_image[img]], 1)
    return np.asarray(chosen, dtype=np.int64)
