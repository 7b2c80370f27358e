"""Boxes and keypoints on a workspace: train with a cross-validated card, pre-label with doubt.

``train_dense`` reads the assets' images (blob store) and object labels (database), refuses
data that cannot train a model, evaluates the model the way the card reports it, trains the
final model on every image and writes it into a folder. ``apply_dense`` runs a saved model
over assets (here or on Ray actors, ``dense_apply``) and yields, per image, the objects found,
an uncertainty, the expected error and a difficulty bucket. The service layer (``autolabel/service.py``) owns versions and rows.

Evaluation: under ``kfold_below`` (150) images, k-fold cross-validation (3 folds, a model
retrained on each 2/3 and run on the other 1/3); above, one held-out 20%. Every number on the
card, the confidence calibration and the difficulty buckets come from those held-out
predictions (``dense_uncertainty`` explains how); the final model is then trained on all
images. Task ``keypoints`` trains a detector for the classes that have a skeleton and one
keypoint model per such class; pre-labels are the detector's boxes with their points.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.autolabel.calibration import expected_calibration_error
from labelwise.autolabel.dense_data import TrainingSet, asset_refs, load_training_set
from labelwise.autolabel.dense_uncertainty import (
    KEEP,
    METHOD,
    Knots,
    image_expected_error,
    image_is_wrong,
    keypoints_right,
    match_detections,
    true_objects,
)
from labelwise.autolabel.uncertainty import DifficultyBuckets, fit_buckets
from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.core.schema import Skeleton
from labelwise.errors import ValidationError

if TYPE_CHECKING:
    from labelwise.autolabel.detect import DetectorModel
    from labelwise.autolabel.features import FeatureCache
    from labelwise.autolabel.keypoints import KeypointModel
    from labelwise.autolabel.training_data import FrozenLabels
    from labelwise.embeddings.backbones import EmbeddingModel
    from labelwise.workspace import Workspace

TASKS = ("boxes", "keypoints")
ENGINES = ("local", "ray")
FORMAT = 1
MIN_PER_CLASS = 5
FEW_IMAGES = 100
#: Raw detector score from which a heatmap peak is a candidate box.
MIN_SCORE = 0.05
APPLY_BATCH = 16
DETECTOR_DIR = "detector"
KEYPOINTS_DIR = "keypoints"

#: ``progress(stage, fraction done 0..1)`` while training.
TrainProgress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class DenseOptions:
    """Training settings (``options`` of ``train_dense``). ``size`` None: from the images'
    sizes (their median longer side rounded up to 32, within 128..256)."""

    size: int | None = None
    epochs: int = 60
    patience: int = 12
    keypoint_epochs: int = 80
    folds: int = 3
    kfold_below: int = 150
    held_out: float = 0.2
    seed: int = 0
    classes: tuple[str, ...] | None = None
    crop: int = 128
    width: int = 32
    max_seconds: float | None = None
    keep: float = KEEP

    @classmethod
    def parse(cls, options: Mapping[str, Any] | None) -> DenseOptions:
        given = dict(options or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValidationError(
                f"unknown box/keypoint training option(s) {unknown}; valid ones: "
                f"{', '.join(known)}")
        if given.get("classes") is not None:
            classes = given["classes"]
            if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
                raise ValidationError(
                    f"classes must be a list of class names, got {classes!r}")
            given["classes"] = tuple(classes)
        opts = cls(**given)
        problems = []
        for name in ("epochs", "patience", "keypoint_epochs", "folds", "kfold_below", "seed",
                     "crop", "width"):
            value = getattr(opts, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} {value!r}: give a whole number >= 0")
        if not problems:
            if opts.epochs < 1 or opts.keypoint_epochs < 1 or opts.patience < 1:
                problems.append("epochs, keypoint_epochs and patience must be at least 1")
            if opts.folds < 2:
                problems.append(f"folds {opts.folds}: cross-validation needs at least 2")
            if opts.crop < 64 or opts.crop % 32:
                problems.append(f"crop {opts.crop}: use a multiple of 32 from 64 (e.g. 128)")
        if not isinstance(opts.held_out, (int, float)) or not 0.05 <= opts.held_out <= 0.5:
            problems.append(f"held_out {opts.held_out!r}: hold out 0.05..0.5 of the images")
        if opts.size is not None and (isinstance(opts.size, bool) or not isinstance(opts.size, int)
                                      or not 64 <= opts.size <= 1024 or opts.size % 32):
            problems.append(f"size {opts.size!r}: a multiple of 32 within 64..1024 (e.g. 256)")
        if not isinstance(opts.keep, (int, float)) or not 0.05 <= opts.keep <= 0.95:
            problems.append(f"keep {opts.keep!r}: the calibrated confidence from which a box "
                            "is kept, within 0.05..0.95 (default 0.5)")
        if opts.max_seconds is not None and not (isinstance(opts.max_seconds, (int, float))
                                                 and opts.max_seconds > 0):
            problems.append(f"max_seconds {opts.max_seconds!r}: a positive number of seconds")
        if problems:
            raise ValidationError("the box/keypoint training options are not usable",
                                  problems=problems)
        return opts

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["classes"] = None if self.classes is None else list(self.classes)
        return out


@dataclass
class DenseTrainResult:
    """A trained box/keypoint model: its card, what applying it needs, and the warnings."""

    card: dict
    meta: dict
    warnings: list[str]


@dataclass
class DensePrediction:
    """Pre-labels of one image. ``objects``: ``{"class_name", "bbox": [x, y, w, h] pixels,
    "confidence" (calibrated, 0..1), "keypoints": [[x, y, v], ...] | None, "attributes":
    {"keypoint_scores": [...]} | None}``; ``uncertainty`` = ``expected_error`` in [0, 1]."""

    asset_id: int
    objects: list[dict]
    uncertainty: float
    expected_error: float
    bucket: str


# -- what to train ----------------------------------------------------------------------------
@dataclass(slots=True)
class Plan:
    """The checked data of one training: detector classes, keypoint classes and records."""

    task: str
    classes: list[str]
    skeletons: dict[str, Skeleton]
    box_counts: dict[str, int]
    point_counts: dict[str, int]
    records: list[ImageRecord]
    size: int
    warnings: list[str] = field(default_factory=list)


def plan_training(task: str, data: TrainingSet, opts: DenseOptions) -> Plan:
    """Check that the labels can train a ``task`` model; refuse with the reason otherwise."""
    n = len(data.records)
    where = f"the {n} image(s) of {data.labels_from}"
    if task == "keypoints":
        skeletons = _keypoint_classes(data, opts, where)
        classes = list(skeletons)
    else:
        skeletons = {}
        classes = []
    records = [_with_boxes(r, classes or None) for r in data.records]
    counts: dict[str, int] = {}
    for rec in records:
        for a in rec.annotations:
            if not a.iscrowd:
                counts[a.label] = counts.get(a.label, 0) + 1
    if task == "boxes":
        if not counts:
            raise ValidationError(
                f"none of {where} has a box or polygon labeled by a person, so there is "
                "nothing to learn boxes from; draw boxes on at least 5 objects of each of 2 "
                "classes, or train a categorization model on image-level labels")
        wanted = list(opts.classes) if opts.classes is not None else sorted(counts)
        missing = [c for c in wanted if c not in counts]
        if missing:
            raise ValidationError(
                f"no boxes of class(es) {missing} on {where} (classes with boxes: "
                f"{sorted(counts)}); label some or leave them out of 'classes'")
        if len(wanted) < 2:
            raise ValidationError(
                f"a box model needs at least 2 classes; {where} only have boxes of "
                f"{wanted[0]!r} ({counts[wanted[0]]}); label objects of a second class")
        classes = wanted
    short = [f"{c!r}: {counts.get(c, 0)} box(es)" for c in classes
             if counts.get(c, 0) < MIN_PER_CLASS]
    if short:
        raise ValidationError(
            f"too few examples to learn from on {where}: every class needs at least "
            f"{MIN_PER_CLASS} labeled objects; label more of these classes or leave them out "
            "('classes' option)", problems=short)
    notes = []
    if data.unlabeled:
        notes.append(f"{len(data.unlabeled)} of the {n + len(data.unlabeled)} images have no "
                     "object labeled by a person and were left out as not labeled yet")
    if n < FEW_IMAGES:
        notes.append(f"only {n} labeled images: under about {FEW_IMAGES} the pre-labels are "
                     "rough and the card's numbers uncertain; label more for better ones")
    points = {c: sum(1 for r in data.records for a in r.annotations
                     if a.label == c and a.source == "human" and a.keypoints is not None)
              for c in skeletons}
    return Plan(task=task, classes=classes, skeletons=skeletons,
                box_counts={c: counts[c] for c in classes}, point_counts=points,
                records=records, size=opts.size or _auto_size(data), warnings=notes)


def _keypoint_classes(data: TrainingSet, opts: DenseOptions, where: str) -> dict[str, Skeleton]:
    """Classes with a skeleton whose objects have labeled points, at least 5 each."""
    labeled: dict[str, int] = {}
    for rec in data.records:
        for a in rec.annotations:
            if a.source == "human" and a.keypoints is not None and any(
                    v > 0 for v in a.keypoints[2::3]):
                labeled[a.label] = labeled.get(a.label, 0) + 1
    with_skeleton = {c.name: c.skeleton for c in data.classes.values() if c.skeleton is not None}
    wanted = list(opts.classes) if opts.classes is not None else sorted(labeled)
    if not labeled:
        raise ValidationError(
            f"none of {where} has an object with labeled keypoints, so there is nothing to "
            "learn keypoints from; label the points of at least 5 objects of a keypoints class")
    missing = [c for c in wanted if c not in labeled]
    if missing:
        raise ValidationError(
            f"no labeled keypoints of class(es) {missing} on {where} (classes with keypoints: "
            f"{sorted(labeled)}); label some or leave them out of 'classes'")
    no_skeleton = [c for c in wanted if c not in with_skeleton]
    if no_skeleton:
        raise ValidationError(
            f"class(es) {no_skeleton} of {data.labels_from} have keypoints but no "
            "skeleton in the schema, so their points have no names or left/right pairs; import "
            "the labels from a COCO file whose category lists its 'keypoints' and 'skeleton', "
            "or label them under a keypoints class (`labelwise schema add DATASET NAME --tool "
            "keypoints --skeleton TEMPLATE`), or leave the class out ('classes' option)")
    short = [f"{c!r}: {labeled[c]} object(s) with points" for c in wanted
             if labeled[c] < MIN_PER_CLASS]
    if short:
        raise ValidationError(
            f"too few examples to learn keypoints from on {where}: every class needs at least "
            f"{MIN_PER_CLASS} objects with labeled points; label more", problems=short)
    return {c: with_skeleton[c] for c in wanted}


def _with_boxes(rec: ImageRecord, classes: Sequence[str] | None) -> ImageRecord:
    """The record with only human objects of ``classes`` (all when None), each with a box
    (from its polygon or points when it has none); crowd regions kept for the metrics."""
    anns = [a for a in rec.annotations if a.source == "human" and not a.is_category]
    wanted = {a.label for a in anns} if classes is None else set(classes)
    crowd = [a for a in anns if a.iscrowd and a.label in wanted and a.bbox is not None]
    anns = true_objects(anns, sorted(wanted)) + crowd
    return ImageRecord(path=rec.path, width=rec.width, height=rec.height, annotations=anns,
                       external_id=rec.external_id, origin=rec.origin)


def _auto_size(data: TrainingSet) -> int:
    longer = np.median([max(img.shape[:2]) for img in data.images])
    return int(min(256, max(128, 32 * np.ceil(longer / 32))))


# -- training one model set -------------------------------------------------------------------
@dataclass(slots=True)
class Models:
    detector: DetectorModel
    keypoints: dict[str, KeypointModel]


@dataclass(slots=True)
class Predictors:
    """Trained models ready to run (ONNX sessions made once)."""

    detector: Any
    keypoints: dict[str, Any]

    @classmethod
    def of(cls, models: Models, backbone: EmbeddingModel, *, threads: int | None = None
           ) -> Predictors:
        from labelwise.autolabel.detect import Detector
        from labelwise.autolabel.keypoints import KeypointEstimator

        return cls(Detector(models.detector, backbone, threads=threads),
                   {c: KeypointEstimator(m, backbone, threads=threads)
                    for c, m in models.keypoints.items()})


@dataclass(slots=True)
class Caches:
    maps: FeatureCache
    crops: FeatureCache | None


def _fit(plan: Plan, idx: np.ndarray, data: TrainingSet, caches: Caches, opts: DenseOptions
         ) -> Models | None:
    """Train the detector (and keypoint models) on the images ``idx``; None when they hold no
    labeled object (a fold whose objects all fell in its held-out part)."""
    from labelwise.autolabel.dense_heads import FitConfig
    from labelwise.autolabel.detect import DetectorConfig, train_detector
    from labelwise.autolabel.keypoints import KeypointConfig, train_keypoints

    records = [plan.records[i] for i in idx]
    images = [data.images[i] for i in idx]
    present = {a.label for r in records for a in true_objects(r.annotations, plan.classes)}
    classes = [c for c in plan.classes if c in present]
    if not classes:
        return None
    fit = FitConfig(epochs=opts.epochs, patience=opts.patience, seed=opts.seed,
                    max_seconds=opts.max_seconds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the card carries the warnings
        det = train_detector(records, images, cache=caches.maps, classes=classes,
                             config=DetectorConfig(size=plan.size, width=opts.width, fit=fit,
                                                   min_per_class=1))
        kps = {}
        for label, skeleton in plan.skeletons.items():
            raw = [data.records[i] for i in idx]
            if not any(a.label == label and a.keypoints is not None and a.source == "human"
                       for r in raw for a in r.annotations):
                continue
            config = KeypointConfig(crop=opts.crop, width=opts.width, min_objects=1, fit=FitConfig(
                epochs=opts.keypoint_epochs, patience=max(opts.patience, 15), seed=opts.seed,
                max_seconds=opts.max_seconds))
            kps[label] = train_keypoints(raw, images, label=label, skeleton=skeleton,
                                         cache=caches.crops, config=config).model
    return Models(detector=det.model, keypoints=kps)


def _predict(run: Predictors, images: Sequence[np.ndarray], *, cache: FeatureCache | None,
             min_points_score: float = 0.0) -> list[list[Annotation]]:
    """Candidate boxes (raw confidence >= MIN_SCORE) per image, with keypoints for keypoint
    classes (``attributes``: ``keypoint_scores`` and ``keypoint_confidence``) on the
    candidates whose raw confidence is at least ``min_points_score``."""
    found = run.detector.predict(images, min_score=MIN_SCORE, cache=cache)
    for label, estimator in run.keypoints.items():
        boxes = [[a.bbox for a in anns if a.label == label and a.confidence >= min_points_score]
                 for anns in found]
        if not any(boxes):
            continue
        points = estimator.predict(images, boxes)
        for anns, pts in zip(found, points, strict=True):
            mine = [a for a in anns if a.label == label and a.confidence >= min_points_score]
            for a, p in zip(mine, pts, strict=True):
                a.keypoints = p.keypoints
                a.attributes = {"keypoint_scores": p.attributes["keypoint_scores"],
                                "keypoint_confidence": p.confidence}
    return found


def _points_in_true_boxes(run: Predictors, records: list[ImageRecord],
                          images: Sequence[np.ndarray]) -> dict[str, list[list[Annotation]]]:
    """Per keypoint class, its model's points in the true boxes of each image."""
    out = {}
    for label, estimator in run.keypoints.items():
        boxes = [[a.bbox for a in true_objects(r.annotations, [label]) if a.keypoints is not None]
                 for r in records]
        out[label] = estimator.predict(images, boxes)
    return out


