"""A smaller training set from labeled data: balanced, covering, without likely mislabels.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    >>> labels = np.r_[np.zeros(34, int), np.ones(6, int)]
    >>> chosen = select_labeled(X, labels, budget=12, seed=0)
    >>> np.bincount(labels[chosen]).tolist()
    [6, 6]
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from labelwise.curate.mislabels import label_margins
from labelwise.curate.scores import (
    DEFAULT_K,
    _kmeans,
    check_budget,
    check_embeddings,
    check_labels,
)
from labelwise.curate.select import MAX_CLUSTERS, _Picker, _typical_fill
from labelwise.embeddings.index import l2_normalize
from labelwise.errors import ValidationError

#: Items scoring above this in ``mislabel_scores`` are left out while others remain. High on
#: purpose: correct labels of hard, confusable items score 0.5-0.8 and a training set needs
#: them (at 0.5, a 25% Fashion-MNIST subset lost 1.4 points of accuracy); flipped labels
#: mostly score above 0.9.
MISLABEL_THRESHOLD = 0.8
#: Suspects are left out only when at least this share of the pool scores above
#: ``MISLABEL_THRESHOLD``: a few percent of hard, ambiguous items always do (3.8% of the
#: clean Fashion-MNIST pool), and leaving those out costs accuracy; injected noise of 10%
#: puts 8-15% above it.
MATERIAL_NOISE = 0.05
#: Rows scoring above this are left out even when the noise is not material: the model and
#: the neighbours agree on another class (0.9% of the clean Fashion-MNIST pool).
CERTAIN_MISLABEL = 0.95
#: Weight of the easiest rows (margin 1) in the margin-weighted draw; a row on the decision
#: boundary (margin 0) weighs 1 + this, one the model assigns to another class up to 2 + this.
EASY_WEIGHT = 0.02
#: With margins, the share of each class's balanced quota it is guaranteed; the rest of the
#: budget goes to the hardest rows of any class.
BALANCED_SHARE = 0.5
#: With margins, the share of the budget drawn by the pool's out-of-fold margins; the rest is
#: drawn in ``REFINE_PASSES`` equal parts, each by the margins of a model trained on the rows
#: chosen so far (the rows near *its* boundary are the ones it still gets wrong or barely right).
FIRST_PASS_SHARE = 0.5
#: Retrain-and-draw passes after the first draw (3 seeds at 25% of Fashion-MNIST, a quarter
#: of each quota guaranteed: 0 passes 87.2%, 2 passes 87.4%, 3 passes 87.8%, 4 passes 87.6%).
REFINE_PASSES = 3
#: Inverse regularisation of the pass models: logistic regression on L2-normalised rows.
REFINE_C = 10.0


def class_quotas(counts: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` over classes with ``counts`` (C,) as evenly as they allow: (C,) int64.

    Water-filling: a class smaller than its fair share is kept whole and the rest is shared
    by the others; remainders go to the largest classes. Quotas sum to ``min(budget,
    counts.sum())`` and never exceed a class's count.
    """
    counts = np.asarray(counts, dtype=np.int64)
    quotas = np.zeros_like(counts)
    open_ = counts > 0
    left = min(int(budget), int(counts.sum()))
    while left > 0 and open_.any():
        share = left // int(open_.sum())
        small = open_ & (counts - quotas <= share)
        if small.any():  # these fit whole: give them everything, re-share the rest
            left -= int((counts - quotas)[small].sum())
            quotas[small] = counts[small]
            open_ &= ~small
            continue
        quotas[open_] += share
        left -= share * int(open_.sum())
        order = np.flatnonzero(open_)[np.argsort(-counts[open_], kind="stable")]
        quotas[order[:left]] += 1
        left = 0
    return quotas


