"""Which labels are likely wrong: neighbour voting plus out-of-fold model confidence.

``mislabel_scores`` combines two views of each item's label:

- **neighbour voting** (SimiFeat, Zhu et al. 2022): in a good embedding space an item's
  nearest neighbours mostly share its true class, so the similarity-weighted share of its
  ``k`` neighbours carrying another label estimates how likely its own label is wrong;
- **self-confidence** (confident learning, Northcutt et al. 2021): the out-of-fold
  probability a model gives the item's label; a model that never saw the item cannot have
  memorised its wrong label.

Both are class distributions per item; their average ``q`` gives the score ``1 - q[label]``
and the suggested label ``argmax`` of ``q`` over the other classes.

    >>> import numpy as np
    >>> X = np.r_[np.tile([1, 0], (5, 1)), np.tile([0, 1], (5, 1))].astype(np.float32)
    >>> scores, suggested = mislabel_scores(X, np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), k=3)
    >>> int(np.argmax(scores)), int(suggested[4])
    (4, 0)
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from labelwise.curate.scores import check_embeddings, check_labels, check_positive_int
from labelwise.embeddings.index import knn_graph, l2_normalize
from labelwise.errors import ValidationError

#: Neighbours that vote on each item's label by default.
DEFAULT_K = 20
#: Weight of the neighbour vote against the model's probabilities when both are present.
VOTE_WEIGHT = 0.3
#: Noise counts as concentrated between a few class pairs when the ``n_classes`` largest
#: off-diagonal cells of the estimated joint hold at least this share of its mass.
CONCENTRATED_SHARE = 0.6
#: In concentrated noise, scores of items outside the confident-joint issue set are
#: multiplied by this, so every item the joint flags ranks above them.
UNFLAGGED_FACTOR = 0.5


def mislabel_scores(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = DEFAULT_K,
    pred_probs: np.ndarray | None = None,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """How likely each given label is wrong, and the label the item more likely has.

    Args:
        X: (n, d) raw embeddings.
        labels: (n,) given class indices 0..C-1.
        k: neighbours that vote (similarity-weighted).
        pred_probs: optional (n, C) out-of-fold class probabilities (``out_of_fold_probs``);
            rows must sum to 1.
        neighbours: a k-NN graph ``(distances, positions)`` of ``X`` already computed
            (``knn_graph``; its first ``k`` columns are used).

    Returns:
        ``(scores, suggested)``: (n,) float32 in [0, 1], higher = more likely mislabeled;
        (n,) int64 the most likely class other than the given one.
    """
    arr = check_embeddings(X, min_rows=2)
    lab = check_labels(labels, n=len(arr))
    k = check_positive_int(k, name="k")
    n_classes = int(lab.max()) + 1
    if pred_probs is not None:
        probs = _check_probs(pred_probs, n=len(arr), n_classes=n_classes)
        n_classes = probs.shape[1]
    if n_classes < 2:
        raise ValidationError("labels hold a single class; mislabel scores need at least two")
    votes = neighbour_votes(arr, lab, k=k, n_classes=n_classes, neighbours=neighbours)
    q = votes if pred_probs is None else VOTE_WEIGHT * votes + (1 - VOTE_WEIGHT) * probs
    scores, suggested = _scores_from(q, lab)
    flagged, concentration = confident_joint_issues(q, lab)
    if concentration >= CONCENTRATED_SHARE:
        # Noise between a few confusable pairs: a confusable class's clean items have low
        # confidence too, and the joint's per-class thresholds tell them apart better.
        scores = np.where(flagged, scores, scores * UNFLAGGED_FACTOR).astype(np.float32)
    return scores, suggested


def _scores_from(q: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(labels))
    scores = (1.0 - q[rows, labels]).astype(np.float32)
    others = q.copy()
    others[rows, labels] = -np.inf
    return np.clip(scores, 0.0, 1.0), np.argmax(others, axis=1).astype(np.int64)


def label_margins(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Probability of the given label minus the highest other one: (n,) float32 in [-1, 1].

    From out-of-fold ``probs`` (n, C): near 0 = on a decision boundary (the examples a
    linear model's boundary is made of), 1 = easy, below 0 = the model prefers another class.
    """
    probs = np.asarray(probs, dtype=np.float64)
    lab = check_labels(labels, n=len(probs))
    rows = np.arange(len(lab))
    others = probs.copy()
    others[rows, lab] = -np.inf
    return (probs[rows, lab] - others.max(axis=1)).astype(np.float32)


