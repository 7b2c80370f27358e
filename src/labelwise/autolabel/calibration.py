"""Turning head scores into probabilities that mean what they say.

Fitted on held-out (out-of-fold) predictions, never on the rows a head was trained on (those
it fits too confidently):

- ``temperature`` (single-label; Guo et al. 2017): ``softmax(logits / T)`` with the one
  ``T > 0`` that minimises the held-out log-loss. One parameter, so a hundred held-out rows
  are enough, and the ranking of classes never changes.
- ``isotonic`` (multi-label, per class; Zadrozny & Elkan 2002): a non-decreasing
  piecewise-linear map from the sigmoid score to the observed frequency of the class.

``fit_thresholds`` picks each multi-label class's decision threshold (the one with the best
held-out F1), and ``expected_calibration_error`` measures how far confidence is from accuracy.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(2000, 3)) * 4            # far too confident ...
    >>> y = np.array([rng.choice(3, p=p) for p in softmax(logits / 4)])   # ... by 4x
    >>> round(fit_temperature(logits, y))
    4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labelwise.errors import ValidationError

#: Equal-width confidence bins of ``expected_calibration_error``.
ECE_BINS = 15
#: Temperatures searched, as log(T): 0.05 to 20.
LOG_T_BOUNDS = (-3.0, 3.0)
#: Smallest distance between isotonic knots (on the 0-1 score).
KNOT_GAP = 1e-3
#: Thresholds stay this far inside (0, 1): a threshold of exactly 0 would accept everything.
THRESHOLD_MIN = 1e-4


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


# -- temperature ------------------------------------------------------------------------------
def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log-loss of ``softmax(logits / T)`` against ``y``.

    Args: logits (n, k) held-out scores; y (n,) true class indices.
    Returns: T > 0 (T > 1 softens over-confident scores, T < 1 sharpens timid ones).
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    idx = np.asarray(y, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(idx) or len(z) == 0:
        raise ValidationError(
            f"temperature scaling needs (n, k) logits and n labels, got {z.shape} and {idx.shape}"
        )

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(s)), idx]))

    res = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


# -- isotonic ---------------------------------------------------------------------------------
def fit_isotonic(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A non-decreasing map from ``scores`` (n,) in [0, 1] to P(y = 1), as knots.

    Returns (x, p): increasing knot positions and their probabilities; between knots the map
    is linear, outside it is flat (``apply_knots``).
    """
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    iso.fit(np.asarray(scores, dtype=np.float64), np.asarray(y, dtype=np.float64))
    x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    p = np.asarray(iso.y_thresholds_, dtype=np.float64)
    # Knots closer than KNOT_GAP make near-vertical steps, where float32 rounding of the
    # score (in ONNX Runtime) would move the probability visibly: thin them out.
    keep = [0]
    for i in range(1, len(x)):
        if x[i] - x[keep[-1]] >= KNOT_GAP:
            keep.append(i)
        elif i == len(x) - 1 and len(keep) > 1:
            keep[-1] = i  # the last knot carries the top probability: keep it
    return x[keep], p[keep]


def apply_knots(scores: np.ndarray, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of ``scores`` through the knots (x, p), flat outside."""
    return np.interp(np.asarray(scores, dtype=np.float64), x, p)


# -- the calibrator ---------------------------------------------------------------------------
@dataclass
class Calibrator:
    """Maps head logits (n, k) to calibrated probabilities (n, k).

    ``method``: ``temperature`` (single-label softmax) or ``isotonic`` (multi-label, one map
    per class from the sigmoid score, stored as knots).
    """

    method: str
    temperature: float = 1.0
    knots: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        if self.method == "temperature":
            return softmax(np.asarray(logits, dtype=np.float64) / self.temperature)
        s = sigmoid(logits)
        return np.stack([apply_knots(s[:, c], x, p) for c, (x, p) in enumerate(self.knots)],
                        axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "temperature": self.temperature,
                "knots": [[x.tolist(), p.tolist()] for x, p in self.knots]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(method=data["method"], temperature=float(data["temperature"]),
                   knots=[(np.asarray(x, np.float64), np.asarray(p, np.float64))
                          for x, p in data["knots"]])


def plain_probs(logits: np.ndarray, *, multi_label: bool) -> np.ndarray:
    """Probabilities before calibration: softmax or per-class sigmoid of ``logits``."""
    return sigmoid(logits) if multi_label else softmax(logits)


def fit_calibrator(logits: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> Calibrator:
    """Fit the calibration on held-out ``logits`` (n, k).

    ``targets``: (n,) class indices (single-label, temperature) or (n, k) 0/1 (multi-label,
    isotonic per class).
    """
    if not multi_label:
        return Calibrator(method="temperature", temperature=fit_temperature(logits, targets))
    s = sigmoid(logits)
    Y = np.asarray(targets)
    return Calibrator(method="isotonic",
                      knots=[fit_isotonic(s[:, c], Y[:, c]) for c in range(s.shape[1])])


# -- thresholds -------------------------------------------------------------------------------
def fit_thresholds(probs: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-class decision thresholds (k,) maximising each class's held-out F1.

    A row is predicted positive for class c when ``probs[:, c] >= threshold[c]``. The
    threshold sits halfway between the lowest score kept and the next lower score, so small
    shifts in new scores do not flip decisions at the edge.
    """
    P = np.asarray(probs, dtype=np.float64)
    T = np.asarray(Y, dtype=bool)
    t = np.array([_best_f1_threshold(P[:, c], T[:, c]) for c in range(P.shape[1])])
    return np.clip(t, THRESHOLD_MIN, 1.0 - THRESHOLD_MIN)


def _best_f1_threshold(p: np.ndarray, t: np.ndarray) -> float:
    if not t.any():
        return 0.5
    order = np.argsort(-p, kind="stable")
    ps, ts = p[order], t[order]
    tp = np.cumsum(ts)
    fp = np.cumsum(~ts)
    f1 = 2 * tp / (tp + fp + t.sum())
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]  # a cut can only fall between distinct scores
    f1 = np.where(last_of_tie, f1, -1.0)
    i = int(np.argmax(f1))
    below = ps[i + 1] if i + 1 < len(ps) else 0.0
    return float((ps[i] + below) / 2)


# -- calibration error ------------------------------------------------------------------------
def expected_calibration_error(
    probs: np.ndarray, targets: np.ndarray, *, multi_label: bool = False, bins: int = ECE_BINS
) -> float:
    """Expected calibration error: the mean |confidence - accuracy| over confidence bins.

    Single-label: the top class's probability against whether it is right (``targets`` (n,)
    class indices). Multi-label: every (row, class) probability against the 0/1 truth
    (``targets`` (n, k)). ``bins`` equal-width bins on [0, 1], weighted by their counts.
    0 = perfectly calibrated; lower is better.
    """
    P = np.asarray(probs, dtype=np.float64)
    if multi_label:
        conf = P.ravel()
        hit = np.asarray(targets, dtype=np.float64).ravel()
    else:
        conf = P.max(axis=1)
        hit = (P.argmax(axis=1) == np.asarray(targets)).astype(np.float64)
    if len(conf) == 0:
        raise ValidationError("the calibration error needs at least one prediction")
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        m = which == b
        total += m.sum() * abs(conf[m].mean() - hit[m].mean())
    return float(total / len(conf))
