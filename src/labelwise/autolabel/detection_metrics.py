"""How good boxes and keypoints are: COCO mAP, per-class precision/recall, PCK and OKS AP.

Boxes: mAP@0.5 and mAP@[.5:.95] from pycocotools' COCOeval (the reference implementation),
per-class AP, and per-class precision and recall of the boxes scored at or above a
confidence threshold (matched at IoU 0.5). Keypoints: PCK@alpha (a point is right within
``alpha`` x the longer side of its object's box) and OKS AP from COCOeval's keypoint mode with
per-point sigmas (COCO's own for the COCO-17 person, else 0.025 each unless given).
Higher is better for every number. Example::

    m = detection_metrics(truth_records, predicted, classes=["disc", "square"])
    m.map50, m.per_class["disc"]["recall"]
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.core.geometry import polygon_bbox
from labelwise.core.schema import Skeleton
from labelwise.errors import ValidationError

DEFAULT_SIGMA = 0.025
# COCO's per-point sigmas for its 17 person keypoints (from the COCO keypoint evaluation).
COCO17_SIGMAS = (np.array([26, 25, 25, 35, 35, 79, 79, 72, 72, 62, 62, 107, 107, 87, 87, 89, 89])
                 / 1000.0)


@dataclass(slots=True)
class DetectionMetrics:
    """mAP over all classes and, per class, ``ap50``, ``ap``, ``precision``, ``recall``,
    ``boxes`` (ground truth) and ``predicted`` (scored >= ``score_threshold``).

    A class without ground-truth boxes has ``None`` for AP and recall.
    """

    map50: float
    map: float
    per_class: dict[str, dict[str, float | int | None]]
    score_threshold: float
    images: int

    def as_dict(self) -> dict:
        return {"map50": self.map50, "map": self.map, "per_class": self.per_class,
                "score_threshold": self.score_threshold, "images": self.images}


def detection_metrics(truth: Sequence[ImageRecord],
                      predictions: Sequence[Sequence[Annotation]], *,
                      classes: Sequence[str], score_threshold: float = 0.3) -> DetectionMetrics:
    """Score ``predictions`` (one list of model annotations per image) against ``truth``.

    Ground truth: every non-model annotation with a box (or polygon) of a class in ``classes``;
    crowd regions are ignored as COCO does. Predictions need ``bbox`` and ``confidence``.
    """
    if len(truth) != len(predictions):
        raise ValidationError(
            f"{len(truth)} ground-truth images but {len(predictions)} prediction lists; give "
            "one (possibly empty) list of predictions per image, in the same order")
    names = list(classes)
    cat = {c: i + 1 for i, c in enumerate(names)}
    gt = _coco_truth(truth, cat)
    dets = []
    for img_id, anns in enumerate(predictions, start=1):
        for a in anns:
            if a.label in cat and a.bbox is not None:
                dets.append({"image_id": img_id, "category_id": cat[a.label],
                             "bbox": [float(v) for v in a.bbox],
                             "score": float(a.confidence if a.confidence is not None else 1.0)})
    per_class: dict[str, dict[str, float | int | None]] = {}
    counts = {c: sum(1 for a in gt["annotations"] if a["category_id"] == cat[c]
                     and not a["iscrowd"]) for c in names}
    if not dets:
        for c in names:
            per_class[c] = {"ap50": 0.0 if counts[c] else None, "ap": 0.0 if counts[c] else None,
                            "precision": 0.0, "recall": 0.0 if counts[c] else None,
                            "boxes": counts[c], "predicted": 0}
        return DetectionMetrics(0.0, 0.0, per_class, score_threshold, len(truth))
    ev = _run_cocoeval(gt, dets, "bbox")
    precision = ev.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)
    thr = _threshold_counts(ev, score_threshold)
    for k, c in enumerate(names):
        p_all, p50 = precision[:, :, k, 0, -1], precision[0, :, k, 0, -1]
        has_gt = counts[c] > 0
        tp, n_det = thr.get(cat[c], (0, 0))
        per_class[c] = {
            "ap50": _mean_valid(p50) if has_gt else None,
            "ap": _mean_valid(p_all) if has_gt else None,
            "precision": round(tp / n_det, 4) if n_det else 0.0,
            "recall": round(tp / counts[c], 4) if has_gt else None,
            "boxes": counts[c], "predicted": n_det,
        }
    return DetectionMetrics(map50=round(float(max(ev.stats[1], 0.0)), 4),
                            map=round(float(max(ev.stats[0], 0.0)), 4), per_class=per_class,
                            score_threshold=score_threshold, images=len(truth))


def _coco_truth(truth: Sequence[ImageRecord], cat: dict[str, int],
                keypoints_of: str | None = None) -> dict:
    images, anns = [], []
    for img_id, rec in enumerate(truth, start=1):
        if not rec.width or not rec.height:
            raise ValidationError(
                f"{rec.path}: the image has no width/height; ground truth needs image sizes")
        images.append({"id": img_id, "width": rec.width, "height": rec.height})
        for a in rec.annotations:
            if a.source == "model" or a.label not in cat:
                continue
            if keypoints_of is not None and (a.label != keypoints_of or a.keypoints is None):
                continue
            box = a.bbox if a.bbox is not None else (
                polygon_bbox(a.polygons) if a.polygons else None)
            if box is None:
                continue
            ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": cat[a.label],
                   "bbox": [float(v) for v in box], "iscrowd": int(a.iscrowd),
                   "area": float(a.area if a.area is not None else box[2] * box[3])}
            if keypoints_of is not None:
                ann["keypoints"] = [float(v) for v in a.keypoints]
                ann["num_keypoints"] = int(sum(1 for v in a.keypoints[2::3] if v > 0))
            anns.append(ann)
    return {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": c} for c, i in cat.items()]}


def _run_cocoeval(gt: dict, dets: list[dict], iou_type: str, sigmas: np.ndarray | None = None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _threshold_counts(ev, score_threshold: float) -> dict[int, tuple[int, int]]:
    """Per category id: (true positives, detections) among detections scored >= threshold,
    matched at IoU 0.5 over all areas (crowd matches and ignored boxes left out)."""
    out: dict[int, list[int]] = {}
    all_area = ev.params.areaRng[0]
    for e in ev.evalImgs:
        if e is None or list(e["aRng"]) != list(all_area):
            continue
        scores = np.asarray(e["dtScores"])
        matched = np.asarray(e["dtMatches"])[0] > 0
        ignored = np.asarray(e["dtIgnore"])[0].astype(bool)
        sel = (scores >= score_threshold) & ~ignored
        tp_n = out.setdefault(e["category_id"], [0, 0])
        tp_n[0] += int((matched & sel).sum())
        tp_n[1] += int(sel.sum())
    return {k: (v[0], v[1]) for k, v in out.items()}


def _mean_valid(p: np.ndarray) -> float:
    valid = p[p > -1]
    return round(float(valid.mean()), 4) if valid.size else 0.0


# -- keypoints --------------------------------------------------------------------------------
@dataclass(slots=True)
class KeypointMetrics:
    """PCK@``alpha`` overall and per point name, OKS AP and OKS AP@0.5 (COCOeval), and
    ``visibility``: the share of points of paired objects whose predicted visibility (0 not
    labeled, 1 hidden, 2 visible) is the true one."""

    pck: float
    alpha: float
    oks_ap: float
    oks_ap50: float
    per_point: dict[str, float] = field(default_factory=dict)
    objects: int = 0
    visibility: float | None = None

    def as_dict(self) -> dict:
        return {"pck": self.pck, "alpha": self.alpha, "oks_ap": self.oks_ap,
                "oks_ap50": self.oks_ap50, "per_point": self.per_point, "objects": self.objects,
                "visibility": self.visibility}


def keypoint_sigmas(skeleton: Skeleton, sigmas: Sequence[float] | None = None) -> np.ndarray:
    """Per-point OKS sigmas: given ones, COCO's for the COCO-17 person, else 0.025 each."""
    n = len(skeleton)
    if sigmas is not None:
        out = np.asarray(sigmas, np.float64)
        if out.shape != (n,) or not np.all(out > 0):
            raise ValidationError(
                f"give {n} positive sigmas, one per point of the skeleton, got {list(out)}")
        return out
    if skeleton.template == "coco-person-17":
        return COCO17_SIGMAS.copy()
    return np.full(n, DEFAULT_SIGMA)