# -- review model: calibration, per-image error, buckets --------------------------------------
@dataclass(slots=True)
class Review:
    """What the held-out predictions teach about the model's own doubt."""

    boxes: Knots
    points: dict[str, Knots]
    buckets: DifficultyBuckets
    kept: list[list[Annotation]]  # per image: the pre-labels, calibrated confidence
    wrong: np.ndarray
    expected: np.ndarray
    ece_before: float | None
    ece_after: float | None


def fit_review(plan: Plan, records: Sequence[ImageRecord],
               candidates: Sequence[Sequence[Annotation]], *, keep: float = KEEP) -> Review:
    """Calibrate the held-out ``candidates`` (one list per image in ``records``), mark each
    image right or wrong, and cut difficulty buckets on the result."""
    truths = [true_objects(r.annotations, plan.classes) for r in records]
    scores, hits, groups = [], [], []
    point_data: dict[str, tuple[list[float], list[bool]]] = {c: ([], []) for c in plan.skeletons}
    for i, (truth, cands) in enumerate(zip(truths, candidates, strict=True)):
        match = match_detections(truth, cands)
        for a, j in zip(cands, match, strict=True):
            scores.append(a.confidence or 0.0)
            hits.append(j >= 0)
            groups.append(i % 2)
            if j >= 0 and a.label in point_data and truth[j].keypoints is not None:
                right = keypoints_right(truth[j].keypoints, a.keypoints, truth[j].bbox)
                if right is not None:
                    point_data[a.label][0].append(_point_conf(a))
                    point_data[a.label][1].append(right)
    s, h, g = np.asarray(scores), np.asarray(hits, bool), np.asarray(groups)
    box_knots = Knots.fit(s, h)
    point_knots = {c: Knots.fit(np.asarray(x), np.asarray(y)) for c, (x, y) in point_data.items()}
    kept_all, wrong, expected = [], [], []
    for truth, cands in zip(truths, candidates, strict=True):
        kept, p_kept, p_dropped = _decide(cands, box_knots, point_knots, keep=keep)
        order = [a.confidence for a in kept]
        match = match_detections(truth, kept, scores=order)
        right = [keypoints_right(truth[j].keypoints, a.keypoints, truth[j].bbox) is not False
                 if j >= 0 and a.label in plan.skeletons and truth[j].keypoints is not None
                 else True for a, j in zip(kept, match, strict=True)]
        kept_all.append(kept)
        wrong.append(image_is_wrong(len(truth), match, np.asarray(right, bool)))
        expected.append(image_expected_error(p_kept, p_dropped))
    w, e = np.asarray(wrong, bool), np.asarray(expected)
    buckets = fit_buckets(e, ~w, e, method=METHOD)
    return Review(boxes=box_knots, points=point_knots, buckets=buckets, kept=kept_all,
                  wrong=w, expected=e, ece_before=_ece(s, h),
                  ece_after=_cross_fitted_ece(s, h, g))


