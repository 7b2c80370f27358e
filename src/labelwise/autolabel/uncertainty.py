"""How sure a pre-label is: per-item uncertainty, expected error, difficulty buckets.

Uncertainty scores (higher = less sure, all in [0, 1]) of single-label probabilities:

- ``least_confidence`` (default): 1 - top calibrated probability, i.e. the probability that
  the pre-label is wrong. It found the most errors in the benchmark (docs/autolabel.md has
  the comparison), and it orders items exactly as their expected error does, so the easy
  bucket holds the items most likely right.
- ``margin``: 1 - (top probability - second probability): the "is it A or B?" doubt.
- ``entropy``: entropy of the class distribution divided by log(k).

Multi-label: each class is a yes/no decision at its threshold ``t``; its uncertainty is
1 - |p - t| / (t if p < t else 1 - t) (1 at the threshold, 0 at certainty), and an item's
uncertainty is the largest over its classes (one doubtful class makes the item doubtful).

Difficulty buckets (``fit_buckets``) split items into easy / medium / hard by uncertainty,
with thresholds chosen on held-out predictions so that each bucket's error rate is known:

- easy: the largest least-uncertain share whose estimated error rate is at most 1%. The
  estimate of a share is the larger of its observed held-out error rate (the posterior mean
  under a Jeffreys prior, (errors + 0.5) / (items + 1)) and its mean calibrated error
  probability, so a lucky run of a few correct items cannot make it look safe: a 1% promise
  needs at least 49 held-out items without an error. This is the bucket to bulk-accept.
- hard: every item whose local error rate is at least 25%, the local rate being an isotonic
  (non-decreasing) fit of error against uncertainty on the held-out items. Review each one.
- medium: the rest; review by uncertainty as time allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labelwise.errors import ValidationError

DEFAULT_METHOD = "least_confidence"
#: Estimated error rate the easy bucket may not exceed.
EASY_ERROR = 0.01
#: Local error rate from which items are hard.
HARD_ERROR = 0.25
BUCKETS = ("easy", "medium", "hard")


def _margin(P: np.ndarray) -> np.ndarray:
    if P.shape[1] < 2:
        return 1.0 - P[:, 0]
    top2 = np.partition(P, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _least_confidence(P: np.ndarray) -> np.ndarray:
    return 1.0 - P.max(axis=1)


def _entropy(P: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(P > 0, P * np.log(P), 0.0).sum(axis=1)
    return h / np.log(P.shape[1]) if P.shape[1] > 1 else h


#: Single-label uncertainty scores by name.
METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least_confidence": _least_confidence,
    "margin": _margin,
    "entropy": _entropy,
}


def _check_probs(probs: Any) -> np.ndarray:
    P = np.asarray(probs, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] == 0:
        raise ValidationError(f"probabilities must be an (n, k) array, got shape {P.shape}")
    if not np.isfinite(P).all() or (P < -1e-9).any() or (P > 1 + 1e-9).any():
        raise ValidationError("probabilities must be finite numbers between 0 and 1")
    return np.clip(P, 0.0, 1.0)


def _check_thresholds(thresholds: Any, shape: tuple[int, int]) -> np.ndarray:
    """Thresholds (k,), or (n, k) for one set per row; default 0.5."""
    k = shape[1]
    if thresholds is None:
        return np.full(k, 0.5)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape not in ((k,), shape) or ((t <= 0) | (t >= 1)).any():
        raise ValidationError(
            f"thresholds must be {k} numbers strictly between 0 and 1 (one per class), "
            f"got {t.tolist()}"
        )
    return t


def uncertainty(
    probs: np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    multi_label: bool = False,
    thresholds: np.ndarray | None = None,
) -> np.ndarray:
    """Per-item uncertainty (n,) in [0, 1] of calibrated ``probs`` (n, k); higher = less sure.

    ``method`` applies to single-label probabilities; multi-label items use the distance to
    each class's threshold (``thresholds`` (k,), default 0.5), see the module docstring.
    """
    P = _check_probs(probs)
    if multi_label:
        t = _check_thresholds(thresholds, P.shape)
        room = np.where(P < t, t, 1.0 - t)
        return (1.0 - np.abs(P - t) / room).max(axis=1)
    score = METHODS.get(method)
    if score is None:
        raise ValidationError(
            f"unknown uncertainty method {method!r}; choose one of {', '.join(METHODS)}"
        )
    return np.clip(score(P), 0.0, 1.0)


def expected_error(
    probs: np.ndarray, *, multi_label: bool = False, thresholds: np.ndarray | None = None
) -> np.ndarray:
    """Probability (n,) that each pre-label is wrong, if the probabilities are calibrated.

    Single-label: 1 - top probability. Multi-label: 1 - the product over classes of the
    probability that the class's yes/no decision is right.
    """
    P = _check_probs(probs)
    if not multi_label:
        return 1.0 - P.max(axis=1)
    t = _check_thresholds(thresholds, P.shape)
    right = np.where(P >= t, P, 1.0 - P)
    return 1.0 - right.prod(axis=1)


# -- difficulty buckets -----------------------------------------------------------------------
@dataclass
class BucketStats:
    """One bucket on held-out data: share of items, observed and expected error rates."""

    count: int
    share: float
    observed_error: float | None
    expected_error: float | None

    @property
    def estimated_error(self) -> float | None:
        """The larger of the Jeffreys posterior mean of the observed rate and the expected."""
        if self.observed_error is None or self.expected_error is None:
            return None
        errors = self.observed_error * self.count
        return max((errors + 0.5) / (self.count + 1), self.expected_error)


@dataclass
class DifficultyBuckets:
    """Uncertainty thresholds: easy if u <= ``easy_max``, hard if u >= ``hard_min``.

    ``easy_max`` None = no item is easy; ``hard_min`` None = no item is hard. ``held_out``
    holds each bucket's statistics on the held-out predictions the thresholds came from.
    """

    method: str
    easy_max: float | None
    hard_min: float | None
    held_out: dict[str, BucketStats]
    easy_error: float = EASY_ERROR
    hard_error: float = HARD_ERROR

    def assign(self, u: np.ndarray) -> np.ndarray:
        """Bucket name per item: (n,) array of 'easy', 'medium', 'hard'."""
        u = np.asarray(u, dtype=np.float64)
        out = np.full(len(u), "medium", dtype=object)
        if self.hard_min is not None:
            out[u >= self.hard_min] = "hard"
        if self.easy_max is not None:
            out[u <= self.easy_max] = "easy"
        return out

    def summary(self, u: np.ndarray, expected: np.ndarray) -> dict[str, dict[str, Any]]:
        """Per bucket: count, share, mean expected error of these items, held-out estimate."""
        names = self.assign(u)
        exp = np.asarray(expected, dtype=np.float64)
        out = {}
        for b in BUCKETS:
            m = names == b
            held = self.held_out[b]
            out[b] = {"count": int(m.sum()), "share": float(m.mean()) if len(m) else 0.0,
                      "expected_error": float(exp[m].mean()) if m.any() else None,
                      "held_out_error": held.estimated_error}
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for b, s in self.held_out.items():
            data["held_out"][b]["estimated_error"] = s.estimated_error
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DifficultyBuckets:
        held = {b: BucketStats(**{k: v for k, v in s.items() if k != "estimated_error"})
                for b, s in data["held_out"].items()}
        return cls(method=data["method"], easy_max=data["easy_max"], hard_min=data["hard_min"],
                   held_out=held, easy_error=data["easy_error"], hard_error=data["hard_error"])


def fit_buckets(
    u: np.ndarray,
    correct: np.ndarray,
    expected: np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    easy_error: float = EASY_ERROR,
    hard_error: float = HARD_ERROR,
) -> DifficultyBuckets:
    """Choose easy / hard thresholds on held-out uncertainty ``u`` (n,).

    Args:
        u: held-out uncertainty per item; correct: (n,) bool, whether its prediction was
            right; expected: (n,) calibrated error probability (``expected_error``).
        easy_error: the easy bucket's estimated error rate stays at or below this.
        hard_error: items whose local error rate reaches this are hard.
    """
    u = np.asarray(u, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    exp = np.asarray(expected, dtype=np.float64)
    if not (len(u) == len(wrong) == len(exp)) or len(u) == 0:
        raise ValidationError(
            "difficulty buckets need held-out uncertainty, correctness and expected error for "
            f"the same items, got {len(u)}, {len(wrong)} and {len(exp)}"
        )
    if not 0 < easy_error < hard_error < 1:
        raise ValidationError(
            f"need 0 < easy_error < hard_error < 1, got {easy_error} and {hard_error}"
        )
    easy_max = _easy_threshold(u, wrong, exp, easy_error)
    hard_min = _hard_threshold(u, wrong, exp, hard_error)
    if hard_min is not None and easy_max is not None and hard_min <= easy_max:
        hard_min = None  # a model whose errors all look certain: nothing sorts as hard
    buckets = DifficultyBuckets(method=method, easy_max=easy_max, hard_min=hard_min,
                                held_out={}, easy_error=easy_error, hard_error=hard_error)
    names = buckets.assign(u)
    for b in BUCKETS:
        m = names == b
        buckets.held_out[b] = BucketStats(
            count=int(m.sum()), share=float(m.mean()),
            observed_error=float(wrong[m].mean()) if m.any() else None,
            expected_error=float(exp[m].mean()) if m.any() else None)
    return buckets


def _running_estimate(u_sorted, wrong_sorted, exp_sorted) -> tuple[np.ndarray, np.ndarray]:
    """Estimated error of each prefix, and whether the prefix ends at the end of a tie.

    The observed part is the posterior mean of the error rate under a Jeffreys prior,
    (errors + 0.5) / (count + 1): 0 errors in 30 items estimate 1.6%, not 0%."""
    count = np.arange(1, len(u_sorted) + 1)
    observed = (np.cumsum(wrong_sorted) + 0.5) / (count + 1)
    est = np.maximum(observed, np.cumsum(exp_sorted) / count)
    end_of_tie = np.r_[u_sorted[1:] != u_sorted[:-1], True]
    return est, end_of_tie


def _easy_threshold(u, wrong, exp, limit) -> float | None:
    order = np.argsort(u, kind="stable")
    est, ends = _running_estimate(u[order], wrong[order], exp[order])
    ok = np.flatnonzero((est <= limit) & ends)
    return float(u[order][ok.max()]) if len(ok) else None


def _hard_threshold(u, wrong, exp, limit) -> float | None:
    """Lowest uncertainty from which the local error rate (an isotonic fit of error against
    uncertainty, on both observed errors and calibrated error probabilities) reaches ``limit``."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip")
    rate = iso.fit(np.r_[u, u], np.r_[wrong.astype(np.float64), exp]).predict(u)
    hard = rate >= limit
    return float(u[hard].min()) if hard.any() else None
