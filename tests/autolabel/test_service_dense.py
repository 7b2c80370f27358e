"""Boxes and keypoints through the service: versions, rows and annotations around the dense
trainer (a small fake with the trainer's contract), and one real end-to-end boxes run."""

from __future__ import annotations

import importlib
import json
import sys
import types
import zipfile
from dataclasses import dataclass

import pytest
from sqlalchemy import select

import labelwise
import labelwise.autolabel
from labelwise.autolabel import service
from labelwise.db.autolabel_models import AutolabelModelRow, PrelabelRow
from labelwise.db.models import AnnotationRow, AssetRow, LabelClassRow
from labelwise.errors import NotFoundError, ValidationError
from tests.autolabel.service_data import write_sources
from tests.embeddings.conftest import tiny_onnx, write_cat_coco


@dataclass
class FakeTrainResult:
    card: dict
    meta: dict
    warnings: list


@dataclass
class FakePrediction:
    asset_id: int
    objects: list
    uncertainty: float
    expected_error: float
    bucket: str


class FakeDense:
    """What ``dense_service`` promises, recording how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def train_dense(self, ws, *, task, dataset_id, asset_ids, folder, options=None,
                    progress=None):
        assert folder.is_dir() and not any(folder.iterdir())
        if (options or {}).get("refuse"):
            raise ValidationError("class 'cat' has 1 labeled box; label 4 more")
        self.calls.append(("train", {"task": task, "assets": list(asset_ids)}))
        tiny_onnx(folder / "head.onnx", input_shape=["N", 3])
        return FakeTrainResult(card={"task": task, "classes": ["cat"], "map50": 0.5,
                                     "warnings": ["only 1 labeled image"]},
                               meta={"classes": ["cat"], "size": 128}, warnings=["few boxes"])

    def apply_dense(self, ws, *, folder, meta, asset_ids, engine="local", progress=None):
        self.calls.append(("apply", {"folder": folder, "meta": meta, "assets": list(asset_ids)}))
        for i, a in enumerate(asset_ids):
            kps = [[3.0, 4.0, 2], [5.0, 6.0, 1], [0.0, 0.0, 0]] if i % 2 else None
            u = 0.1 * (i % 10)
            attrs = {"keypoint_scores": [0.9, 0.5, 0.1]} if kps else None
            yield FakePrediction(a, [{"class_name": "cat", "bbox": [1, 2, 10, 20],
                                      "confidence": 0.9 - u / 2, "keypoints": kps,
                                      "attributes": attrs}],
                                 u, u / 2, "hard" if u > 0.7 else "easy" if u < 0.2 else "medium")


@pytest.fixture
def fake(monkeypatch) -> FakeDense:
    impl = FakeDense()
    module = types.ModuleType("labelwise.autolabel.dense_service")
    module.train_dense, module.apply_dense = impl.train_dense, impl.apply_dense
    monkeypatch.setitem(sys.modules, "labelwise.autolabel.dense_service", module)
    monkeypatch.setattr(labelwise.autolabel, "dense_service", module, raising=False)
    return impl


@pytest.fixture
def boxes_ws(workspace: labelwise.Workspace, tmp_path) -> labelwise.Workspace:
    """One labeled photo (a cat box, face keypoints, a category) and 9 unlabeled images."""
    coco = write_cat_coco(tmp_path / "cat")
    workspace.import_dataset("coco", coco, images=coco.parent / "images", dataset="cats")
    pool = write_sources(tmp_path / "fm", labeled=1, pool=3)["pool"]
    workspace.import_dataset("folder", pool, dataset="cats")
    return workspace


def test_boxes_train_and_apply_go_through_the_dense_trainer(boxes_ws, fake, tmp_path):
    result = service.train(boxes_ws, "cats", name="cat-boxes", task="boxes",
                           options={"epochs": 3})
    assert result.task == "boxes" and result.version == 1
    # the cat's box and its polygon's box; the face's keypoints belong to keypoint models
    assert result.trained_on["class_counts"] == {"cat": 2} and result.trained_on["assets"] == 10
    assert set(result.warnings) == {"only 1 labeled image", "few boxes"}
    folder = boxes_ws.path / result.path
    assert (folder / "dense" / "head.onnx").is_file()
    assert json.loads((folder / "card.json").read_text())["version"] == 1
    assert json.loads((folder / "model.json").read_text())["meta"] == {"classes": ["cat"],
                                                                      "size": 128}
    info = service.show(boxes_ws, "cat-boxes")
    assert info["card"]["map50"] == 0.5 and info["task"] == "boxes"
    assert service.export_onnx(boxes_ws, "cat-boxes", 1, tmp_path / "b.onnx").is_file()
    with zipfile.ZipFile(service.export_onnx(boxes_ws, "cat-boxes", 1, tmp_path / "b.zip")) as zf:
        assert sorted(zf.namelist()) == ["card.json", "dense/head.onnx", "model.json"]
    with pytest.raises(ValidationError, match=r"\.onnx suffix .* or \.zip"):
        service.export_onnx(boxes_ws, "cat-boxes", 1, tmp_path / "b.tar")

    run = service.apply(boxes_ws, "cat-boxes", "cats")
    assert run.images == 9 and run.skipped_labeled == 1 and run.labels == 9
    _, call = fake.calls[-1]
    assert call["folder"] == folder / "dense" and len(call["assets"]) == 9
    with boxes_ws.session() as s:
        cat = s.scalar(select(LabelClassRow.id).where(LabelClassRow.name == "cat"))
        rows = s.scalars(select(AnnotationRow).where(AnnotationRow.source == "model")
                         .order_by(AnnotationRow.asset_id)).all()
        buckets = {p.asset_id: p.bucket for p in s.scalars(select(PrelabelRow))}
    assert {r.class_id for r in rows} == {cat}
    assert all((r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h) == (1, 2, 10, 20) for r in rows)
    assert rows[1].keypoints == [3.0, 4.0, 2.0, 5.0, 6.0, 1.0, 0.0, 0.0, 0.0]
    assert rows[1].attributes == {"keypoint_scores": [0.9, 0.5, 0.1]}  # per-point scores kept
    assert rows[0].keypoints is None and rows[0].attributes is None and rows[0].area == 200
    assert len(buckets) == 9 and set(buckets.values()) <= {"easy", "medium", "hard"}
    page = service.review_queue(boxes_ws, "cats", limit=3)
    assert page["items"][0]["labels"][0]["bbox"] == [1, 2, 10, 20]
    assert [i["uncertainty"] for i in page["items"]] == sorted(
        (i["uncertainty"] for i in page["items"]), reverse=True)


def test_a_dense_refusal_keeps_no_version(boxes_ws, fake):
    with pytest.raises(ValidationError, match="label 4 more"):
        service.train(boxes_ws, "cats", name="nope", task="boxes", options={"refuse": True})
    with boxes_ws.session() as s:
        assert s.scalar(select(AutolabelModelRow.id)) is None
    root = boxes_ws.path / "models/autolabel/nope"
    assert not root.exists() or not any(root.iterdir())


def test_keypoints_dispatch_and_auto_prefers_image_categories(boxes_ws, fake):
    result = service.train(boxes_ws, "cats", name="faces", task="keypoints")
    assert result.task == "keypoints" and fake.calls[0][1]["task"] == "keypoints"
    assert result.trained_on["class_counts"] == {"face": 2}
    with pytest.raises(NotFoundError, match="no project export 1"):  # exports: test_dense_export
        service.train(boxes_ws, "cats", name="faces2", task="boxes", source_export=1)
    # auto: the photo has an image category, so a category model, which needs embeddings
    with pytest.raises(NotFoundError, match="labelwise embed cats"):
        service.train(boxes_ws, "cats", name="scene")


# -- the real trainer, end to end -----------------------------------------------------------
def _real_dense():
    try:
        return importlib.import_module("labelwise.autolabel.dense_service")
    except ImportError:
        return None


@pytest.mark.slow
@pytest.mark.skipif(_real_dense() is None, reason="labelwise.autolabel.dense_service is missing")
def test_real_boxes_model_trains_and_prelabels_synthetic_scenes(sqlite_workspace, tmp_path):
    from labelwise.autolabel.synthetic import (
        SceneConfig,
        make_scenes,
        scene_schema,
        write_coco_scenes,
    )

    config = SceneConfig(classes=("disc", "square"), width=160, height=128,
                         object_size=(24, 56), seed=3)
    scenes = make_scenes(config, 36)
    coco = write_coco_scenes(scenes, tmp_path / "scenes", schema=scene_schema(config))
    ws = sqlite_workspace
    ws.import_dataset("coco", coco, images=coco.parent / "images", dataset="shapes")
    with ws.session() as s:
        ids = sorted(s.scalars(select(AssetRow.id)))
    train_paths = [p["path"] for p in ws.list_assets("shapes", limit=1000)["items"]
                   if p["id"] in ids[:30]]
    ws.create_split("shapes", "train", paths=train_paths)
    with ws.session() as s:  # the last six images lose their boxes: they are to pre-label
        s.execute(AnnotationRow.__table__.delete().where(AnnotationRow.asset_id.in_(ids[30:])))
        s.commit()
    result = service.train(ws, "shapes", source_split="train", name="shapes", task="boxes",
                           options={"epochs": 8, "patience": 4, "folds": 2})
    assert result.task == "boxes" and result.trained_on["assets"] == 30
    run = service.apply(ws, "shapes", "shapes")
    assert run.images == 6 and run.skipped_labeled == 30
    with ws.session() as s:
        rows = s.scalars(select(AnnotationRow).where(AnnotationRow.source == "model")).all()
    assert rows and all(r.bbox_w > 0 and 0 <= r.confidence <= 1 for r in rows)
    assert {r.asset_id for r in rows} <= set(ids[30:])