def pck(truth: np.ndarray, pred: np.ndarray, boxes: np.ndarray, *, alpha: float = 0.1
        ) -> tuple[float, np.ndarray]:
    """PCK@``alpha``: the share of labeled points (v > 0) predicted within ``alpha`` x the longer
    side of their object's box.

    ``truth`` (N, K, 3) ``x, y, v``; ``pred`` (N, K, >=2); ``boxes`` (N, 4) ``x, y, w, h``.
    Returns the overall share and the share per point (K,), NaN for a point never labeled.
    """
    truth, pred = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if truth.ndim != 3 or pred.shape[:2] != truth.shape[:2] or len(boxes) != len(truth):
        raise ValidationError(
            f"pck needs truth (N, K, 3), pred (N, K, 2+) and boxes (N, 4) for the same N and K; "
            f"got {list(truth.shape)}, {list(pred.shape)}, {list(boxes.shape)}")
    labeled = truth[..., 2] > 0
    dist = np.linalg.norm(truth[..., :2] - pred[..., :2], axis=-1)
    limit = alpha * np.maximum(boxes[:, 2], boxes[:, 3])[:, None]
    hit = (dist <= limit) & labeled
    n = labeled.sum(axis=0)
    per_point = np.where(n > 0, hit.sum(axis=0) / np.maximum(n, 1), np.nan)
    total = labeled.sum()
    return (float(hit.sum() / total) if total else 0.0), per_point