def _point_conf(a: Annotation) -> float:
    return float((a.attributes or {}).get("keypoint_confidence") or 0.0)


def _decide(cands: Sequence[Annotation], box_knots: Knots, point_knots: Mapping[str, Knots],
            *, keep: float) -> tuple[list[Annotation], np.ndarray, np.ndarray]:
    """The kept pre-labels (calibrated box confidence >= ``keep``; their confidence is the
    probability they are right), the probability each kept one is right, and the
    probability each dropped candidate was a real object."""
    p_box = box_knots([a.confidence or 0.0 for a in cands]) if cands else np.zeros(0)
    kept, p_kept, p_dropped = [], [], []
    for a, p in zip(cands, p_box, strict=True):
        if p < keep:
            p_dropped.append(p)
            continue
        q = 1.0
        if a.label in point_knots:
            q = float(point_knots[a.label]([_point_conf(a)])[0]) if a.keypoints else 0.0
        p_kept.append(p * q)
        kept.append(Annotation(label=a.label, bbox=a.bbox, keypoints=a.keypoints,
                               attributes=a.attributes, source="model",
                               confidence=round(float(p * q), 4)))
    return kept, np.asarray(p_kept), np.asarray(p_dropped)


def _ece(scores: np.ndarray, hits: np.ndarray) -> float | None:
    if not len(scores):
        return None
    return round(expected_calibration_error(scores[:, None], hits[:, None].astype(float),
                                            multi_label=True), 4)


