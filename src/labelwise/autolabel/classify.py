"""Train a categorization model on frozen embeddings, with a held-out model card.

``train_classifier`` takes embeddings ``X`` (n, d) of the labeled images and their labels:
class indices (n,) for single-label, a 0/1 matrix (n, k) for multi-label. It

1. checks the data is enough to learn from (at least 2 classes, at least 5 examples of every
   class, and for multi-label at least 5 without it too) and warns under 100 examples;
2. makes held-out predictions: 5-fold cross-validation under 2,000 rows, one stratified 20%
   held-out share above (each row predicted by a model that never saw it);
3. picks the head (linear at a few regularisation strengths; a small MLP from 2,000 rows on)
   with the lowest held-out log-loss after calibration, and refits it on every row;
4. fits the calibration (temperature, or isotonic per class) and, for multi-label, each
   class's threshold on the held-out predictions, and the difficulty buckets;
5. scores the held-out predictions for the model card. Calibration and thresholds are
   cross-fitted for the card (fitted on one half of the held-out rows, scored on the other),
   so the card's numbers are not flattered by fitting and scoring on the same rows.

Single-label models trained with ``X_unlabeled`` (the images to pre-label) also smooth their
pre-labels over embedding neighbours (``labelwise.autolabel.smoothing``); the held-out
predictions are smoothed the same way, each by its own fold's model over its nearest
unlabeled images, so the card and the buckets describe what ``prelabel_proba`` returns.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (60, 8)) + 4, rng.normal(0, 1, (60, 8)) - 4]
    >>> y = np.r_[np.zeros(60, int), np.ones(60, int)]
    >>> model = train_classifier(X, y, classes=["cat", "dog"])
    >>> model.card.accuracy, model.predict(X[:2]).tolist()
    (1.0, [0, 0])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from labelwise.autolabel.calibration import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    fit_thresholds,
    plain_probs,
)
from labelwise.autolabel.card import ModelCard
from labelwise.autolabel.embedding_heads import HEAD_KINDS, Head, fit_head, fit_normaliser
from labelwise.autolabel.metrics import (
    classification_metrics,
    coverage_at_precision,
    data_digest,
    multilabel_metrics,
)
from labelwise.autolabel.smoothing import (
    SMOOTH_K,
    SMOOTH_WEIGHT,
    check_smoothing,
    neighbours_within,
    smooth_probabilities,
)
from labelwise.autolabel.uncertainty import (
    DEFAULT_METHOD,
    METHODS,
    DifficultyBuckets,
    expected_error,
    fit_buckets,
    uncertainty,
)
from labelwise.embeddings.index import validate_vectors
from labelwise.errors import ValidationError

#: Examples every class needs (and, multi-label, rows without it).
MIN_PER_CLASS = 5
#: Under this many labeled rows a model trains, with a warning.
FEW_ROWS = 100
#: Under this many rows the card comes from k-fold cross-validation, above from a held-out share.
KFOLD_BELOW = 2000
FOLDS = 5
HOLDOUT_SHARE = 0.2
#: Regularisation strengths tried for the linear head (mean loss + l2 / 2 * ||W||^2).
L2_GRID = (1e-3, 1e-2, 1e-1)
#: The MLP head is tried from this many rows on: below, it rarely beats the linear head on
#: embeddings and costs 20x the time.
MLP_MIN_ROWS = 2000
MLP_L2 = 1e-3
HEAD_CHOICES = ("auto", *HEAD_KINDS)
#: Multi-label items are scored by their distance to each class's threshold.
MULTI_LABEL_UNCERTAINTY = "threshold_distance"


@dataclass
class TrainOptions:
    """``head``: ``auto`` (pick by held-out score), ``linear`` or ``mlp``. ``l2``: a fixed
    regularisation strength instead of the grid. ``uncertainty``: the score for review order
    and buckets (``margin``, ``least_confidence``, ``entropy``). ``smoothing``: weight of
    the neighbours' probabilities in a pre-label (single-label, with ``X_unlabeled``; 0
    turns it off), over ``smoothing_k`` neighbours."""

    head: str = "auto"
    l2: float | None = None
    seed: int = 0
    uncertainty: str = DEFAULT_METHOD
    smoothing: float = SMOOTH_WEIGHT
    smoothing_k: int = SMOOTH_K


@dataclass
class TrainedClassifier:
    """A trained head with its calibration, thresholds, buckets and model card."""

    head: Head
    calibrator: Calibrator
    classes: list[str]
    multi_label: bool
    thresholds: np.ndarray | None
    buckets: DifficultyBuckets
    card: ModelCard
    params: dict[str, Any] = field(default_factory=dict)
    #: ``{"weight", "k"}`` when pre-labels are smoothed over neighbours, else None.
    smoothing: dict[str, Any] | None = None

    def prelabel_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the images ``X`` being pre-labeled together: ``predict_proba``
        smoothed over each image's nearest neighbours among ``X`` when the model smooths."""
        P = self.predict_proba(X)
        if not self.smoothing:
            return P
        nbrs = neighbours_within(np.asarray(X, dtype=np.float32), k=self.smoothing["k"])
        return smooth_probabilities(P, P, nbrs, weight=self.smoothing["weight"])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, k) for embeddings ``X`` (n, d)."""
        X = validate_vectors(X, name="embeddings")
        if X.shape[1] != self.head.dim:
            raise ValidationError(
                f"the embeddings have {X.shape[1]} dimensions but the model was trained on "
                f"{self.head.dim}-d ones; embed with the model and size it was trained with"
            )
        return self.calibrator(self.head.logits(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices (n,) or, multi-label, a 0/1 matrix (n, k)."""
        return self.decide(self.predict_proba(X))

    def decide(self, probs: np.ndarray) -> np.ndarray:
        if self.multi_label:
            return (probs >= self.thresholds).astype(np.int64)
        return probs.argmax(axis=1)

    def uncertainty(self, probs: np.ndarray) -> np.ndarray:
        """Per-item uncertainty (n,) of calibrated ``probs``; higher = less sure."""
        return uncertainty(probs, method=self.card.uncertainty, multi_label=self.multi_label,
                           thresholds=self.thresholds)

    def expected_error(self, probs: np.ndarray) -> np.ndarray:
        return expected_error(probs, multi_label=self.multi_label, thresholds=self.thresholds)


