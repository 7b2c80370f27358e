"""Box detection: an anchor-free (CenterNet-style) head trained on cached backbone maps.

The head predicts, at stride 8 of the letterboxed image, a heatmap per class that peaks at
object centres and, at every cell, the distances from the cell's centre to the four sides of
its object. Training: penalty-reduced focal loss on the heatmaps plus GIoU loss on the boxes
near each centre, horizontal flips from the cached flipped maps, early stopping on held-out
images. Inference: backbone and head both in ONNX Runtime, local peaks as candidates, class-wise
NMS, the peak's height as the box's confidence. Example::

    cache = FeatureCache("features/", model=backbone, size=256)
    trained = train_detector(records, images, cache=cache)
    detector = Detector(trained.model, backbone)
    detector.predict([image])[0]       # [Annotation(label="disc", bbox=..., confidence=0.93)]
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labelwise.autolabel.dense_heads import (
    HEAT_PRIOR,
    MAP_AXES,
    FitConfig,
    FitHistory,
    Neck,
    check_head_settings,
    conv_block,
    export_onnx,
    fit,
    focal_loss,
    onnx_session,
    prediction_layer,
    split_holdout,
    to_tensor,
)
from labelwise.autolabel.detection_metrics import DetectionMetrics, detection_metrics
from labelwise.autolabel.features import MAPS, FeatureCache, FeatureMaps, Letterbox
from labelwise.autolabel.nms import batched_nms
from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.core.geometry import polygon_bbox
from labelwise.embeddings.backbones import EmbeddingModel
from labelwise.errors import NotFoundError, ValidationError

STRIDE = 8
MIN_PER_CLASS = 5
FEW_IMAGES = 100
BOX_LOSS_WEIGHT = 2.0


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """``size``: the letterboxed square the backbone sees; ``width``: the head's channels."""

    size: int = 256
    width: int = 32
    fit: FitConfig = field(default_factory=FitConfig)
    val_fraction: float = 0.15
    min_per_class: int = MIN_PER_CLASS

    def __post_init__(self) -> None:
        check_head_settings(size=self.size, width=self.width, val_fraction=self.val_fraction,
                            minimum=self.min_per_class)


# -- data -------------------------------------------------------------------------------------
@dataclass(slots=True)
class DetectionData:
    """Boxes per image ((n, 4) ``x, y, w, h`` image pixels) and class indices into ``classes``."""

    classes: list[str]
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    warnings: list[str]

    @property
    def num_boxes(self) -> int:
        return sum(len(b) for b in self.boxes)


def detection_data(records: Sequence[ImageRecord], *, classes: Sequence[str] | None = None,
                   min_per_class: int = MIN_PER_CLASS) -> DetectionData:
    """Check that ``records`` can train a detector and gather their boxes.

    Every record counts as labeled: an image without boxes teaches what background looks like.
    Boxes come from human annotations with a box or a polygon (its bounds); model pre-labels
    and crowd regions are left out. ``classes`` defaults to every class with a box.

    Raises ValidationError when there is no box, when a class has fewer than
    ``min_per_class`` boxes, or when ``classes`` names a class with none.
    """
    if not records:
        raise ValidationError("no labeled images to train on; pass the images of a labeled split")
    found: list[list[tuple[str, tuple[float, float, float, float]]]] = []
    for rec in records:
        found.append([(a.label, box) for a in rec.annotations if (box := _human_box(a))])
    counts: dict[str, int] = {}
    for objs in found:
        for label, _ in objs:
            counts[label] = counts.get(label, 0) + 1
    if not counts:
        raise ValidationError(
            f"none of the {len(records)} images has a box or polygon labeled by a person; a "
            "detector learns from boxes: label some objects first (at least "
            f"{min_per_class} per class)"
        )
    names = sorted(counts) if classes is None else list(classes)
    missing = [c for c in names if c not in counts]
    if missing:
        raise ValidationError(
            f"no boxes of class {missing} in the {len(records)} images (classes with boxes: "
            f"{sorted(counts)}); label some or leave the class out"
        )
    too_few = [f"{c!r}: {counts[c]} boxes" for c in names if counts[c] < min_per_class]
    if too_few:
        raise ValidationError(
            f"too few boxes to learn from: every class needs at least {min_per_class}; label "
            "more of these classes or leave them out (classes=...)", problems=too_few)
    index = {c: i for i, c in enumerate(names)}
    boxes, labels = [], []
    for objs in found:
        kept = [(index[lab], box) for lab, box in objs if lab in index]
        boxes.append(np.array([b for _, b in kept], np.float64).reshape(-1, 4))
        labels.append(np.array([i for i, _ in kept], np.int64))
    notes = []
    if len(records) < FEW_IMAGES:
        notes.append(
            f"only {len(records)} labeled images: a detector trained on fewer than about "
            f"{FEW_IMAGES} gives rough pre-labels; label more for better ones"
        )
    return DetectionData(classes=names, boxes=boxes, labels=labels, warnings=notes)