def _cross_fitted_ece(scores: np.ndarray, hits: np.ndarray, groups: np.ndarray) -> float | None:
    """ECE of calibrated confidences, the map fitted on one half of the images and scored on
    the other (both ways), so the figure does not grade its own fit."""
    if len(np.unique(groups)) < 2:
        return None
    calibrated = np.zeros(len(scores))
    for g in (0, 1):
        knots = Knots.fit(scores[groups != g], hits[groups != g])
        calibrated[groups == g] = knots(scores[groups == g])
    return _ece(calibrated, hits)


# -- training ---------------------------------------------------------------------------------
def evaluation_splits(n: int, opts: DenseOptions) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(description, [(train indices, held-out indices), ...]) for ``n`` images."""
    order = np.random.default_rng(opts.seed).permutation(n)
    if n < opts.kfold_below:
        k = min(opts.folds, n)
        parts = np.array_split(order, k)
        splits = [(np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])),
                   np.sort(parts[i])) for i in range(k)]
        return f"{k}-fold cross-validation", splits
    m = max(1, round(n * opts.held_out))
    return (f"held-out {opts.held_out:.0%} of the images",
            [(np.sort(order[m:]), np.sort(order[:m]))])


def feature_folder(ws: Workspace) -> Path:
    """Where backbone maps are cached (safe to delete: they are computed again)."""
    return ws.path / "cache" / "features"


def train_dense(ws: Workspace, *, task: str, dataset_id: int, asset_ids: Sequence[int],
                folder: Path, options: Mapping[str, Any] | None = None,
                progress: TrainProgress | None = None, labels: FrozenLabels | None = None
                ) -> DenseTrainResult:
    """Train a ``task`` ("boxes" | "keypoints") model on the labeled ``asset_ids`` of a dataset
    (their objects in the database, or with ``labels`` those of a frozen project export).

    Writes the model files into ``folder`` (an existing, empty folder) and returns the card
    (held-out metrics: mAP@0.5, mAP@[.5:.95], per-class precision/recall; PCK@0.1 and OKS AP
    for keypoints; buckets; data; time) and the ``meta`` that ``apply_dense`` needs. Raises
    ValidationError with the reason when the labels cannot train the model, NotFoundError for
    unknown assets, ImageError naming an asset whose image is missing or damaged.
    """
    from labelwise.autolabel.features import FeatureCache
    from labelwise.embeddings.backbones import BUILTIN, get_model

    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r} for a box/keypoint model; choose one of "
                              f"{', '.join(TASKS)}")
    opts = DenseOptions.parse(options)
    folder = Path(folder)
    if not folder.is_dir() or any(folder.iterdir()):
        raise ValidationError(f"{folder}: the model folder must exist and be empty")
    if not asset_ids:
        raise ValidationError("no assets to train on; pass the ids of labeled images")
    notify = progress or (lambda stage, fraction: None)
    t0 = time.perf_counter()
    notify("loading images", 0.0)
    data = load_training_set(ws, dataset_id=dataset_id, asset_ids=asset_ids, labels=labels)
    plan = plan_training(task, data, opts)
    backbone = get_model(ws, BUILTIN)
    caches = Caches(
        maps=FeatureCache(feature_folder(ws), model=backbone, size=plan.size),
        crops=FeatureCache(feature_folder(ws), model=backbone, size=opts.crop)
        if plan.skeletons else None)
    method, splits = evaluation_splits(len(plan.records), opts)
    candidates: list[list[Annotation]] = [[] for _ in plan.records]
    in_true_boxes: dict[str, list[list[Annotation]]] = {
        c: [[] for _ in plan.records] for c in plan.skeletons}
    steps = len(splits) + 1
    for k, (train_idx, test_idx) in enumerate(splits):
        notify(f"evaluating: fold {k + 1} of {len(splits)}", 0.05 + 0.9 * k / steps)
        models = _fit(plan, train_idx, data, caches, opts)
        if models is None:  # nothing to learn from: its held-out images count as all missed
            continue
        run = Predictors.of(models, backbone)
        images = [data.images[i] for i in test_idx]
        for i, found in zip(test_idx, _predict(run, images, cache=caches.maps), strict=True):
            candidates[i] = found
        held = [data.records[i] for i in test_idx]
        for label, preds in _points_in_true_boxes(run, held, images).items():
            for i, p in zip(test_idx, preds, strict=True):
                in_true_boxes[label][i] = p
    evaluated = sorted(int(i) for _, test in splits for i in test)
    notify("calibrating", 0.05 + 0.9 * len(splits) / steps)
    review = fit_review(plan, [plan.records[i] for i in evaluated],
                        [candidates[i] for i in evaluated], keep=opts.keep)
    notify("training the final model on every image", 0.05 + 0.9 * len(splits) / steps)
    final = _fit(plan, np.arange(len(plan.records)), data, caches, opts)
    assert final is not None  # plan_training checked there are objects
    _save(final, folder)
    seconds = time.perf_counter() - t0
    card = _card(plan, data, opts, review=review, method=method, evaluated=evaluated,
                 candidates=[candidates[i] for i in evaluated],
                 in_true_boxes={c: [p[i] for i in evaluated] for c, p in in_true_boxes.items()},
                 seconds=seconds, backbone=backbone.name)
    meta = {"format": FORMAT, "task": task, "backbone": backbone.name,
            "classes": plan.classes, "size": plan.size, "detector": DETECTOR_DIR,
            "keypoints": {c: {"folder": f"{KEYPOINTS_DIR}/{i}", "crop": opts.crop,
                              "skeleton": final.keypoints[c].skeleton.to_dict()}
                          for i, c in enumerate(final.keypoints)},
            "min_score": MIN_SCORE, "keep": opts.keep,
            "calibration": {"boxes": review.boxes.to_dict(),
                            "keypoints": {c: k.to_dict() for c, k in review.points.items()}},
            "buckets": review.buckets.to_dict()}
    notify("done", 1.0)
    return DenseTrainResult(card=card, meta=meta, warnings=list(plan.warnings))


def _save(models: Models, folder: Path) -> None:
    models.detector.save(folder / DETECTOR_DIR)
    for i, model in enumerate(models.keypoints.values()):
        model.save(folder / KEYPOINTS_DIR / str(i))


def _digest(records: Sequence[ImageRecord], asset_ids: Sequence[int]) -> str:
    """sha256 of the (asset id, class, box, points) labels the model learned from."""
    h = hashlib.sha256()
    for aid, rec in sorted(zip(asset_ids, records, strict=True), key=lambda t: t[0]):
        for a in rec.annotations:
            h.update(json.dumps([aid, a.label, [round(v, 2) for v in a.bbox or ()],
                                 a.keypoints], default=str).encode())
    return h.hexdigest()


def _card(plan: Plan, data: TrainingSet, opts: DenseOptions, *, review: Review, method: str,
          evaluated: list[int], candidates: list[list[Annotation]],
          in_true_boxes: dict[str, list[list[Annotation]]], seconds: float, backbone: str
          ) -> dict:
    from labelwise.autolabel.detection_metrics import detection_metrics, keypoint_metrics

    truth = [plan.records[i] for i in evaluated]
    ranked = detection_metrics(truth, candidates, classes=plan.classes)
    kept = detection_metrics(truth, review.kept, classes=plan.classes,
                             score_threshold=opts.keep)
    per_class = {c: {"ap50": ranked.per_class[c]["ap50"], "ap": ranked.per_class[c]["ap"],
                     "precision": kept.per_class[c]["precision"],
                     "recall": kept.per_class[c]["recall"],
                     "boxes": ranked.per_class[c]["boxes"],
                     "predicted": kept.per_class[c]["predicted"]} for c in plan.classes}
    card: dict[str, Any] = {
        "task": plan.task, "classes": plan.classes, "backbone": backbone,
        "data": {"dataset": data.dataset, "images": len(plan.records),
                 "unlabeled_left_out": len(data.unlabeled),
                 "objects": sum(plan.box_counts.values()), "per_class": plan.box_counts,
                 "keypoint_objects": plan.point_counts or None,
                 "data_digest": _digest(plan.records, data.asset_ids)},
        "training_seconds": round(seconds, 1),
        "evaluation": {"method": method, "held_out_images": len(evaluated),
                       "final_model": "trained on every image after the evaluation"},
        "metrics": {"map50": ranked.map50, "map": ranked.map, "per_class": per_class,
                    "precision_recall_at": f"calibrated confidence >= {opts.keep}",
                    "images_right": round(float(1 - review.wrong.mean()), 4)
                    if len(review.wrong) else None},
        "calibration": {"method": "isotonic (raw peak score -> held-out hit rate)",
                        "ece_before": review.ece_before, "ece_after": review.ece_after},
        "uncertainty": ("expected error of the image: 1 - P(every kept box right and every "
                        "dropped candidate rightly dropped)"),
        "buckets": review.buckets.to_dict(),
        "warnings": list(plan.warnings),
        "parameters": {**opts.as_dict(), "size": plan.size, "min_score": MIN_SCORE},
    }
    if plan.skeletons:
        card["keypoints"] = {}
        for label, skeleton in plan.skeletons.items():
            entry: dict[str, Any] = {"skeleton_points": len(skeleton)}
            for name, preds in (("true_boxes", in_true_boxes[label]), ("detected_boxes",
                                                                       review.kept)):
                if any(preds):
                    m = keypoint_metrics(truth, preds, label=label, skeleton=skeleton)
                    entry[name] = {"pck": m.pck, "oks_ap": m.oks_ap, "oks_ap50": m.oks_ap50,
                                   "visibility": m.visibility, "objects": m.objects,
                                   "per_point": m.per_point}
            card["keypoints"][label] = entry
    return card


# -- applying ---------------------------------------------------------------------------------
def apply_dense(ws: Workspace, *, folder: Path, meta: dict, asset_ids: Sequence[int],
                engine: str = "local", progress: Callable[[int], None] | None = None
                ) -> Iterator[DensePrediction]:
    """Pre-label ``asset_ids`` with the model saved in ``folder`` (``meta`` from training).

    Yields one ``DensePrediction`` per asset, in the order given; ``progress(done)`` gets the
    number of assets done so far. Everything is checked before the first image is read
    (engine, meta, model files, asset ids), so a refusal leaves nothing half done. Engine
    "ray" runs batches of images on Ray actors (``dense_apply``), with the local engine's
    results; a damaged image stops either engine with an ImageError naming the asset.
    """
    from labelwise.autolabel.dense_apply import load_runner, run_local, run_on_ray

    if engine not in ENGINES:
        raise ValidationError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    runner = load_runner(ws, Path(folder), meta)
    refs = asset_refs(ws, asset_ids)
    if engine == "ray":
        return run_on_ray(ws, runner, refs, progress)
    return run_local(runner, refs, progress)