# -- checks -----------------------------------------------------------------------------------
def check_training_data(
    X: Any, targets: Any, *, classes: Sequence[str], multi_label: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate a training set; return (X float32, targets int64, warnings).

    Raises ValidationError, naming each class that is short of examples and how many more it
    needs, when there are no labels, fewer than 2 classes, or a class with fewer than
    ``MIN_PER_CLASS`` examples (multi-label: also fewer than that many rows without it).
    """
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise ValidationError(
            f"a categorization model needs at least 2 classes, got {len(names)} ({names}); "
            "add another class to the schema and label examples of it"
        )
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValidationError(f"class names must be unique; repeated: {dupes}")
    T = np.asarray(targets)
    if T.size == 0:
        raise ValidationError(
            f"no labels to train on; label at least {MIN_PER_CLASS} images of each class "
            f"({', '.join(names)}), about {FEW_ROWS} in all for a useful model"
        )
    arr = validate_vectors(X, name="embeddings")
    T = _check_targets(T, n=len(arr), k=len(names), multi_label=multi_label)
    counts = T.sum(axis=0) if multi_label else np.bincount(T, minlength=len(names))
    problems = [
        f"class {name!r} has {c} labeled example{'s' * (c != 1)}; label "
        f"{MIN_PER_CLASS - c} more or leave the class out"
        for name, c in zip(names, counts.tolist(), strict=True) if c < MIN_PER_CLASS
    ]
    if multi_label:
        problems += [
            f"class {name!r} is on {c} of {len(T)} images; at least "
            f"{MIN_PER_CLASS} labeled images without it are needed to learn what it is not"
            for name, c in zip(names, counts.tolist(), strict=True)
            if len(T) - c < MIN_PER_CLASS
        ]
    if problems:
        raise ValidationError(
            f"not enough labeled data to train: every class needs at least {MIN_PER_CLASS} "
            "examples", problems=problems,
        )
    warnings = []
    if len(T) < FEW_ROWS:
        warnings.append(
            f"only {len(T)} labeled images: pre-labels will be rough and the model card's "
            f"numbers uncertain; label about {FEW_ROWS} (curate picks which) and retrain"
        )
    return arr, T, warnings


def _check_targets(T: np.ndarray, *, n: int, k: int, multi_label: bool) -> np.ndarray:
    want = (n, k) if multi_label else (n,)
    if T.shape != want:
        what = "a 0/1 matrix (rows, classes)" if multi_label else "one class index per row"
        raise ValidationError(
            f"labels have shape {T.shape} but {want} is needed for {n} embeddings and {k} "
            f"classes: {what}"
        )
    whole = np.issubdtype(T.dtype, np.integer) or np.issubdtype(T.dtype, np.bool_) or (
        np.issubdtype(T.dtype, np.floating) and bool(np.all(T == np.round(T))))
    if not whole:
        raise ValidationError(f"labels must be whole numbers, got dtype {T.dtype}")
    T = T.astype(np.int64)
    lo, hi = (0, 1) if multi_label else (0, k - 1)
    bad = np.flatnonzero(((T < lo) | (T > hi)).reshape(n, -1).any(axis=1))
    if len(bad):
        raise ValidationError(
            f"row {int(bad[0])} has label {T[bad[0]].tolist()} outside {lo}..{hi}; "
            + ("multi-label rows hold 0 or 1 per class" if multi_label
               else f"class indices refer to the {k} classes given")
        )
    return T


def _check_options(options: TrainOptions) -> None:
    if options.head not in HEAD_CHOICES:
        raise ValidationError(
            f"unknown head {options.head!r}; choose one of {', '.join(HEAD_CHOICES)}"
        )
    if options.uncertainty not in METHODS:
        raise ValidationError(
            f"unknown uncertainty {options.uncertainty!r}; choose one of {', '.join(METHODS)}"
        )
    if options.l2 is not None and not (np.isfinite(options.l2) and options.l2 >= 0):
        raise ValidationError(f"l2 must be a number >= 0, got {options.l2!r}")
    check_smoothing(options.smoothing, options.smoothing_k)


# -- held-out predictions ---------------------------------------------------------------------
def _strata(T: np.ndarray, multi_label: bool) -> np.ndarray:
    """One stratum per row: its class, or (multi-label) its rarest class (-1 = none)."""
    if not multi_label:
        return T
    freq = T.sum(axis=0)
    rarest = np.where(T == 1, freq[None, :], np.iinfo(np.int64).max).argmin(axis=1)
    return np.where(T.any(axis=1), rarest, -1)


def held_out_splits(T: np.ndarray, *, multi_label: bool, seed: int) -> list[np.ndarray]:
    """Held-out row sets: ``FOLDS`` folds under ``KFOLD_BELOW`` rows, else one 20% share."""
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    strata = _strata(T, multi_label)
    _, strata = np.unique(strata, return_inverse=True)
    fake = np.zeros(len(T))
    if len(T) < KFOLD_BELOW:
        folds = min(FOLDS, int(np.bincount(strata).min()))
        if folds < 2:  # a multi-label stratum of one row: fall back to plain shuffled folds
            from sklearn.model_selection import KFold

            return [te for _, te in KFold(FOLDS, shuffle=True, random_state=seed).split(fake)]
        kf = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return [te for _, te in kf.split(fake, strata)]
    ss = StratifiedShuffleSplit(1, test_size=HOLDOUT_SHARE, random_state=seed)
    return [te for _, te in ss.split(fake, strata)]


@dataclass
class _Candidate:
    kind: str
    l2: float


def _candidates(n: int, options: TrainOptions) -> list[_Candidate]:
    kinds = ["linear", "mlp"] if options.head == "auto" else [options.head]
    out = []
    for kind in kinds:
        if kind == "mlp" and options.head == "auto" and n < MLP_MIN_ROWS:
            continue
        if options.l2 is not None:
            out.append(_Candidate(kind, float(options.l2)))
        elif kind == "linear":
            out += [_Candidate(kind, l2) for l2 in L2_GRID]
        else:
            out.append(_Candidate(kind, MLP_L2))
    return out


def _held_out_logits(
    X, T, splits, cand: _Candidate, *, k: int, multi_label: bool, normaliser, seed: int
) -> tuple[np.ndarray, np.ndarray, list[Head]]:
    """Logits of the held-out rows (concatenated over ``splits``), their row positions, and
    the head of each split (trained without its held-out rows)."""
    rows, logits, heads = [], [], []
    for test in splits:
        train = np.setdiff1d(np.arange(len(X)), test)
        head = fit_head(X[train], T[train], kind=cand.kind, multi_label=multi_label,
                        num_classes=k, l2=cand.l2, normaliser=normaliser, seed=seed)
        logits.append(head.logits(X[test]))
        rows.append(test)
        heads.append(head)
    return np.concatenate(logits), np.concatenate(rows), heads


def _smoothed_held_out(
    P_held: np.ndarray, splits: list[np.ndarray], heads: list[Head], calibrator: Calibrator,
    X: np.ndarray, X_unlabeled: np.ndarray, *, weight: float, k: int
) -> np.ndarray:
    """Held-out probabilities (rows in ``splits`` order) smoothed as pre-labels will be: each
    held-out row over its ``k`` nearest unlabeled images, as its own split's model sees them."""
    nbrs = neighbours_within(X_unlabeled, k=k, queries=X)
    out, start = np.empty_like(P_held), 0
    for test, head in zip(splits, heads, strict=True):
        part = nbrs[test]
        needed = np.unique(part[part >= 0])
        P_pool = np.zeros((len(X_unlabeled), P_held.shape[1]))
        if len(needed):
            P_pool[needed] = calibrator(head.logits(X_unlabeled[needed]))
        stop = start + len(test)
        out[start:stop] = smooth_probabilities(P_held[start:stop], P_pool, part, weight=weight)
        start = stop
    return out


def _score(logits: np.ndarray, T: np.ndarray, *, multi_label: bool) -> float:
    """Held-out log-loss after calibration (lower is better)."""
    cal = fit_calibrator(logits, T, multi_label=multi_label)
    P = np.clip(cal(logits), 1e-7, 1 - 1e-7)
    if multi_label:
        return float(-np.mean(T * np.log(P) + (1 - T) * np.log(1 - P)))
    return float(-np.mean(np.log(P[np.arange(len(T)), T])))


def _cross_fitted(
    logits: np.ndarray, T: np.ndarray, *, multi_label: bool, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Calibrated probabilities (and thresholds per row) of held-out logits, two-fold
    cross-fitted: each half is calibrated by a calibrator fitted on the other half."""
    n = len(logits)
    half = np.random.default_rng(seed).permutation(n) < n // 2
    P = np.empty(logits.shape)
    thr = np.empty(logits.shape) if multi_label else None
    for part in (half, ~half):
        fit_rows = ~part
        if fit_rows.sum() == 0 or part.sum() == 0:
            continue
        if multi_label and (T[fit_rows].min(axis=0) == T[fit_rows].max(axis=0)).any():
            cal = fit_calibrator(logits, T, multi_label=True)  # a class absent from a half
        else:
            cal = fit_calibrator(logits[fit_rows], T[fit_rows], multi_label=multi_label)
        P[part] = cal(logits[part])
        if multi_label:
            thr[part] = fit_thresholds(cal(logits[fit_rows]), T[fit_rows])
    return P, thr


# -- training ---------------------------------------------------------------------------------
def train_classifier(
    X: Any,
    targets: Any,
    *,
    classes: Sequence[str],
    multi_label: bool = False,
    ids: Sequence[int] | np.ndarray | None = None,
    X_unlabeled: Any = None,
    options: TrainOptions | None = None,
) -> TrainedClassifier:
    """Train, calibrate and evaluate a categorization head; see the module docstring.

    Args:
        X: (n, d) embeddings of the labeled images.
        targets: (n,) class indices, or (n, k) 0/1 with ``multi_label``.
        classes: the k class names, in index order.
        ids: (n,) ids of the labeled images (asset ids) for the data digest; default 0..n-1.
        X_unlabeled: (m, d) embeddings of images without labels (the ones to pre-label):
            only used for the normalisation statistics, which steadies them on few labels.
        options: head choice, regularisation, seed, uncertainty score.
    """
    t0 = time.perf_counter()
    options = options or TrainOptions()
    _check_options(options)
    arr, T, warnings = check_training_data(X, targets, classes=classes, multi_label=multi_label)
    k = len(classes)
    ids_arr = _check_ids(ids, len(arr))
    stats_rows, extra = arr, None
    if X_unlabeled is not None:
        extra = validate_vectors(X_unlabeled, name="X_unlabeled", dim=arr.shape[1])
        stats_rows = np.concatenate([arr, extra])
    normaliser = fit_normaliser(stats_rows)

    splits = held_out_splits(T, multi_label=multi_label, seed=options.seed)
    best, best_loss, best_logits, best_heads, rows = None, np.inf, None, None, None
    for cand in _candidates(len(arr), options):
        logits, rows, heads = _held_out_logits(arr, T, splits, cand, k=k,
                                               multi_label=multi_label,
                                               normaliser=normaliser, seed=options.seed)
        loss = _score(logits, T[rows], multi_label=multi_label)
        if loss < best_loss:
            best, best_loss, best_logits, best_heads = cand, loss, logits, heads
    T_held = T[rows]
    head = fit_head(arr, T, kind=best.kind, multi_label=multi_label, num_classes=k,
                    l2=best.l2, normaliser=normaliser, seed=options.seed)
    calibrator = fit_calibrator(best_logits, T_held, multi_label=multi_label)
    thresholds = (fit_thresholds(calibrator(best_logits), T_held) if multi_label else None)

    # Honest held-out estimates for the card and the buckets (cross-fitted calibration).
    P_held, thr_rows = _cross_fitted(best_logits, T_held, multi_label=multi_label,
                                     seed=options.seed)
    smoothing = None
    if (not multi_label and options.smoothing > 0 and extra is not None
            and len(extra) >= options.smoothing_k):
        smoothing = {"weight": float(options.smoothing), "k": int(options.smoothing_k)}
        P_held = _smoothed_held_out(P_held, splits, best_heads, calibrator, arr, extra,
                                    weight=smoothing["weight"], k=smoothing["k"])
    if multi_label:
        pred = (P_held >= thr_rows).astype(np.int64)
        correct = (pred == T_held).all(axis=1)
        u = uncertainty(P_held, multi_label=True, thresholds=thr_rows)
        exp_err = expected_error(P_held, multi_label=True, thresholds=thr_rows)
        scores = multilabel_metrics(T_held, pred)
    else:
        pred = P_held.argmax(axis=1)
        correct = pred == T_held
        u = uncertainty(P_held, method=options.uncertainty)
        exp_err = expected_error(P_held)
        scores = classification_metrics(T_held, pred, k)
    buckets = fit_buckets(u, correct, exp_err, method=(
        MULTI_LABEL_UNCERTAINTY if multi_label else options.uncertainty))
    per_class = scores["per_class"]
    if multi_label:
        for c, s in enumerate(per_class):
            s["threshold"] = float(thresholds[c])
    counts = T.sum(axis=0) if multi_label else np.bincount(T, minlength=k)
    card = ModelCard(
        task="multi-label" if multi_label else "single-label",
        classes=[str(c) for c in classes],
        head=best.kind + (f" (l2 {best.l2:g})"),
        evaluation=(f"{len(splits)}-fold cross-validation" if len(splits) > 1
                    else f"held-out {HOLDOUT_SHARE:.0%} (stratified)")
        + (f", pre-labels smoothed over {smoothing['k']} neighbours" if smoothing else ""),
        held_out_rows=len(rows),
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        micro_f1=scores.get("micro_f1"),
        per_class=per_class,
        confusion=scores["confusion"],
        ece_before=expected_calibration_error(
            plain_probs(best_logits, multi_label=multi_label), T_held, multi_label=multi_label),
        ece_after=expected_calibration_error(P_held, T_held, multi_label=multi_label),
        calibration=calibrator.method,
        coverage_at_99=coverage_at_precision(u, correct, precision=0.99),
        buckets=buckets.to_dict(),
        uncertainty=MULTI_LABEL_UNCERTAINTY if multi_label else options.uncertainty,
        train_rows=len(arr),
        counts={str(c): int(v) for c, v in zip(classes, counts, strict=True)},
        data_digest=data_digest(ids_arr, T),
        training_seconds=time.perf_counter() - t0,
        params={"head": best.kind, "l2": best.l2, "seed": options.seed,
                "hidden": head.params.get("hidden"), "dim": int(arr.shape[1]),
                "normalised_with_unlabeled": X_unlabeled is not None,
                "smoothing": smoothing},
        warnings=warnings,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return TrainedClassifier(head=head, calibrator=calibrator, classes=card.classes,
                             multi_label=multi_label, thresholds=thresholds, buckets=buckets,
                             card=card, params=card.params, smoothing=smoothing)


def _check_ids(ids: Any, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"ids must be {n} integers (one per labeled row), got {arr.shape}")
    if len(np.unique(arr)) != n:
        raise ValidationError("ids must be unique: the same image is labeled twice in the set")
    return arr.astype(np.int64)
