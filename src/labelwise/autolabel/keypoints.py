"""Keypoints per object on a class's skeleton: a heatmap head on backbone maps of object crops.

Each object is cut out as a square around its box (``margin`` added per side, grey beyond the
image), resized to ``crop`` pixels, and the backbone's c3/c4/c5 maps of the crop are cached
like whole images (``FeatureCache`` with ``size=crop``). The head predicts one heatmap per
point at stride 4 (trained with the focal loss on Gaussian targets) and, per point, whether
it is not labeled (0), labeled but hidden (1) or visible (2). Flip augmentation mirrors the
crop and swaps the skeleton's left/right ``flip_pairs``, so a left wrist stays a left wrist.

A point's position is its heatmap's peak refined by the weighted mean of the 3x3 cells
around it; its confidence is the peak's height (0..1). Example::

    cache = FeatureCache("features/", model=backbone, size=128)
    trained = train_keypoints(records, images, label="figure", skeleton=skeleton, cache=cache)
    est = KeypointEstimator(trained.model, backbone)
    est.predict([image], [[(40, 30, 60, 120)]])[0][0].keypoints   # [x, y, v] * K
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
from PIL import Image
from torch import nn
from torch.nn import functional as F

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
from labelwise.autolabel.detection_metrics import KeypointMetrics, keypoint_metrics
from labelwise.autolabel.features import MAPS, PAD_VALUE, FeatureCache, FeatureMaps, as_rgb
from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.core.geometry import keypoints_bbox
from labelwise.core.schema import Skeleton
from labelwise.embeddings.backbones import EmbeddingModel
from labelwise.errors import NotFoundError, ValidationError

STRIDE = 4  # heatmap cells per crop pixel: the stride 8 map upsampled once
MIN_OBJECTS = 5
FEW_IMAGES = 100
VIS_LOSS_WEIGHT = 0.5
SIGMA = 1.0  # heatmap Gaussian, in cells


@dataclass(frozen=True, slots=True)
class KeypointConfig:
    """``crop``: the square side the backbone sees per object; ``margin``: share of the box's
    longer side added on each side of the crop. ``jitter`` extra crops per training object
    have their box moved and resized (by up to about ``jitter_amount`` of its size), so the
    model also works in the imperfect boxes a detector finds."""

    crop: int = 128
    margin: float = 0.15
    width: int = 32
    jitter: int = 1
    jitter_amount: float = 0.15
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=80, patience=15))
    val_fraction: float = 0.15
    min_objects: int = MIN_OBJECTS

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 1.0:
            raise ValidationError(f"crop margin {self.margin} must lie between 0 and 1 (e.g. 0.15)")
        if not (0 <= self.jitter <= 8 and 0.0 <= self.jitter_amount <= 0.5):
            raise ValidationError(
                f"jitter {self.jitter} (extra crops per object) must be 0..8 and jitter_amount "
                f"{self.jitter_amount} 0..0.5")
        check_head_settings(size=self.crop, width=self.width, val_fraction=self.val_fraction,
                            minimum=self.min_objects)


# -- crops ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CropWindow:
    """A square ``side`` pixels wide at ``(x0, y0)`` in the image, shown at ``size`` pixels."""

    x0: float
    y0: float
    side: float
    size: int

    @classmethod
    def around(cls, box: Sequence[float], *, margin: float, size: int) -> CropWindow:
        x, y, w, h = (float(v) for v in box)
        side = max(w, h, 1.0) * (1 + 2 * margin)
        return cls(x + w / 2 - side / 2, y + h / 2 - side / 2, side, size)

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, np.float64) - [self.x0, self.y0]) * (self.size / self.side)

    def to_image(self, uv: np.ndarray) -> np.ndarray:
        return np.asarray(uv, np.float64) * (self.side / self.size) + [self.x0, self.y0]

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The window of ``image`` as (size, size, 3) uint8, grey where it leaves the image."""
        im = Image.fromarray(as_rgb(image))
        out = im.transform((self.size, self.size), Image.Transform.EXTENT,
                           data=(self.x0, self.y0, self.x0 + self.side, self.y0 + self.side),
                           resample=Image.Resampling.BILINEAR,
                           fillcolor=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
        return np.asarray(out)


# -- data -------------------------------------------------------------------------------------
@dataclass(slots=True)
class KeypointObject:
    """One labeled object: its image (index), box ``x, y, w, h`` and points (K, 3)."""

    image: int
    box: tuple[float, float, float, float]
    points: np.ndarray


def keypoint_objects(records: Sequence[ImageRecord], *, label: str, skeleton: Skeleton,
                     min_objects: int = MIN_OBJECTS) -> tuple[list[KeypointObject], list[str]]:
    """The human-labeled ``label`` objects with at least one labeled point, and warnings.

    Raises ValidationError when there are none, fewer than ``min_objects``, or an annotation's
    keypoints do not fit the skeleton.
    """
    k = len(skeleton)
    objects, problems = [], []
    for i, rec in enumerate(records):
        for a in rec.annotations:
            if a.label != label or a.keypoints is None or a.source != "human":
                continue
            if len(a.keypoints) != 3 * k:
                problems.append(f"{rec.path}: a {label!r} has {len(a.keypoints)} keypoint "
                                f"numbers; the skeleton's {k} points need {3 * k}")
                continue
            pts = np.asarray(a.keypoints, np.float64).reshape(k, 3)
            box = a.bbox if a.bbox is not None else keypoints_bbox(a.keypoints)
            if box is None or not (pts[:, 2] > 0).any() or box[2] <= 0 or box[3] <= 0:
                continue
            objects.append(KeypointObject(i, tuple(float(v) for v in box), pts))
    if problems:
        raise ValidationError(f"keypoints of class {label!r} do not fit its skeleton; fix "
                              "these annotations", problems=problems)
    if not objects:
        raise ValidationError(
            f"none of the {len(records)} images has a {label!r} with labeled keypoints; label "
            f"the points of at least {min_objects} objects first")
    if len(objects) < min_objects:
        raise ValidationError(
            f"only {len(objects)} {label!r} objects have labeled keypoints; a keypoint model "
            f"needs at least {min_objects}: label more")
    notes = []
    images = len({o.image for o in objects})
    if images < FEW_IMAGES:
        notes.append(f"only {images} images with labeled {label!r} keypoints: under about "
                     f"{FEW_IMAGES} the pre-labels are rough; label more for better ones")
    return objects, notes


def keypoint_targets(uv: np.ndarray, vis: np.ndarray, *, grid: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (K, g, g) with a Gaussian peak of 1 at each labeled point (crop pixels ``uv``
    (K, 2)), and a weight per point (K,): 0 for points not labeled (``vis`` 0)."""
    k = len(uv)
    heat = np.zeros((k, grid, grid), np.float32)
    cells = np.arange(grid)
    for p in range(k):
        if vis[p] <= 0:
            continue
        cj, ci = uv[p] / STRIDE - 0.5
        if not (-1 <= ci <= grid and -1 <= cj <= grid):
            continue
        # The peak goes to the cell that contains the point.
        ri = int(np.clip(uv[p, 1] // STRIDE, 0, grid - 1))
        rj = int(np.clip(uv[p, 0] // STRIDE, 0, grid - 1))
        gy = np.exp(-((cells - ci) ** 2) / (2 * SIGMA**2))
        gx = np.exp(-((cells - cj) ** 2) / (2 * SIGMA**2))
        heat[p] = gy[:, None] * gx[None, :]
        heat[p, ri, rj] = 1.0
    return heat, (vis > 0).astype(np.float32)


def flipped_points(uv: np.ndarray, vis: np.ndarray, *, size: int, skeleton: Skeleton
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Points of the mirrored crop: x -> size - x, and left/right points swapped."""
    perm = np.arange(len(uv))
    for a, b in skeleton.flip_pairs:
        perm[a], perm[b] = b, a
    out = uv[perm].copy()
    out[:, 0] = size - out[:, 0]
    return out, vis[perm]


# -- the head ---------------------------------------------------------------------------------
class KeypointHead(nn.Module):
    """c3, c4, c5 of a crop -> heatmap logits (N, K, S/4, S/4) and visibility logits (N, K, 3)."""

    def __init__(self, num_points: int, width: int = 32) -> None:
        super().__init__()
        self.num_points = num_points
        self.neck = Neck(width)
        self.up = conv_block(width, width)
        self.heat = prediction_layer(width, num_points, prior=HEAT_PRIOR)
        self.vis = nn.Linear(2 * width, num_points * 3)

    def forward(self, c3, c4, c5):
        x = self.neck(c3, c4, c5)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        x = self.up(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        return self.heat(x), self.vis(pooled).view(-1, self.num_points, 3)


class ExportedKeypoints(nn.Module):
    """The head as exported: heatmaps as probabilities and visibility as softmax (N, K, 3)."""

    def __init__(self, head: KeypointHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, c3, c4, c5):
        heat, vis = self.head(c3, c4, c5)
        return torch.sigmoid(heat), torch.softmax(vis, dim=-1)


# -- model ------------------------------------------------------------------------------------
@dataclass(slots=True)
class KeypointModel:
    """A trained keypoint model: the class, its skeleton, crop settings and the ONNX head."""

    label: str
    skeleton: Skeleton
    crop: int
    margin: float
    head_onnx: bytes = field(repr=False)
    backbone: str = "efficientnet-lite0"
    info: dict = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """Write ``head.onnx`` and ``keypoints.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "head.onnx").write_bytes(self.head_onnx)
        meta = {"task": "keypoints", "label": self.label, "skeleton": self.skeleton.to_dict(),
                "crop": self.crop, "margin": self.margin, "backbone": self.backbone,
                "info": self.info}
        (folder / "keypoints.json").write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> KeypointModel:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "keypoints.json").read_text())
            head = (folder / "head.onnx").read_bytes()
        except FileNotFoundError as err:
            raise NotFoundError(
                f"{folder}: no saved keypoint model here ({Path(err.filename).name} is "
                "missing); pass the folder KeypointModel.save wrote") from err
        return cls(label=meta["label"], skeleton=Skeleton.from_dict(meta["skeleton"]),
                   crop=meta["crop"], margin=meta["margin"], head_onnx=head,
                   backbone=meta["backbone"], info=meta.get("info", {}))


@dataclass(slots=True)
class KeypointTraining:
    """What ``train_keypoints`` returns: the model, the torch head, its history and warnings."""

    model: KeypointModel
    head: KeypointHead
    history: FitHistory
    warnings: list[str]
    seconds: float


def export_keypoints(head: KeypointHead, *, label: str, skeleton: Skeleton, crop: int,
                     margin: float, backbone: str, info: dict | None = None) -> KeypointModel:
    """Export ``head`` to ONNX (dynamic batch) as a ``KeypointModel``."""
    g = crop // 8
    example = (torch.zeros(1, 40, g, g), torch.zeros(1, 112, g // 2, g // 2),
               torch.zeros(1, 320, g // 4, g // 4))
    axes = {**MAP_AXES, "heatmaps": {0: "batch", 2: "h4", 3: "w4"}, "visibility": {0: "batch"}}
    data = export_onnx(ExportedKeypoints(head), example, input_names=list(MAPS),
                       output_names=["heatmaps", "visibility"], dynamic_axes=axes)
    return KeypointModel(label=label, skeleton=skeleton, crop=crop, margin=margin,
                         head_onnx=data, backbone=backbone, info=dict(info or {}))


def train_keypoints(records: Sequence[ImageRecord], images: Sequence[np.ndarray], *,
                    label: str, skeleton: Skeleton, cache: FeatureCache,
                    config: KeypointConfig | None = None) -> KeypointTraining:
    """Train keypoints for class ``label`` from ``records`` and their ``images`` (same order).

    ``cache`` must make maps of ``config.crop`` pixels. Refuses with ValidationError when
    there are fewer than ``config.min_objects`` labeled objects; warns under ~100 images.
    """
    config = config or KeypointConfig()
    if len(records) != len(images):
        raise ValidationError(
            f"{len(records)} records but {len(images)} images; pass one image per record, in "
            "the same order")
    if cache.size != config.crop:
        raise ValidationError(
            f"the feature cache makes {cache.size} px maps but crops are {config.crop} px; "
            f"build the cache with size={config.crop}")
    objects, notes = keypoint_objects(records, label=label, skeleton=skeleton,
                                      min_objects=config.min_objects)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    t0 = time.perf_counter()
    # Split by object, so no view of a held-out object is trained on.
    train_obj, val_obj = split_holdout(len(objects), fraction=config.val_fraction,
                                       seed=config.fit.seed)
    samples = _training_windows(objects, val_obj, config)
    crops = [w.cut(images[objects[i].image]) for i, w in samples]
    orig, _ = cache.features(crops)
    flipped, _ = cache.features(crops, flip=True)
    grid = config.crop // STRIDE
    targets: dict[bool, list[np.ndarray]] = {}
    for flip in (False, True):
        parts = []
        for i, w in samples:
            o = objects[i]
            uv, vis = w.to_crop(o.points[:, :2]), o.points[:, 2]
            if flip:
                uv, vis = flipped_points(uv, vis, size=config.crop, skeleton=skeleton)
            heat, weight = keypoint_targets(uv, vis, grid=grid)
            parts.append((heat, weight, vis.astype(np.int64)))
        targets[flip] = [np.stack(p) for p in zip(*parts, strict=True)]
    held_out = set(val_obj.tolist())
    train_idx = np.array([k for k, (i, _) in enumerate(samples) if i not in held_out], int)
    val_idx = np.array([k for k, (i, _) in enumerate(samples) if i in held_out], int)
    torch.manual_seed(config.fit.seed)
    head = KeypointHead(len(skeleton), config.width)

    def batch_loss(idx: np.ndarray, flips: np.ndarray) -> torch.Tensor:
        maps = {m: to_tensor(np.where(flips[:, None, None, None], flipped[m][idx], orig[m][idx]))
                for m in MAPS}
        pick = [np.where(flips.reshape(-1, *[1] * (o.ndim - 1)), f[idx], o[idx])
                for o, f in zip(targets[False], targets[True], strict=True)]
        heat_logits, vis_logits = head(maps["c3"], maps["c4"], maps["c5"])
        weight = to_tensor(pick[1])
        loss = focal_loss(heat_logits, to_tensor(pick[0]), weight[:, :, None, None])
        vis_t = torch.from_numpy(pick[2])
        return loss + VIS_LOSS_WEIGHT * F.cross_entropy(vis_logits.reshape(-1, 3),
                                                        vis_t.reshape(-1))

    def val_loss() -> float:
        return float(batch_loss(val_idx, np.zeros(len(val_idx), bool)))

    history = fit(head, lambda idx, fl: batch_loss(train_idx[idx], fl), n_train=len(train_idx),
                  val_loss=val_loss if len(val_idx) else None, config=config.fit)
    seconds = time.perf_counter() - t0
    info = {"images": len(records), "objects": len(objects), "train_objects": len(train_obj),
            "held_out_objects": len(val_obj), "train_crops": len(train_idx),
            "seconds": round(seconds, 2),
            "history": history.as_dict(), "warnings": notes,
            "config": {"crop": config.crop, "margin": config.margin, "width": config.width,
                       "jitter": config.jitter, "epochs": config.fit.epochs,
                       "lr": config.fit.lr}}
    model = export_keypoints(head, label=label, skeleton=skeleton, crop=config.crop,
                             margin=config.margin, backbone=cache.model.name, info=info)
    return KeypointTraining(model=model, head=head, history=history, warnings=notes,
                            seconds=seconds)


def _training_windows(objects: list[KeypointObject], held_out: np.ndarray,
                      config: KeypointConfig) -> list[tuple[int, CropWindow]]:
    """(object index, crop window) pairs: every object's own box, and for training objects
    ``config.jitter`` more with the box moved and resized at random (seeded)."""
    rng = np.random.default_rng(config.fit.seed)
    val = set(held_out.tolist())
    out = []
    for i in range(len(objects)):
        box = objects[i].box
        out.append((i, CropWindow.around(box, margin=config.margin, size=config.crop)))
        if i in val:
            continue
        for _ in range(config.jitter):
            out.append((i, CropWindow.around(jittered_box(box, rng, config.jitter_amount),
                                             margin=config.margin, size=config.crop)))
    return out


def jittered_box(box: Sequence[float], rng: np.random.Generator, amount: float
                 ) -> tuple[float, float, float, float]:
    """``box`` (x, y, w, h) moved by up to ``amount`` of its size and scaled by up to
    ``1 +/- amount`` per side, as a detector's box might differ from the labeled one."""
    x, y, w, h = (float(v) for v in box)
    sw, sh = np.exp(rng.uniform(-amount, amount, size=2))
    dx, dy = rng.uniform(-amount / 2, amount / 2, size=2) * (w, h)
    nw, nh = w * sw, h * sh
    return (x + w / 2 + dx - nw / 2, y + h / 2 + dy - nh / 2, nw, nh)


# -- inference --------------------------------------------------------------------------------
def decode_heatmaps(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of (K, g, g) heatmaps -> crop pixels (K, 2) and peak heights (K,).

    Each peak is refined by the heat-weighted mean position of its 3x3 neighbourhood.
    """
    k, g, _ = heat.shape
    flat = heat.reshape(k, -1).argmax(axis=1)
    ci, cj = flat // g, flat % g
    uv = np.zeros((k, 2))
    for p in range(k):
        i0, i1 = max(ci[p] - 1, 0), min(ci[p] + 2, g)
        j0, j1 = max(cj[p] - 1, 0), min(cj[p] + 2, g)
        patch = heat[p, i0:i1, j0:j1].astype(np.float64)
        total = patch.sum()
        ii, jj = np.mgrid[i0:i1, j0:j1]
        mi = (patch * ii).sum() / total if total > 0 else ci[p]
        mj = (patch * jj).sum() / total if total > 0 else cj[p]
        uv[p] = ((mj + 0.5) * STRIDE, (mi + 0.5) * STRIDE)
    return uv, heat[np.arange(k), ci, cj].astype(np.float64)


class KeypointEstimator:
    """A trained keypoint model ready to run: backbone and head in ONNX Runtime."""

    def __init__(self, model: KeypointModel, backbone: EmbeddingModel, *,
                 threads: int | None = None, batch_size: int = 32) -> None:
        if backbone.name != model.backbone:
            raise ValidationError(
                f"this keypoint model was trained on backbone {model.backbone!r}, not "
                f"{backbone.name!r}; pass the {model.backbone!r} model")
        self.model = model
        self.features = FeatureCache(None, model=backbone, size=model.crop, threads=threads,
                                     batch_size=batch_size)
        self.session = onnx_session(model.head_onnx, threads=threads)
        self.batch_size = batch_size

    def head_outputs(self, maps: FeatureMaps) -> tuple[np.ndarray, np.ndarray]:
        """Crop maps -> heatmaps (N, K, g, g) and visibility probabilities (N, K, 3)."""
        feeds = {m: np.ascontiguousarray(maps[m], dtype=np.float32) for m in MAPS}
        heat, vis = self.session.run(["heatmaps", "visibility"], feeds)
        return heat, vis

    def predict(self, images: Sequence[np.ndarray],
                boxes: Sequence[Sequence[Sequence[float]]], *,
                cache: FeatureCache | None = None) -> list[list[Annotation]]:
        """Keypoints of each box (``x, y, w, h``) in each image, as model annotations.

        A point predicted not labeled is ``0, 0, 0``, as COCO writes it. Per-point confidence
        is in ``attributes["keypoint_scores"]``; ``confidence`` is their mean over the points
        predicted labeled.
        """
        if len(images) != len(boxes):
            raise ValidationError(
                f"{len(images)} images but {len(boxes)} box lists; give one list of boxes per "
                "image (it may be empty)")
        jobs = [(i, tuple(float(v) for v in b)) for i, bs in enumerate(boxes) for b in bs]
        for i, b in jobs:
            if len(b) != 4 or b[2] <= 0 or b[3] <= 0:
                raise ValidationError(f"image {i}: box {list(b)} must be [x, y, width, height] "
                                      "with a positive width and height")
        out: list[list[Annotation]] = [[] for _ in images]
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start:start + self.batch_size]
            windows = [CropWindow.around(b, margin=self.model.margin, size=self.model.crop)
                       for _, b in chunk]
            crops = [w.cut(images[i]) for (i, _), w in zip(chunk, windows, strict=True)]
            maps = cache.features(crops)[0] if cache is not None else self.features.run(crops)[0]
            heat, vis = self.head_outputs(maps)
            for row, ((i, b), w) in enumerate(zip(chunk, windows, strict=True)):
                out[i].append(self._annotation(heat[row], vis[row], w, b))
        return out

    def _annotation(self, heat: np.ndarray, vis: np.ndarray, window: CropWindow,
                    box: tuple[float, ...]) -> Annotation:
        uv, score = decode_heatmaps(heat)
        xy = window.to_image(uv)
        v = vis.argmax(axis=1)
        flat: list[float] = []
        for p in range(len(uv)):
            flat += [0.0, 0.0, 0] if v[p] == 0 else [round(float(xy[p, 0]), 2),
                                                     round(float(xy[p, 1]), 2), int(v[p])]
        labeled = score[v > 0]
        return Annotation(
            label=self.model.label, bbox=tuple(round(x, 2) for x in box), keypoints=flat,
            source="model", confidence=round(float(labeled.mean()), 4) if labeled.size else 0.0,
            attributes={"keypoint_scores": [round(float(s), 4) for s in score]})


def evaluate_keypoints(estimator: KeypointEstimator, records: Sequence[ImageRecord],
                       images: Sequence[np.ndarray], *, cache: FeatureCache | None = None,
                       alpha: float = 0.1, sigmas: Sequence[float] | None = None
                       ) -> KeypointMetrics:
    """PCK@``alpha`` and OKS AP of ``estimator`` on labeled held-out images, given the true
    boxes of the labeled objects (so the score is the keypoint model's alone)."""
    model = estimator.model
    boxes = [[a.bbox if a.bbox is not None else keypoints_bbox(a.keypoints)
              for a in rec.annotations
              if a.label == model.label and a.keypoints is not None and a.source == "human"
              and (a.bbox is not None or keypoints_bbox(a.keypoints) is not None)]
             for rec in records]
    predictions = estimator.predict(images, boxes, cache=cache)
    return keypoint_metrics(records, predictions, label=model.label, skeleton=model.skeleton,
                            alpha=alpha, sigmas=sigmas)