def _human_box(a: Annotation) -> tuple[float, float, float, float] | None:
    if a.source != "human" or a.iscrowd or a.is_category:
        return None
    if a.bbox is not None:
        box = tuple(float(v) for v in a.bbox)
    elif a.polygons:
        box = polygon_bbox(a.polygons)
    else:
        return None
    return box if box[2] > 0 and box[3] > 0 else None


# -- the head ---------------------------------------------------------------------------------
class DetectionHead(nn.Module):
    """c3, c4, c5 -> heatmap logits (N, C, H/8, W/8) and side distances (N, 4, H/8, W/8).

    Distances (left, top, right, bottom) are in pixels of the square: ``exp(raw) * 8``.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.neck = Neck(width)
        self.heat = nn.Sequential(conv_block(width, width),
                                  prediction_layer(width, num_classes, prior=HEAT_PRIOR))
        self.box = nn.Sequential(conv_block(width, width), prediction_layer(width, 4))

    def forward(self, c3, c4, c5):
        x = self.neck(c3, c4, c5)
        return self.heat(x), torch.exp(self.box(x).clamp(max=6.0)) * STRIDE


def cell_centres(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * STRIDE
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * STRIDE
    return ys.view(1, h, 1).expand(1, h, w), xs.view(1, 1, w).expand(1, h, w)


class ExportedDetector(nn.Module):
    """The head as exported: peak scores (N, C, h, w), 0 off peaks, and boxes (N, 4, h, w)
    as ``x0, y0, x1, y1`` in pixels of the square."""

    def __init__(self, head: DetectionHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, c3, c4, c5):
        logits, dist = self.head(c3, c4, c5)
        heat = torch.sigmoid(logits)
        peaks = heat * (nn.functional.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
        h, w = heat.shape[2], heat.shape[3]
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * STRIDE
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * STRIDE
        cy, cx = ys.view(1, h, 1), xs.view(1, 1, w)
        boxes = torch.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]],
                            dim=1)
        return peaks, boxes


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GIoU for (K, 4) ``x0, y0, x1, y1`` boxes, per box."""
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (torch.maximum(pred[:, 2:], target[:, 2:]) - torch.minimum(pred[:, :2], target[:, :2]))
    hull_area = hull.prod(dim=1).clamp(min=1e-6)
    return 1 - (iou - (hull_area - union) / hull_area)


