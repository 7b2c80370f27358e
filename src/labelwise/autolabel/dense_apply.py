"""Run a saved box/keypoint model over assets: in this process, or on Ray actors.

``DenseRunner`` holds the detector, the keypoint models, the calibration and the buckets, and
turns a batch of assets into ``DensePrediction``s; it needs only a blob store, so a Ray actor
can hold one too. With Ray, the models (ONNX bytes) and the backbone go into Ray's object
store once, ``ray.data`` cuts the asset list into batches of 16 images, and each actor (one
CPU, one ONNX Runtime thread) reads, predicts and scores its batches; predictions come back in
the order asked, equal to the local engine's (same ONNX graphs, same pixels).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.autolabel.dense_data import AssetRef, read_pixels
from labelwise.autolabel.dense_service import (
    APPLY_BATCH,
    FORMAT,
    MIN_SCORE,
    TASKS,
    DensePrediction,
    Models,
    Predictors,
    _decide,
    _predict,
    feature_folder,
)
from labelwise.autolabel.dense_uncertainty import Knots, image_expected_error
from labelwise.autolabel.uncertainty import DifficultyBuckets
from labelwise.errors import ImageError, LabelwiseError, ValidationError

if TYPE_CHECKING:
    from labelwise.core.annotations import Annotation
    from labelwise.embeddings.backbones import EmbeddingModel
    from labelwise.storage import BlobStore
    from labelwise.workspace import Workspace

Progress = Callable[[int], None] | None


class DenseRunner:
    """A loaded dense model ready to pre-label batches of assets."""

    def __init__(self, *, models: Models, backbone: EmbeddingModel, meta: dict,
                 store: BlobStore, max_pixels: int, cache_folder: Path | None,
                 threads: int | None = None) -> None:
        from labelwise.autolabel.features import FeatureCache

        self.models, self.backbone, self.meta = models, backbone, meta
        self.store, self.max_pixels, self.cache_folder = store, max_pixels, cache_folder
        self.predictors = Predictors.of(models, backbone, threads=threads)
        # Reads maps cached by training (the images it learned from), keeps no new ones.
        self.cache = None if cache_folder is None else FeatureCache(
            cache_folder, model=backbone, size=meta["size"], write=False, threads=threads)
        self.box_knots = Knots.from_dict(meta["calibration"]["boxes"])
        self.point_knots = {c: Knots.from_dict(k)
                            for c, k in meta["calibration"]["keypoints"].items()}
        self.buckets = DifficultyBuckets.from_dict(meta["buckets"])
        self.keep = float(meta["keep"])
        # Points only for boxes that will be kept: the lowest raw score calibrated to ``keep``.
        grid = np.linspace(MIN_SCORE, 1.0, 2001)
        above = grid[self.box_knots(grid) >= self.keep]
        self.min_points_score = float(above[0]) - 1e-3 if len(above) else 1.01

    def predict(self, refs: Sequence[AssetRef]) -> list[DensePrediction]:
        """Pre-labels of one batch of assets, in order."""
        loaded = [read_pixels(self.store, ref, max_pixels=self.max_pixels) for ref in refs]
        found = _predict(self.predictors, [img for img, _ in loaded], cache=self.cache,
                         min_points_score=self.min_points_score)
        out = []
        for ref, (_, scale), cands in zip(refs, loaded, found, strict=True):
            kept, p_kept, p_dropped = _decide(cands, self.box_knots, self.point_knots,
                                              keep=self.keep)
            error = image_expected_error(p_kept, p_dropped)
            bucket = str(self.buckets.assign(np.array([error]))[0])
            out.append(DensePrediction(asset_id=ref.id,
                                       objects=[_object(a, 1.0 / scale) for a in kept],
                                       uncertainty=round(error, 6),
                                       expected_error=round(error, 6), bucket=bucket))
        return out


def _object(a: Annotation, s: float) -> dict:
    """A kept pre-label as the service stores it, in the original image's pixels."""
    points = None
    attributes = None
    if a.keypoints is not None:
        k = np.asarray(a.keypoints, np.float64).reshape(-1, 3)
        points = [[round(float(x) * s, 2), round(float(y) * s, 2), int(v)] if v > 0
                  else [0.0, 0.0, 0] for x, y, v in k]
        attributes = {"keypoint_scores": list((a.attributes or {}).get("keypoint_scores", []))}
    return {"class_name": a.label, "bbox": [round(float(v) * s, 2) for v in a.bbox],
            "confidence": a.confidence, "keypoints": points, "attributes": attributes}