def keypoint_metrics(truth: Sequence[ImageRecord], predictions: Sequence[Sequence[Annotation]],
                     *, label: str, skeleton: Skeleton, alpha: float = 0.1,
                     sigmas: Sequence[float] | None = None) -> KeypointMetrics:
    """PCK and OKS AP of predicted ``label`` keypoints against the ground truth.

    Each ground-truth object is paired with the unpaired prediction of its image with the
    highest OKS; an object left without one counts every point as missed.
    """
    if len(truth) != len(predictions):
        raise ValidationError(
            f"{len(truth)} ground-truth images but {len(predictions)} prediction lists; give "
            "one list per image, in the same order")
    k = len(skeleton)
    sig = keypoint_sigmas(skeleton, sigmas)
    gt = _coco_truth(truth, {label: 1}, keypoints_of=label)
    dets, true_rows, pred_rows, box_rows = [], [], [], []
    by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for img_id, anns in enumerate(predictions, start=1):
        preds = [a for a in anns if a.label == label and a.keypoints is not None]
        for p in preds:
            if len(p.keypoints) != 3 * k:
                raise ValidationError(
                    f"a predicted {label!r} has {len(p.keypoints)} keypoint numbers, the skeleton "
                    f"needs {3 * k}")
            dets.append({"image_id": img_id, "category_id": 1, "keypoints": list(p.keypoints),
                         "score": float(p.confidence if p.confidence is not None else 1.0)})
        objs = [a for a in by_image.get(img_id, []) if not a["iscrowd"]]
        for g, p in _pair_by_oks(objs, preds, sig):
            true_rows.append(np.reshape(g["keypoints"], (k, 3)))
            box_rows.append(g["bbox"])
            pred_rows.append(np.reshape(p.keypoints, (k, 3)) if p is not None
                             else np.full((k, 3), np.inf))
    if not true_rows:
        raise ValidationError(
            f"no ground-truth {label!r} objects with keypoints to score against")
    truth_arr, pred_arr = np.stack(true_rows), np.stack(pred_rows)
    overall, per_point = pck(truth_arr, pred_arr, np.array(box_rows), alpha=alpha)
    paired = np.isfinite(pred_arr[:, 0, 2])
    visibility = (float((truth_arr[paired, :, 2] == pred_arr[paired, :, 2]).mean())
                  if paired.any() else None)
    oks_ap = oks_ap50 = 0.0
    if dets:
        ev = _run_cocoeval(gt, dets, "keypoints", sigmas=sig)
        oks_ap, oks_ap50 = max(float(ev.stats[0]), 0.0), max(float(ev.stats[1]), 0.0)
    names = {n: round(float(v), 4) for n, v in zip(skeleton.keypoints, per_point, strict=True)
             if not np.isnan(v)}
    return KeypointMetrics(pck=round(overall, 4), alpha=alpha, oks_ap=round(oks_ap, 4),
                           oks_ap50=round(oks_ap50, 4), per_point=names, objects=len(true_rows),
                           visibility=None if visibility is None else round(visibility, 4))


def oks(gt_keypoints: np.ndarray, pred_keypoints: np.ndarray, *, area: float,
        sigmas: np.ndarray) -> float:
    """COCO's object keypoint similarity of a prediction (K, 2+) with an object (K, 3)."""
    g = np.asarray(gt_keypoints, np.float64)
    p = np.asarray(pred_keypoints, np.float64)
    labeled = g[:, 2] > 0
    if not labeled.any():
        return 0.0
    d2 = ((g[:, :2] - p[:, :2]) ** 2).sum(axis=1)
    var = (2 * sigmas) ** 2
    e = d2 / var / (max(area, 1e-9) + np.spacing(1)) / 2
    return float(np.exp(-e[labeled]).mean())


def _pair_by_oks(objs: list[dict], preds: list[Annotation], sigmas: np.ndarray
                 ) -> list[tuple[dict, Annotation | None]]:
    k = len(sigmas)
    scores = np.array([[oks(np.reshape(g["keypoints"], (k, 3)), np.reshape(p.keypoints, (k, 3)),
                            area=g["area"], sigmas=sigmas) for p in preds] for g in objs]
                      ).reshape(len(objs), len(preds))
    pairs: dict[int, Annotation | None] = {}
    used: set[int] = set()
    for flat in np.argsort(-scores, axis=None, kind="stable"):
        gi, pi = divmod(int(flat), max(len(preds), 1))
        if gi in pairs or pi in used:
            continue
        pairs[gi] = preds[pi]
        used.add(pi)
    return [(g, pairs.get(i)) for i, g in enumerate(objs)]