# -- targets ----------------------------------------------------------------------------------
def detection_targets(boxes: np.ndarray, labels: np.ndarray, *, num_classes: int, grid: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training targets for one image from boxes (n, 4) ``x0, y0, x1, y1`` in square pixels.

    Returns the heatmap (C, g, g) (Gaussian around each centre cell, 1 at the centre), the box
    each cell should predict (4, g, g) and the box loss weight per cell (g, g): the heatmap
    value near a centre, 0 elsewhere.
    """
    heat = np.zeros((num_classes, grid, grid), np.float32)
    target = np.zeros((4, grid, grid), np.float32)
    weight = np.zeros((grid, grid), np.float32)
    centres = (np.arange(grid) + 0.5) * STRIDE
    # Larger objects first, so a small object's cells win where two meet.
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    for k in order:
        x0, y0, x1, y1 = boxes[k]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ci = min(grid - 1, max(0, int(cy // STRIDE)))
        cj = min(grid - 1, max(0, int(cx // STRIDE)))
        sigma = max(0.6, min(x1 - x0, y1 - y0) / STRIDE / 6)
        gy = np.exp(-((np.arange(grid) - ci) ** 2) / (2 * sigma**2))
        gx = np.exp(-((np.arange(grid) - cj) ** 2) / (2 * sigma**2))
        g = gy[:, None] * gx[None, :]
        heat[labels[k]] = np.maximum(heat[labels[k]], g)
        heat[labels[k], ci, cj] = 1.0
        inside = ((centres[None, :] > x0) & (centres[None, :] < x1)
                  & (centres[:, None] > y0) & (centres[:, None] < y1))
        near = inside & (g > 0.3)
        near[ci, cj] = True
        target[:, near] = np.array([x0, y0, x1, y1], np.float32)[:, None]
        weight[near] = g[near]
    return heat, target, weight


def _square_boxes(boxes: np.ndarray, box: Letterbox, *, flip: bool) -> np.ndarray:
    """Image ``x, y, w, h`` -> square ``x0, y0, x1, y1``, mirrored when ``flip``."""
    sq = box.boxes_to_square(boxes)
    xyxy = np.concatenate([sq[:, :2], sq[:, :2] + sq[:, 2:]], axis=1)
    if flip:
        xyxy = np.stack([box.size - xyxy[:, 2], xyxy[:, 1], box.size - xyxy[:, 0], xyxy[:, 3]],
                        axis=1)
    return xyxy


# -- training ---------------------------------------------------------------------------------
@dataclass(slots=True)
class DetectorModel:
    """A trained detector: its classes, input size and the head as ONNX bytes."""

    classes: list[str]
    size: int
    head_onnx: bytes = field(repr=False)
    backbone: str = "efficientnet-lite0"
    info: dict = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """Write ``head.onnx`` and ``detector.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "head.onnx").write_bytes(self.head_onnx)
        meta = {"task": "detect", "classes": self.classes, "size": self.size,
                "backbone": self.backbone, "info": self.info}
        (folder / "detector.json").write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> DetectorModel:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "detector.json").read_text())
            head = (folder / "head.onnx").read_bytes()
        except FileNotFoundError as err:
            raise NotFoundError(
                f"{folder}: no saved detector here ({Path(err.filename).name} is missing); "
                "pass the folder DetectorModel.save wrote"
            ) from err
        return cls(classes=meta["classes"], size=meta["size"], head_onnx=head,
                   backbone=meta["backbone"], info=meta.get("info", {}))


@dataclass(slots=True)
class DetectorTraining:
    """What ``train_detector`` returns: the model, the torch head, its history and warnings."""

    model: DetectorModel
    head: DetectionHead
    history: FitHistory
    warnings: list[str]
    seconds: float


