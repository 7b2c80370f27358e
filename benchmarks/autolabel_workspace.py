"""Boxes and keypoints trained on a workspace, k-fold card included (docs/autolabel.md).

    python benchmarks/autolabel_workspace.py                  # boxes and keypoints, ~10 min
    python benchmarks/autolabel_workspace.py --only boxes     # about 2 minutes on 2 cores
    python benchmarks/autolabel_workspace.py --images 40      # a smaller set

Imports 100 synthetic scenes of 256x192 px (``labelwise.autolabel.synthetic``) into a fresh
workspace through COCO, then times ``train_dense``: image loading, backbone maps, the 3-fold
evaluation (three models trained on 2/3 of the images each) and the final model on all of
them, with default settings. Prints the card's held-out figures and the difficulty buckets,
and the time to pre-label the same images with ``apply_dense``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
from _common import console, print_table, write_results

import labelwise
from labelwise.autolabel.dense_service import apply_dense, train_dense
from labelwise.autolabel.synthetic import (
    FIGURE,
    SHAPES,
    SceneConfig,
    make_scenes,
    scene_schema,
    write_coco_scenes,
)
from labelwise.db.models import AssetRow, DatasetRow

SCENES = {
    "boxes": SceneConfig(width=256, height=192, object_size=(24, 64), classes=SHAPES, seed=5),
    "keypoints": SceneConfig(width=256, height=192, classes=(FIGURE,), objects=(1, 3),
                             object_size=(40, 90), seed=4),
}


def run(task: str, work: Path, n: int) -> dict:
    config = SCENES[task]
    coco = write_coco_scenes(make_scenes(config, n), work / task, schema=scene_schema(config))
    ws = labelwise.init(work / f"ws-{task}")
    try:
        ws.import_dataset("coco", coco, images=coco.parent / "images", dataset=task)
        with ws.session() as s:
            ds = s.scalar(select(DatasetRow).where(DatasetRow.name == task))
            ids = list(s.scalars(select(AssetRow.id).where(AssetRow.dataset_id == ds.id)))
        folder = work / f"model-{task}"
        folder.mkdir()
        t0 = time.perf_counter()
        result = train_dense(ws, task=task, dataset_id=ds.id, asset_ids=ids, folder=folder)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        preds = list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=ids))
        apply_seconds = time.perf_counter() - t0
    finally:
        ws.close()
    card = result.card
    console.print(f"{task}: trained in {seconds:.0f} s ({card['evaluation']['method']})")
    return {"images": n, "train_seconds": round(seconds, 1),
            "apply_seconds": round(apply_seconds, 2), "card": card,
            "applied_buckets": {b: sum(p.bucket == b for p in preds)
                                for b in ("easy", "medium", "hard")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="boxes,keypoints")
    ap.add_argument("--images", type=int, default=100)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labelwise-bench-workspace-"))
    results = {}
    try:
        for task in ("boxes", "keypoints"):
            if task in args.only.split(","):
                results[task] = run(task, work, args.images)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for task, r in results.items():
        m, held = r["card"]["metrics"], r["card"]["buckets"]["held_out"]
        points = next(iter((r["card"].get("keypoints") or {}).values()), {})
        rows.append([task, r["images"], r["train_seconds"], m["map50"], m["map"],
                     points.get("true_boxes", {}).get("pck", "-"),
                     points.get("detected_boxes", {}).get("pck", "-"),
                     " ".join(f"{b[0]}{held[b]['count']}"
                                + (f" ({held[b]['observed_error']:.0%})"
                                   if held[b]["observed_error"] is not None else "")
                                for b in ("easy", "medium", "hard")),
                     r["apply_seconds"]])
    print_table("train_dense on a workspace: held-out (k-fold) card",
                ["task", "images", "train s", "mAP@.5", "mAP", "PCK true", "PCK det.",
                 "buckets (error)", "apply s"], rows)
    if args.images == 100 and set(results) == set(SCENES):
        console.print(f"results: {write_results('autolabel_workspace', results)}")


if __name__ == "__main__":
    main()