def select_labeled(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    budget: int,
    seed: int = 0,
    mislabel_scores: np.ndarray | None = None,
    margins: np.ndarray | None = None,
    k: int = DEFAULT_K,
) -> np.ndarray:
    """A class-balanced subset of labeled rows, rich in the examples a boundary is made of.

    1. Quotas per class by water-filling (``class_quotas``): rare classes are kept whole.
    2. When the noise is material (at least ``MATERIAL_NOISE`` of the rows score above
       ``MISLABEL_THRESHOLD`` in ``mislabel_scores``), those rows are left out, unless their
       class has too few other rows to fill its quota (then the least suspicious are used);
       otherwise only rows above ``CERTAIN_MISLABEL`` are.
    3. With ``margins``, the class's rows are drawn at random with weight
       ``1 + EASY_WEIGHT - margin``: boundary rows mostly, easy ones rarely (a linear model
       learns its boundary from the first; the easy ones repeat what it knows). That fills
       ``FIRST_PASS_SHARE`` of the budget; the rest comes in ``REFINE_PASSES`` draws, each
       weighted the same way by the margins of a model trained on the rows chosen so far.
       Without,
       the class's rows are clustered into ``min(quota, MAX_CLUSTERS)`` clusters; every
       cluster gets its most typical row, further picks follow cluster sizes.

    Args:
        X: (n, d) raw embeddings.
        labels: (n,) class indices.
        budget: rows to choose, 1..n.
        mislabel_scores: optional (n,) from ``mislabel_scores``, higher = more likely wrong.
        margins: optional (n,) out-of-fold label margins in [-1, 1] (``label_margins``).

    Returns: (budget,) int64 positions, grouped by class.
    """
    arr = check_embeddings(X)
    lab = check_labels(labels, n=len(arr))
    b = check_budget(budget, n=len(arr))
    scores = np.zeros(len(arr)) if mislabel_scores is None else np.asarray(mislabel_scores)
    if scores.shape != (len(arr),) or not np.isfinite(scores).all():
        raise ValidationError(
            f"mislabel_scores must be {len(arr)} finite numbers, one per row, got shape "
            f"{scores.shape}"
        )
    if margins is not None:
        margins = np.asarray(margins, dtype=np.float64)
        if margins.shape != (len(arr),) or not np.all(np.abs(margins) <= 1.0):
            raise ValidationError(
                f"margins must be {len(arr)} numbers in [-1, 1], one per row (from "
                f"label_margins), got shape {margins.shape}"
            )
    if (scores > MISLABEL_THRESHOLD).mean() < MATERIAL_NOISE:
        # Clean enough: the hard examples stay in, only near-certain mislabels go.
        scores = np.where(scores > CERTAIN_MISLABEL, scores, 0.0)
    Xn = l2_normalize(arr)
    counts = np.bincount(lab)
    quotas = class_quotas(counts, b)
    if margins is not None:
        # The balance promises hold for the whole budget: classes it keeps whole are taken
        # whole, every other class gets BALANCED_SHARE of its full quota, in the first pass.
        floors = (quotas * BALANCED_SHARE).astype(np.int64)
        first = class_quotas(counts, max(1, int(b * FIRST_PASS_SHARE)))
        whole = quotas >= counts
        first[whole] = counts[whole]
        first = np.maximum(first, floors)
        chosen = _select_by_margin(lab, first, scores, margins, seed=seed, floors=floors)
        return _refine_by_model(Xn, lab, chosen, b, scores, seed=seed)
    chosen = [
        _select_in_class(Xn, np.flatnonzero(lab == c), int(q), scores, seed=seed, k=k)
        for c, q in enumerate(quotas)
        if q > 0
    ]
    return np.concatenate(chosen).astype(np.int64)