def export_detector(head: DetectionHead, *, classes: Sequence[str], size: int,
                    backbone: str, info: dict | None = None) -> DetectorModel:
    """Export ``head`` to ONNX (dynamic batch and size) as a ``DetectorModel``."""
    g = size // STRIDE
    example = (torch.zeros(1, 40, g, g), torch.zeros(1, 112, g // 2, g // 2),
               torch.zeros(1, 320, g // 4, g // 4))
    axes = {**MAP_AXES, "scores": {0: "batch", 2: "h8", 3: "w8"},
            "boxes": {0: "batch", 2: "h8", 3: "w8"}}
    data = export_onnx(ExportedDetector(head), example, input_names=list(MAPS),
                       output_names=["scores", "boxes"], dynamic_axes=axes)
    return DetectorModel(classes=list(classes), size=size, head_onnx=data, backbone=backbone,
                         info=dict(info or {}))


def train_detector(records: Sequence[ImageRecord], images: Sequence[np.ndarray], *,
                   cache: FeatureCache, classes: Sequence[str] | None = None,
                   config: DetectorConfig | None = None) -> DetectorTraining:
    """Train a detector on ``records`` (their labels) and ``images`` (their pixels, same order).

    ``images`` are (H, W, 3) uint8 arrays. The backbone maps come from ``cache`` (computed once
    per image and flip). Refuses with ValidationError when the data cannot train a detector
    (see ``detection_data``); warns (``UserWarning`` and ``.warnings``) under ~100 images.
    """
    config = config or DetectorConfig()
    if len(records) != len(images):
        raise ValidationError(
            f"{len(records)} records but {len(images)} images; pass one image per record, in "
            "the same order")
    if cache.size != config.size:
        raise ValidationError(
            f"the feature cache makes {cache.size} px maps but the detector is set to "
            f"{config.size} px; build the cache with size={config.size}")
    data = detection_data(records, classes=classes, min_per_class=config.min_per_class)
    for note in data.warnings:
        warnings.warn(note, UserWarning, stacklevel=2)
    t0 = time.perf_counter()
    orig, boxes = cache.features(images)
    flipped, _ = cache.features(images, flip=True)
    grid = config.size // STRIDE
    targets = {}
    for flip in (False, True):
        parts = [detection_targets(_square_boxes(b, lb, flip=flip), lab,
                                   num_classes=len(data.classes), grid=grid)
                 for b, lab, lb in zip(data.boxes, data.labels, boxes, strict=True)]
        targets[flip] = [np.stack(p) for p in zip(*parts, strict=True)]
    train_idx, val_idx = split_holdout(len(records), fraction=config.val_fraction,
                                       seed=config.fit.seed)
    torch.manual_seed(config.fit.seed)
    head = DetectionHead(len(data.classes), config.width)

    def batch_loss(idx: np.ndarray, flips: np.ndarray) -> torch.Tensor:
        maps = {m: to_tensor(np.where(flips[:, None, None, None], flipped[m][idx], orig[m][idx]))
                for m in MAPS}
        heat_t, box_t, weight = (
            to_tensor(np.where(flips.reshape(-1, *[1] * (o.ndim - 1)), f[idx], o[idx]))
            for o, f in zip(targets[False], targets[True], strict=True))
        return detection_loss(head, maps, heat_t, box_t, weight)

    def val_loss() -> float:
        return float(batch_loss(val_idx, np.zeros(len(val_idx), bool)))

    history = fit(head, lambda idx, fl: batch_loss(train_idx[idx], fl), n_train=len(train_idx),
                  val_loss=val_loss if len(val_idx) else None, config=config.fit)
    seconds = time.perf_counter() - t0
    info = {"images": len(records), "boxes": data.num_boxes, "train_images": len(train_idx),
            "held_out_images": len(val_idx), "seconds": round(seconds, 2),
            "history": history.as_dict(), "warnings": data.warnings,
            "config": {"size": config.size, "width": config.width,
                       "epochs": config.fit.epochs, "lr": config.fit.lr}}
    model = export_detector(head, classes=data.classes, size=config.size,
                            backbone=cache.model.name, info=info)
    return DetectorTraining(model=model, head=head, history=history, warnings=data.warnings,
                            seconds=seconds)


def detection_loss(head: DetectionHead, maps: dict[str, torch.Tensor], heat_t: torch.Tensor,
                   box_t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Focal loss on the heatmaps plus weighted GIoU loss on boxes near the centres."""
    logits, dist = head(maps["c3"], maps["c4"], maps["c5"])
    loss = focal_loss(logits, heat_t)
    h, w = logits.shape[2:]
    cy, cx = cell_centres(h, w)
    pred = torch.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1)
    sel = weight > 0
    if sel.any():
        p = pred.permute(0, 2, 3, 1)[sel]
        t = box_t.permute(0, 2, 3, 1)[sel]
        wt = weight[sel]
        loss = loss + BOX_LOSS_WEIGHT * (giou_loss(p, t) * wt).sum() / wt.sum()
    return loss


# -- inference --------------------------------------------------------------------------------
class Detector:
    """A trained detector ready to run: backbone and head in ONNX Runtime.

    ``backbone`` must be the model the head was trained on (``model.backbone``).
    """

    def __init__(self, model: DetectorModel, backbone: EmbeddingModel, *,
                 threads: int | None = None, batch_size: int = 16) -> None:
        if backbone.name != model.backbone:
            raise ValidationError(
                f"this detector was trained on backbone {model.backbone!r}, not "
                f"{backbone.name!r}; pass the {model.backbone!r} model")
        self.model = model
        self.features = FeatureCache(None, model=backbone, size=model.size, threads=threads,
                                     batch_size=batch_size)
        self.session = onnx_session(model.head_onnx, threads=threads)
        self.batch_size = batch_size

    def head_outputs(self, maps: FeatureMaps) -> tuple[np.ndarray, np.ndarray]:
        """Backbone maps -> (peak scores (N, C, h, w), boxes (N, 4, h, w)) from the ONNX head."""
        feeds = {m: np.ascontiguousarray(maps[m], dtype=np.float32) for m in MAPS}
        scores, boxes = self.session.run(["scores", "boxes"], feeds)
        return scores, boxes

    def predict(self, images: Sequence[np.ndarray], *, min_score: float = 0.05,
                iou_threshold: float = 0.5, max_detections: int = 100,
                cache: FeatureCache | None = None) -> list[list[Annotation]]:
        """Boxes found in each (H, W, 3) uint8 image, as model annotations, best first.

        ``cache`` (same backbone and size) reuses and keeps backbone maps across calls.
        """
        if not 0.0 <= min_score <= 1.0 or not 0.0 < iou_threshold <= 1.0 or max_detections < 1:
            raise ValidationError(
                f"min_score {min_score} and iou_threshold {iou_threshold} must lie in 0..1 and "
                f"max_detections {max_detections} must be >= 1")
        results: list[list[Annotation]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            maps, boxes = (cache.features(chunk) if cache is not None
                           else self.features.run(chunk))
            scores, xyxy = self.head_outputs(maps)
            for i, lb in enumerate(boxes):
                h, w = np.asarray(chunk[i]).shape[:2]
                results.append(self._decode(scores[i], xyxy[i], lb, (w, h), min_score=min_score,
                                            iou_threshold=iou_threshold, top=max_detections))
        return results

    def _decode(self, scores: np.ndarray, xyxy: np.ndarray, lb: Letterbox, size: tuple[int, int],
                *, min_score: float, iou_threshold: float, top: int) -> list[Annotation]:
        _, h, w = scores.shape
        flat = scores.reshape(-1)
        cand = np.flatnonzero(flat >= max(min_score, 1e-6))
        cand = cand[np.argsort(-flat[cand], kind="stable")[: 4 * top]]
        cls, cell = cand // (h * w), cand % (h * w)
        boxes = xyxy.reshape(4, -1)[:, cell].T.astype(np.float64)
        boxes = (boxes - [lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y]) / lb.scale
        boxes = np.clip(boxes, 0, [size[0], size[1], size[0], size[1]])
        ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        boxes, cls, conf = boxes[ok], cls[ok], flat[cand][ok]
        keep = batched_nms(boxes, conf, cls, iou_threshold=iou_threshold)[:top]
        return [
            Annotation(label=self.model.classes[int(cls[k])],
                       bbox=tuple(round(float(v), 2) for v in (
                           boxes[k, 0], boxes[k, 1], boxes[k, 2] - boxes[k, 0],
                           boxes[k, 3] - boxes[k, 1])),
                       source="model", confidence=round(float(conf[k]), 4))
            for k in keep
        ]


def evaluate_detector(detector: Detector, records: Sequence[ImageRecord],
                      images: Sequence[np.ndarray], *, cache: FeatureCache | None = None,
                      score_threshold: float = 0.3) -> DetectionMetrics:
    """mAP and per-class precision/recall of ``detector`` on labeled held-out images."""
    predictions = detector.predict(images, cache=cache)
    return detection_metrics(records, predictions, classes=detector.model.classes,
                             score_threshold=score_threshold)