def load_runner(ws: Workspace, folder: Path, meta: dict) -> DenseRunner:
    """Check ``meta`` and load the models saved in ``folder``; refuses before any work."""
    from labelwise.autolabel.detect import DetectorModel
    from labelwise.autolabel.keypoints import KeypointModel
    from labelwise.embeddings.backbones import get_model

    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get(
            "task") not in TASKS:
        raise ValidationError(
            f"{folder}: the model's meta is not a box/keypoint model of format {FORMAT}; "
            "pass the meta train_dense returned with this folder")
    models = Models(detector=DetectorModel.load(folder / meta["detector"]),
                    keypoints={c: KeypointModel.load(folder / k["folder"])
                               for c, k in meta["keypoints"].items()})
    return DenseRunner(models=models, backbone=get_model(ws, meta["backbone"]), meta=meta,
                       store=ws.store, max_pixels=ws.settings.max_image_pixels,
                       cache_folder=feature_folder(ws))


def run_local(runner: DenseRunner, refs: list[AssetRef], progress: Progress
              ) -> Iterator[DensePrediction]:
    done = 0
    for start in range(0, len(refs), APPLY_BATCH):
        chunk = refs[start:start + APPLY_BATCH]
        yield from runner.predict(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done)


# -- Ray --------------------------------------------------------------------------------------
def run_on_ray(ws: Workspace, runner: DenseRunner, refs: list[AssetRef], progress: Progress
               ) -> Iterator[DensePrediction]:
    """``run_local`` on Ray actors: the Ray instance of this process, the cluster named by
    ``RAY_ADDRESS``, or a local one started (and stopped) for the run."""
    from labelwise.embeddings.engines import _import_ray

    ray = _import_ray()
    started = _connect(ray)
    try:
        yield from _ray_batches(ray, ws, runner, refs, progress)
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any) -> bool:
    if ray.is_initialized():
        return False
    try:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ...
        raise LabelwiseError(
            f"cannot start or reach Ray ({err}); check RAY_ADDRESS or apply with engine "
            "'local'") from err
    return True


def _ray_batches(ray: Any, ws: Workspace, runner: DenseRunner, refs: list[AssetRef],
                 progress: Progress) -> Iterator[DensePrediction]:
    from ray.data import ActorPoolStrategy, DataContext

    if not refs:
        return
    DataContext.get_current().enable_progress_bars = False
    cpus = int(ray.cluster_resources().get("CPU", 1))
    pool = max(1, min(cpus, -(-len(refs) // APPLY_BATCH)))
    parts = {"models": runner.models, "backbone": runner.backbone, "meta": runner.meta,
             "storage_url": ws.store.url, "max_pixels": runner.max_pixels,
             "cache_folder": str(runner.cache_folder) if runner.cache_folder else None,
             "refs": [dataclasses.astuple(r) for r in refs]}
    # In-memory items, not ray.data.range: a range read task would wait for a CPU that the
    # actors already hold.
    results = ray.data.from_items([{"id": i} for i in range(len(refs))]).map_batches(
        DenseActor,
        fn_constructor_kwargs={"parts_ref": ray.put(parts),
                               "backbone_ref": ray.put(runner.backbone.onnx_path.read_bytes())},
        batch_size=APPLY_BATCH, batch_format="numpy", compute=ActorPoolStrategy(size=pool),
        num_cpus=1)
    found: dict[int, DensePrediction] = {}
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        for i, error, payload in zip(batch["id"], batch["error"], batch["p"], strict=True):
            if error:
                raise ImageError(str(error))
            found[int(i)] = DensePrediction(**json.loads(payload))
        if progress is not None:
            progress(len(found))
    for i in range(len(refs)):
        yield found[i]


class DenseActor:
    """A Ray actor: one ``DenseRunner`` (one thread); maps asset indices to predictions."""

    def __init__(self, *, parts_ref: Any, backbone_ref: Any) -> None:
        import ray

        from labelwise.storage import open_store

        parts = ray.get(parts_ref) if isinstance(parts_ref, ray.ObjectRef) else parts_ref
        data = ray.get(backbone_ref) if isinstance(backbone_ref, ray.ObjectRef) else backbone_ref
        # The backbone travels as bytes: a worker on another machine has no such file.
        self._tmp = tempfile.TemporaryDirectory(prefix="labelwise-dense-")
        path = Path(self._tmp.name) / "backbone.onnx"
        path.write_bytes(data)
        folder = parts["cache_folder"]
        self.refs = [AssetRef(*r) for r in parts["refs"]]
        self.runner = DenseRunner(
            models=parts["models"], backbone=dataclasses.replace(parts["backbone"], onnx_path=path),
            meta=parts["meta"], store=open_store(parts["storage_url"]),
            max_pixels=parts["max_pixels"],
            cache_folder=Path(folder) if folder and Path(folder).is_dir() else None, threads=1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(batch["id"], np.int64)
        try:
            preds = self.runner.predict([self.refs[i] for i in ids])
        except LabelwiseError as err:  # a damaged image: reported, raised by the driver
            return {"id": ids, "error": np.array([str(err)] * len(ids), dtype=object),
                    "p": np.array([""] * len(ids), dtype=object)}
        return {"id": ids, "error": np.array([""] * len(ids), dtype=object),
                "p": np.array([json.dumps(dataclasses.asdict(p)) for p in preds], dtype=object)}
