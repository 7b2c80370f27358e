"""Held-out scores of a categorization model: arrays in, plain dicts and floats out.

- ``classification_metrics``: accuracy, per-class precision / recall / F1, confusion matrix.
- ``multilabel_metrics``: exact-match accuracy, per-class precision / recall / F1, micro and
  macro F1.
- ``coverage_at_precision``: the largest share of items that can be accepted, least uncertain
  first, while at least ``precision`` of them are right.
- ``review_lift``: how many times more errors a review of the most uncertain items finds than
  a review of a random sample of the same size.
- ``data_digest``: a fingerprint of the training rows and their labels.

    >>> import numpy as np
    >>> m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    >>> m["accuracy"], m["per_class"][1]["precision"]
    (0.75, 0.6666666666666666)
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from labelwise.errors import ValidationError


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    return precision, recall, f1


def _per_class(tp, fp, fn, support) -> list[dict[str, float]]:
    p, r, f = _prf(tp.astype(np.float64), fp.astype(np.float64), fn.astype(np.float64))
    return [{"precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]),
             "support": int(support[c])} for c in range(len(tp))]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(k, k) int64 counts: row = true class, column = predicted class."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValidationError(f"y_true {t.shape} and y_pred {p.shape} must have the same shape")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Accuracy, macro F1, per-class precision/recall/F1/support and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm)
    per_class = _per_class(tp, cm.sum(axis=0) - tp, cm.sum(axis=1) - tp, cm.sum(axis=1))
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(np.mean([c["f1"] for c in per_class])),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def multilabel_metrics(Y_true: np.ndarray, Y_pred: np.ndarray) -> dict[str, Any]:
    """Exact-match accuracy, micro/macro F1 and per-class scores for (n, k) 0/1 arrays."""
    T = np.asarray(Y_true, dtype=bool)
    P = np.asarray(Y_pred, dtype=bool)
    if T.shape != P.shape:
        raise ValidationError(f"Y_true {T.shape} and Y_pred {P.shape} must have the same shape")
    tp = (T & P).sum(axis=0)
    fp = (~T & P).sum(axis=0)
    fn = (T & ~P).sum(axis=0)
    per_class = _per_class(tp, fp, fn, T.sum(axis=0))
    micro = _prf(np.array([tp.sum()], float), np.array([fp.sum()], float),
                 np.array([fn.sum()], float))[2]
    return {
        "accuracy": float((T == P).all(axis=1).mean()) if len(T) else 0.0,
        "micro_f1": float(micro[0]),
        "macro_f1": float(np.mean([c["f1"] for c in per_class])),
        "per_class": per_class,
        "confusion": None,
    }


def coverage_at_precision(
    uncertainty: np.ndarray, correct: np.ndarray, *, precision: float = 0.99
) -> float:
    """Largest share of items, taken least uncertain first, of which >= ``precision`` are right.

    Args: uncertainty (n,) (higher = less sure); correct (n,) bool. Ties in uncertainty are
    taken together. Returns a share in [0, 1]; higher is better.
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if len(u) == 0:
        return 0.0
    order = np.argsort(u, kind="stable")
    hits = np.cumsum(ok[order])
    count = np.arange(1, len(u) + 1)
    end_of_tie = np.r_[u[order][1:] != u[order][:-1], True]
    good = (hits >= precision * count - 1e-9) & end_of_tie
    return float(count[good].max() / len(u)) if good.any() else 0.0


def review_lift(uncertainty: np.ndarray, correct: np.ndarray, *, share: float = 0.10) -> float:
    """Share of all errors found among the ``share`` most uncertain items, divided by ``share``.

    1 = no better than reviewing a random sample; higher is better. NaN when there are no
    errors at all.
    """
    u = np.asarray(uncertainty, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    if not wrong.any():
        return float("nan")
    top = max(1, round(share * len(u)))
    picked = np.argsort(-u, kind="stable")[:top]
    return float(wrong[picked].sum() / wrong.sum() / (top / len(u)))


def data_digest(ids: np.ndarray, targets: np.ndarray) -> str:
    """sha256 of the (id, label) pairs, order-independent: which data trained a model."""
    ids = np.asarray(ids, dtype=np.int64)
    T = np.asarray(targets, dtype=np.int64).reshape(len(ids), -1)
    order = np.argsort(ids, kind="stable")
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ids[order]).tobytes())
    h.update(np.ascontiguousarray(T[order]).tobytes())
    return h.hexdigest()
