"""Auto-Label on synthetic scenes: boxes and keypoints from 100 labeled images (docs/benchmarks.md).

    python benchmarks/autolabel_scenes.py            # about 10 minutes on 2 cores
    python benchmarks/autolabel_scenes.py --quick    # smaller, for a smoke run
    python benchmarks/autolabel_scenes.py --only boxes

Scenes come from ``labelwise.autolabel.synthetic`` (shapes and stick figures pasted on
scikit-image's photos; see docs/autolabel.md). Training images are scenes 0..99, held-out
images scenes 100,000..100,199 of the same seed, so no held-out scene was seen in training.

1. Boxes: discs, squares and triangles (1-4 per 320x240 scene); the detector trained on 100
   labeled images, scored by mAP@0.5 on 200 held-out images (target >= 0.7; training time,
   backbone maps included, target <= 10 min). Baselines in the same run: the same head
   trained on 25 images, and the head untrained.
2. Keypoints: stick figures with 14 points (1-3 per scene), keypoint model trained on 100
   labeled images, scored by PCK@0.1 on the figures of 200 held-out images with their true
   boxes (target >= 0.8), plus OKS AP. Same baselines, and the whole pre-labeling path: boxes
   from a figure detector trained on the same 100 images, then keypoints in those boxes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, print_table, write_results

import labelwise
from labelwise.autolabel.detect import (
    DetectionHead,
    Detector,
    DetectorConfig,
    export_detector,
    train_detector,
)
from labelwise.autolabel.detection_metrics import (
    detection_metrics,
    keypoint_metrics,
)
from labelwise.autolabel.features import FeatureCache
from labelwise.autolabel.keypoints import (
    KeypointConfig,
    KeypointEstimator,
    KeypointHead,
    export_keypoints,
    train_keypoints,
)
from labelwise.autolabel.synthetic import (
    FIGURE,
    FIGURE_SKELETON,
    SHAPES,
    SceneConfig,
    make_scenes,
)
from labelwise.embeddings.backbones import get_model

HELD_OUT_START = 100_000
BOX_SCENES = SceneConfig(classes=SHAPES, seed=1)
FIGURE_SCENES = SceneConfig(classes=(FIGURE,), objects=(1, 3), object_size=(48, 112), seed=2)


def bench_boxes(backbone, work: Path, *, n_train: int, n_test: int, small: int) -> dict:
    train = make_scenes(BOX_SCENES, n_train)
    test = make_scenes(BOX_SCENES, n_test, start=HELD_OUT_START)
    config = DetectorConfig(size=256)
    cache = FeatureCache(work / "features", model=backbone, size=config.size)
    truth, images = [s.record for s in test], [s.image for s in test]
    out = {"train_images": n_train, "held_out_images": n_test,
           "held_out_boxes": sum(len(r.annotations) for r in truth)}

    def score(model) -> dict:
        t0 = time.perf_counter()
        pred = Detector(model, backbone).predict(images)
        seconds = time.perf_counter() - t0
        m = detection_metrics(truth, pred, classes=list(SHAPES)).as_dict()
        return {**m, "predict_seconds": round(seconds, 2),
                "images_per_s": round(len(images) / seconds, 1)}

    for name, n in (("trained", n_train), (f"trained_on_{small}", small)):
        part = train[:n]
        t0 = time.perf_counter()  # backbone maps (image and flip) are part of training time
        result = train_detector([s.record for s in part], [s.image for s in part], cache=cache,
                                config=config)
        seconds = time.perf_counter() - t0
        out[name] = {**score(result.model), "labeled": n, "train_seconds": round(seconds, 1),
                     "epochs": len(result.history.train_loss),
                     "best_epoch": result.history.best_epoch, "stopped": result.history.stopped}
        console.print(f"boxes, {n} images: mAP@0.5 {out[name]['map50']:.3f} in {seconds:.0f} s")
    torch.manual_seed(0)
    untrained = export_detector(DetectionHead(len(SHAPES), config.width),
                                classes=list(SHAPES), size=config.size, backbone=backbone.name)
    out["untrained"] = {**score(untrained), "labeled": 0, "train_seconds": 0.0}
    return out


def bench_keypoints(backbone, work: Path, *, n_train: int, n_test: int, small: int) -> dict:
    train = make_scenes(FIGURE_SCENES, n_train)
    test = make_scenes(FIGURE_SCENES, n_test, start=HELD_OUT_START)
    config = KeypointConfig(crop=128)
    cache = FeatureCache(work / "crops", model=backbone, size=config.crop)
    truth, images = [s.record for s in test], [s.image for s in test]
    boxes = [[a.bbox for a in r.annotations] for r in truth]
    out = {"train_images": n_train, "held_out_images": n_test,
           "held_out_figures": sum(len(b) for b in boxes)}

    def score(model, given_boxes=boxes) -> dict:
        t0 = time.perf_counter()
        pred = KeypointEstimator(model, backbone).predict(images, given_boxes)
        seconds = time.perf_counter() - t0
        m = keypoint_metrics(truth, pred, label=FIGURE, skeleton=FIGURE_SKELETON).as_dict()
        return {**m, "predict_seconds": round(seconds, 2)}

    models = {}
    for name, n in (("trained", n_train), (f"trained_on_{small}", small)):
        part = train[:n]
        t0 = time.perf_counter()
        result = train_keypoints([s.record for s in part], [s.image for s in part],
                                 label=FIGURE, skeleton=FIGURE_SKELETON, cache=cache,
                                 config=config)
        seconds = time.perf_counter() - t0
        out[name] = {**score(result.model), "labeled": n,
                     "labeled_figures": result.model.info["objects"],
                     "train_seconds": round(seconds, 1), "epochs": len(result.history.train_loss),
                     "best_epoch": result.history.best_epoch, "stopped": result.history.stopped}
        models[name] = result.model
        console.print(f"keypoints, {n} images: PCK@0.1 {out[name]['pck']:.3f} in {seconds:.0f} s")
    # The whole pre-labeling path: boxes from a figure detector trained on the same images.
    det_config = DetectorConfig(size=256)
    det_cache = FeatureCache(work / "features", model=backbone, size=det_config.size)
    t0 = time.perf_counter()
    det = train_detector([s.record for s in train], [s.image for s in train], cache=det_cache,
                         config=det_config)
    det_seconds = time.perf_counter() - t0
    found = Detector(det.model, backbone).predict(images, min_score=0.3)
    det_boxes = [[a.bbox for a in anns] for anns in found]
    out["trained_detected_boxes"] = {
        **score(models["trained"], det_boxes), "labeled": n_train,
        "detector_map50": detection_metrics(truth, found, classes=[FIGURE]).map50,
        "detector_train_seconds": round(det_seconds, 1),
        "train_seconds": round(out["trained"]["train_seconds"] + det_seconds, 1)}
    torch.manual_seed(0)
    untrained = export_keypoints(KeypointHead(len(FIGURE_SKELETON), config.width), label=FIGURE,
                                 skeleton=FIGURE_SKELETON, crop=config.crop,
                                 margin=config.margin, backbone=backbone.name)
    out["untrained"] = {**score(untrained), "labeled": 0, "train_seconds": 0.0}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="boxes,keypoints")
    args = ap.parse_args()
    only = set(args.only.split(","))
    n_train, n_test, small = (40, 60, 15) if args.quick else (100, 200, 25)
    work = Path(tempfile.mkdtemp(prefix="labelwise-bench-scenes-"))
    results: dict = {}
    # The "fewer than ~100 images" warning is expected for the small baselines.
    warnings.filterwarnings("ignore", message="only .* images", category=UserWarning)
    try:
        ws = labelwise.init(work / "ws")
        backbone = get_model(ws)
        if "boxes" in only:
            results["boxes"] = bench_boxes(backbone, work, n_train=n_train, n_test=n_test,
                                           small=small)
        if "keypoints" in only:
            results["keypoints"] = bench_keypoints(backbone, work, n_train=n_train,
                                                   n_test=n_test, small=small)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if "boxes" in results:
        b = results["boxes"]
        rows = [[f"{r['labeled']} labeled" if r["labeled"] else "untrained head", r["map50"],
                 r["map"], r["train_seconds"], target]
                for r, target in ((b["trained"], ">= 0.7, <= 600 s"),
                                  (b[f"trained_on_{small}"], "-"), (b["untrained"], "-"))]
        print_table(f"Boxes: mAP on {b['held_out_images']} held-out scenes "
                    f"({b['held_out_boxes']} boxes)",
                    ["detector", "mAP@0.5", "mAP@[.5:.95]", "train s", "target"], rows)
        per = b["trained"]["per_class"]
        print_table(f"Boxes per class, {n_train} labeled, confidence >= 0.3",
                    ["class", "AP@0.5", "precision", "recall"],
                    [[c, v["ap50"], v["precision"], v["recall"]] for c, v in per.items()])
    if "keypoints" in results:
        k = results["keypoints"]
        rows = [[f"{r['labeled']} labeled" if r["labeled"] else "untrained head", r["pck"],
                 r["oks_ap"], r["oks_ap50"], r["train_seconds"], target]
                for r, target in ((k["trained"], ">= 0.8"), (k[f"trained_on_{small}"], "-"),
                                  (k["untrained"], "-"))]
        d = k["trained_detected_boxes"]
        rows.append([(f"{d['labeled']} labeled, detected boxes (figure mAP@0.5 "
                     f"{d['detector_map50']:.3f})"), d["pck"], d["oks_ap"], d["oks_ap50"],
                     d["train_seconds"], "-"])
        print_table(f"Keypoints: {k['held_out_figures']} figures in {k['held_out_images']} "
                    "held-out scenes (true boxes unless noted)",
                    ["model", "PCK@0.1", "OKS AP", "OKS AP@0.5", "train s", "target"], rows)
        console.print(f"visibility (0/1/2) right for {k['trained']['visibility']:.1%} of points")
    if not args.quick:
        path = write_results("autolabel_scenes", results)
        console.print(f"results: {path}")


if __name__ == "__main__":
    main()