def confident_joint_issues(q: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Items confident learning flags as mislabeled, and how concentrated the noise is.

    Confident learning (Northcutt et al. 2021) with per-class thresholds ``t_j`` = mean
    ``q[:, j]`` over the items labeled ``j``: an item labeled ``i`` counts towards the joint
    cell ``(i, j)`` of the most likely class ``j`` it clears the threshold of. Rows of the
    joint are scaled to the class counts; then, for each ``j != i``, the ``round(C[i, j])``
    items labeled ``i`` with the largest ``q[:, j] - q[:, i]`` are flagged (pruning by noise
    rate), except items whose most likely class is their label.

    Args:
        q: (n, C) class probabilities per item (rows sum to 1).
        labels: (n,) given class indices.

    Returns:
        ``(flagged, concentration)``: (n,) bool, True = estimated mislabeled; and the share
        of the joint's off-diagonal mass held by its ``C`` largest cells (1 = all the noise
        sits between at most C class pairs; about C / (C (C - 1)) when it is uniform).
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 2:
        raise ValidationError(f"q must be (n, C) class probabilities, got shape {q.shape}")
    n, n_classes = q.shape
    labels = check_labels(labels, n=n)
    if n and labels.max() >= n_classes:
        raise ValidationError(f"labels go up to {labels.max()} but q has {n_classes} classes")
    rows = np.arange(n)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, q[rows, labels])
    thresholds = np.divide(sums, counts, out=np.ones(n_classes), where=counts > 0)
    above = q >= thresholds[None, :]
    guess = np.argmax(np.where(above, q, -np.inf), axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[above.any(axis=1)], guess[above.any(axis=1)]), 1.0)
    row_sums = joint.sum(axis=1, keepdims=True)
    joint = np.divide(joint * counts[:, None], row_sums, out=np.zeros_like(joint),
                      where=row_sums > 0)
    np.fill_diagonal(joint, 0.0)
    flagged = np.zeros(n, bool)
    by_class = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[by_class], np.arange(n_classes + 1))
    for i in np.flatnonzero((np.round(joint) > 0).any(axis=1)):
        members = by_class[starts[i] : starts[i + 1]]
        for j in np.flatnonzero(np.round(joint[i]) > 0):
            margin = q[members, j] - q[members, i]
            take = int(min(round(joint[i, j]), len(members) - 1))
            flagged[members[np.argsort(-margin, kind="stable")[:take]]] = True
    flagged &= np.argmax(q, axis=1) != labels
    off = np.sort(joint.ravel())[::-1]
    total = off.sum()
    concentration = float(off[:n_classes].sum() / total) if total > 0 else 0.0
    return flagged, concentration


def neighbour_votes(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    k: int,
    n_classes: int,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Similarity-weighted label shares among each row's ``k`` nearest other rows: (n, C).

    A neighbour's weight is its cosine similarity floored at 0.01 (so a far neighbour still
    counts a little); rows sum to 1. ``neighbours`` reuses a k-NN graph of ``X``.
    """
    if neighbours is None:
        dist, nbr = knn_graph(X, k)
    else:
        dist, nbr = (np.asarray(a)[:, :k] for a in neighbours)
        if len(nbr) != len(labels):
            raise ValidationError(
                f"neighbours has {len(nbr)} rows but there are {len(labels)} labels"
            )
    found = nbr >= 0
    weights = np.where(found, np.clip(1.0 - dist, 0.01, None), 0.0)
    votes = np.zeros((len(labels), n_classes), np.float64)
    rows = np.repeat(np.arange(len(labels)), nbr.shape[1])
    np.add.at(votes, (rows, labels[np.maximum(nbr, 0)].ravel()), weights.ravel())
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.full_like(votes, 1.0 / n_classes), where=total > 0)


def _check_probs(pred_probs: np.ndarray, *, n: int, n_classes: int) -> np.ndarray:
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != n or probs.shape[1] < n_classes:
        raise ValidationError(
            f"pred_probs must have shape ({n}, C) with C >= {n_classes} classes, "
            f"got {probs.shape}"
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValidationError("pred_probs must hold finite probabilities >= 0")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        bad = int(np.flatnonzero(~np.isclose(probs.sum(axis=1), 1.0, atol=1e-3))[0])
        raise ValidationError(
            f"pred_probs row {bad} sums to {probs[bad].sum():.4f}; each row must sum to 1 "
            "(pass probabilities, not logits)"
        )
    return probs


#: Largest training part of a fold: beyond it a linear model's accuracy has saturated and
#: only its fitting time grows (a 100,000-row pool trains each fold on a sample).
MAX_TRAIN_ROWS = 20_000


def out_of_fold_probs(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_train_rows: int = MAX_TRAIN_ROWS,
) -> np.ndarray:
    """Class probabilities of each row from a model that did not train on it: (n, n_classes).

    Logistic regression (``C`` inverse regularisation) on L2-normalised embeddings, fitted on
    ``folds - 1`` stratified folds (at most ``max_train_rows`` of them, drawn at random) and
    applied to the held-out one. Classes too rare for a fold's training part get probability
    0 there. Deterministic given ``seed``.
    """
    arr = check_embeddings(X, min_rows=2)
    lab = check_labels(labels, n=len(arr))
    folds = check_positive_int(folds, name="folds")
    if folds < 2 or folds > len(arr):
        raise ValidationError(f"folds must be between 2 and {len(arr)}, got {folds}")
    n_classes = int(lab.max()) + 1
    if len(np.unique(lab)) < 2:
        raise ValidationError("labels hold a single class; a model needs at least two")
    max_train_rows = check_positive_int(max_train_rows, name="max_train_rows")
    return _out_of_fold(l2_normalize(arr), lab, folds, seed, C, n_classes, max_train_rows)


def _out_of_fold(
    Xn: np.ndarray,
    labels: np.ndarray,
    folds: int,
    seed: int,
    C: float,
    n_classes: int,
    max_train_rows: int,
) -> np.ndarray:
    probs = np.zeros((len(Xn), n_classes), np.float64)
    rng = np.random.default_rng(seed)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare classes (fewer members than folds) and short solver runs are expected here.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, held in split.split(Xn, labels):
            if len(train) > max_train_rows:
                train = np.sort(rng.choice(train, max_train_rows, replace=False))
            if len(np.unique(labels[train])) < 2:
                probs[held] = np.bincount(labels[train], minlength=n_classes) / len(train)
                continue
            model = LogisticRegression(C=C, max_iter=500, random_state=seed)
            model.fit(Xn[train], labels[train])
            probs[np.ix_(held, model.classes_)] = model.predict_proba(Xn[held])
    return probs
