"""How sure box and keypoint pre-labels are: calibrated confidence, image error, buckets.

A detector's raw score (its heatmap peak) is not a probability. On held-out predictions
(cross-validation folds) each candidate box is marked a hit when it matches an unmatched
true box of its class at IoU >= 0.5 (greedy, best score first, as COCO matches), and an
isotonic map from raw score to hit rate makes the score a calibrated probability
``p_box``. A box is kept as a pre-label when ``p_box >= keep`` (0.5: more likely right than
wrong). Keypoints add one more decision: an object's points are right when at least
``KEYPOINTS_RIGHT_SHARE`` of its labeled points lie within 0.1 x its box's longer side, and a
second isotonic map turns the object's mean point confidence into that probability ``q``.

An image's pre-labels are right when every kept box matches a true object (and its points
are right) and no true object is left without a kept box. Its **expected error** is the
probability that some decision on it is wrong, treating the decisions as independent::

    expected_error = 1 - prod(p_box * q  over kept boxes) * prod(1 - p_box  over dropped ones)

and its **uncertainty** is that same number, in [0, 1] (higher = less sure), so "most
uncertain first" and the difficulty buckets' error rates speak of one ranking. Buckets are
cut with ``uncertainty.fit_buckets`` on the held-out images against their observed
correctness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelwise.autolabel.calibration import apply_knots, fit_isotonic
from labelwise.autolabel.nms import box_iou
from labelwise.core.annotations import Annotation
from labelwise.core.geometry import keypoints_bbox, polygon_bbox

IOU_THRESHOLD = 0.5
#: Calibrated probability from which a detected box is kept as a pre-label.
KEEP = 0.5
#: An object's keypoints are right when at least this share of its labeled points is.
KEYPOINTS_RIGHT_SHARE = 0.8
PCK_ALPHA = 0.1
#: Name of the uncertainty score in ``DifficultyBuckets.method``.
METHOD = "image_error"


@dataclass(slots=True)
class Knots:
    """A non-decreasing piecewise-linear map from a raw score to a probability.

    Isotonic regression gives 1 (or 0) to a top (bottom) block whose held-out boxes were all
    hits (misses); a block of ``m`` such boxes is given the Jeffreys posterior mean,
    1 - 0.5 / (m + 1), instead, so no pre-label claims certainty. With fewer than two knots
    (nothing to learn from) the map is the identity on [0, 1].
    """

    x: list[float]
    p: list[float]

    @classmethod
    def fit(cls, scores: np.ndarray, hits: np.ndarray) -> Knots:
        scores, hits = np.asarray(scores, np.float64), np.asarray(hits, np.float64)
        if len(scores) < 2 or len(np.unique(scores)) < 2:
            return cls.identity()
        x, p = fit_isotonic(scores, hits)
        fitted = apply_knots(scores, x, p)
        top = int((fitted >= p.max() - 1e-12).sum())
        bottom = int((fitted <= p.min() + 1e-12).sum())
        p = np.clip(p, 0.5 / (bottom + 1), 1.0 - 0.5 / (top + 1))
        return cls([round(float(v), 6) for v in x], [round(float(v), 6) for v in p])

    @classmethod
    def identity(cls) -> Knots:
        return cls([0.0, 1.0], [0.0, 1.0])

    def __call__(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        if len(self.x) < 2:
            return np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
        return apply_knots(np.asarray(scores, np.float64), np.asarray(self.x),
                           np.asarray(self.p))

    def to_dict(self) -> dict:
        return {"x": list(self.x), "p": list(self.p)}

    @classmethod
    def from_dict(cls, data: dict) -> Knots:
        return cls([float(v) for v in data["x"]], [float(v) for v in data["p"]])


def true_objects(annotations: Sequence[Annotation], classes: Sequence[str]) -> list[Annotation]:
    """The human-labeled, non-crowd objects of ``classes`` that have a box (or a polygon or
    keypoints to take one from), each with ``bbox`` set."""
    wanted = set(classes)
    out = []
    for a in annotations:
        if a.source != "human" or a.iscrowd or a.label not in wanted:
            continue
        box = a.bbox
        if box is None and a.polygons:
            box = polygon_bbox(a.polygons)
        if box is None and a.keypoints is not None:
            box = keypoints_bbox(a.keypoints)
        if box is None or box[2] <= 0 or box[3] <= 0:
            continue
        out.append(Annotation(label=a.label, bbox=tuple(float(v) for v in box),
                              keypoints=a.keypoints, area=a.area))
    return out


def _xyxy(boxes: Sequence[Sequence[float]]) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def match_detections(truth: Sequence[Annotation], predicted: Sequence[Annotation], *,
                     scores: Sequence[float] | None = None,
                     iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """For each prediction, the index of the true object it matches, or -1.

    Greedy by score (``scores``, default each prediction's confidence), highest first: a
    prediction takes the unmatched true object of its class it overlaps most, if the IoU is
    at least ``iou_threshold``. Both sides need ``bbox``.
    """
    m = len(predicted)
    out = np.full(m, -1, np.int64)
    if not m or not truth:
        return out
    s = np.asarray([p.confidence or 0.0 for p in predicted] if scores is None else scores,
                   np.float64)
    iou = box_iou(_xyxy([p.bbox for p in predicted]), _xyxy([t.bbox for t in truth]))
    same = np.array([[p.label == t.label for t in truth] for p in predicted])
    iou = np.where(same, iou, 0.0)
    taken = np.zeros(len(truth), bool)
    for i in np.argsort(-s, kind="stable"):
        row = np.where(taken, -1.0, iou[i])
        j = int(row.argmax())
        if row[j] >= iou_threshold:
            out[i] = j
            taken[j] = True
    return out


def keypoints_right(truth: Sequence[float], predicted: Sequence[float] | None,
                    box: Sequence[float], *, alpha: float = PCK_ALPHA,
                    share: float = KEYPOINTS_RIGHT_SHARE) -> bool | None:
    """Whether at least ``share`` of the true object's labeled points are predicted within
    ``alpha`` x the longer side of ``box``; None when the object has no labeled point."""
    t = np.asarray(truth, np.float64).reshape(-1, 3)
    labeled = t[:, 2] > 0
    if not labeled.any():
        return None
    if predicted is None:
        return False
    p = np.asarray(predicted, np.float64).reshape(-1, 3)
    if p.shape != t.shape:
        return False
    limit = alpha * max(float(box[2]), float(box[3]))
    hit = (np.linalg.norm(t[:, :2] - p[:, :2], axis=1) <= limit) & (p[:, 2] > 0)
    return bool(hit[labeled].mean() >= share)


def image_expected_error(p_kept: np.ndarray, p_dropped: np.ndarray) -> float:
    """1 - P(every kept object is right and every dropped candidate was rightly dropped)."""
    right = np.prod(np.asarray(p_kept, np.float64)) * np.prod(
        1.0 - np.asarray(p_dropped, np.float64))
    return float(np.clip(1.0 - right, 0.0, 1.0))


def image_is_wrong(n_truth: int, kept_match: np.ndarray, kept_points_right: np.ndarray) -> bool:
    """An image is wrong when a kept box matches nothing (spurious), a true object has no
    kept box (missed), or a matched object's keypoints are wrong."""
    kept_match = np.asarray(kept_match, np.int64)
    if (kept_match < 0).any():
        return True
    if len(set(kept_match.tolist())) < n_truth:
        return True
    return not bool(np.all(kept_points_right))