def _select_by_margin(
    labels: np.ndarray, quotas: np.ndarray, scores: np.ndarray, margins: np.ndarray, *,
    seed: int, floors: np.ndarray
) -> np.ndarray:
    """Classes kept whole as their quota says; every other class gets ``floors`` rows (at
    most its quota) drawn by margin weight, and the rest of the quotas' total is drawn by
    margin weight across those classes together, so hard classes get more rows than easy
    ones."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=len(quotas))
    chosen: list[np.ndarray] = []
    open_rows: list[np.ndarray] = []
    for c, q in enumerate(quotas):
        members = np.flatnonzero(labels == c)
        if q == 0:
            continue
        if q >= counts[c]:
            chosen.append(members)
            continue
        usable = _least_suspicious(members, int(q), scores)
        floor = _weighted_draw(rng, usable, int(min(floors[c], q)), margins)
        chosen.append(floor)
        open_rows.append(np.setdiff1d(usable, floor))
    rest = int(quotas.sum()) - sum(len(c) for c in chosen)
    if rest > 0:
        chosen.append(_weighted_draw(rng, np.concatenate(open_rows), rest, margins))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _refine_by_model(
    Xn: np.ndarray, labels: np.ndarray, chosen: np.ndarray, budget: int, scores: np.ndarray,
    *, seed: int
) -> np.ndarray:
    """``chosen`` grown to ``budget`` in ``REFINE_PASSES`` draws, each weighted by the margins
    of a logistic regression trained on the rows chosen so far; suspects stay out."""
    rng = np.random.default_rng(seed + 1)
    candidates = scores <= MISLABEL_THRESHOLD
    for step in range(1, REFINE_PASSES + 1):
        target = len(chosen) + (budget - len(chosen)) // (REFINE_PASSES + 1 - step)
        free = np.ones(len(labels), bool)
        free[chosen] = False
        pool = np.flatnonzero(free & candidates)
        if len(pool) < target - len(chosen):  # too few clean rows: the suspects too
            pool = np.flatnonzero(free)
        if target <= len(chosen) or not len(pool):
            continue
        margins = np.zeros(len(labels))
        margins[pool] = _pass_margins(Xn, labels, chosen, pool)
        chosen = np.r_[chosen, _weighted_draw(rng, pool, target - len(chosen), margins)]
    return np.sort(chosen).astype(np.int64)


def _pass_margins(
    Xn: np.ndarray, labels: np.ndarray, train: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Label margins of ``rows`` under a model trained on ``train`` (0 = boundary)."""
    known = np.unique(labels[train])
    if len(known) < 2:
        return np.zeros(len(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=REFINE_C, max_iter=1000).fit(Xn[train], labels[train])
    probs = np.zeros((len(rows), int(labels.max()) + 1))
    probs[:, model.classes_] = model.predict_proba(Xn[rows])
    return label_margins(probs, labels[rows]).astype(np.float64)


def _weighted_draw(
    rng: np.random.Generator, rows: np.ndarray, count: int, margins: np.ndarray
) -> np.ndarray:
    weights = 1.0 + EASY_WEIGHT - margins[rows]
    return rng.choice(rows, min(count, len(rows)), replace=False, p=weights / weights.sum())


def _least_suspicious(members: np.ndarray, quota: int, scores: np.ndarray) -> np.ndarray:
    """Members at or below ``MISLABEL_THRESHOLD``, topped up to ``quota`` with the least
    suspicious of the rest when too few are."""
    clean = members[scores[members] <= MISLABEL_THRESHOLD]
    if len(clean) < quota:
        rest = members[scores[members] > MISLABEL_THRESHOLD]
        rest = rest[np.argsort(scores[rest], kind="stable")]
        clean = np.sort(np.r_[clean, rest[: quota - len(clean)]])
    return clean


def _select_in_class(
    Xn: np.ndarray, members: np.ndarray, quota: int, scores: np.ndarray, *, seed: int, k: int
) -> np.ndarray:
    if quota >= len(members):
        return members
    clean = _least_suspicious(members, quota, scores)
    if quota == len(clean):
        return clean
    labels, _ = _kmeans(Xn[clean], min(quota, MAX_CLUSTERS), seed)
    picker = _Picker(len(clean))
    _typical_fill(Xn[clean], labels, picker, quota, k=k, proportional=True, seed=seed)
    return clean[picker.result()]
