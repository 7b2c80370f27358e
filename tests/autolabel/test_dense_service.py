"""Boxes and keypoints on a workspace: train with a k-fold card, apply with uncertainty, refuse.

One box model is trained per database backend (module-scoped) on synthetic scenes imported
through COCO, and shared by the card and apply tests; refusals use small fresh workspaces.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import delete, select, update
from sqlalchemy.engine import make_url

import labelwise
from labelwise.autolabel import dense_data
from labelwise.autolabel.dense_service import apply_dense, feature_folder, train_dense
from labelwise.autolabel.detection_metrics import detection_metrics
from labelwise.autolabel.nms import box_iou
from labelwise.autolabel.synthetic import (
    FIGURE,
    SHAPES,
    SceneConfig,
    make_scenes,
    scene_schema,
    write_coco_scenes,
)
from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.db.models import AnnotationRow, AssetRow, DatasetRow, LabelClassRow
from labelwise.errors import ImageError, NotFoundError, ValidationError
from labelwise.samples import write_fashion_mnist_folders
from labelwise.storage import image_key
from tests.conftest import _PG_ERROR, PG_ADMIN_URL

BOXES = SceneConfig(width=160, height=120, classes=SHAPES, objects=(2, 4), object_size=(24, 56),
                    seed=11)
FIGURES = SceneConfig(width=160, height=120, classes=(FIGURE, "disc"), objects=(1, 2),
                      object_size=(40, 56), seed=12)
N_IMAGES = 36
N_UNLABELED = 3
OPTIONS = {"epochs": 30}


# -- fixtures ---------------------------------------------------------------------------------
def write_scenes(folder: Path, config: SceneConfig, n: int) -> Path:
    return write_coco_scenes(make_scenes(config, n), folder, schema=scene_schema(config))


def import_scenes(ws: labelwise.Workspace, coco: Path, name: str = "scenes"
                  ) -> tuple[int, list[int]]:
    ws.import_dataset("coco", coco, images=coco.parent / "images", dataset=name)
    with ws.session() as s:
        ds = s.scalar(select(DatasetRow).where(DatasetRow.name == name))
        ids = s.scalars(select(AssetRow.id).where(AssetRow.dataset_id == ds.id)
                        .order_by(AssetRow.id)).all()
        return ds.id, list(ids)


@pytest.fixture(scope="module")
def box_scenes(tmp_path_factory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("box-scenes"), BOXES, N_IMAGES)


@pytest.fixture(scope="module")
def dense_pg_url(worker_id: str):
    """A database of its own: the function-scoped ``workspace`` fixture empties the shared one
    between tests, and this module keeps a trained workspace across tests."""
    if _PG_ERROR:
        pytest.skip(f"PostgreSQL unreachable: {_PG_ERROR}")
    import psycopg

    admin = make_url(PG_ADMIN_URL)
    name = f"labelwise_dense_{worker_id}_{os.getpid()}"
    conninfo = {"host": admin.host, "port": admin.port or 5432, "user": admin.username,
                "dbname": admin.database, "password": admin.password}
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def trained(request, tmp_path_factory, model_cache, box_scenes):
    """A box model trained once per backend: (workspace, dataset id, asset ids, folder, result)."""
    url = request.getfixturevalue("dense_pg_url") if request.param == "postgresql" else None
    root = tmp_path_factory.mktemp(f"dense-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_MODEL_CACHE", str(model_cache))
        ws = labelwise.init(root / "ws", database_url=url)
    dataset_id, _ = import_scenes(ws, box_scenes)
    # Images without any object label are not labeled yet: training must leave them out.
    extra = root / "unlabeled"
    extra.mkdir()
    for k, scene in enumerate(make_scenes(BOXES, N_UNLABELED, start=1000)):
        Image.fromarray(scene.image).save(extra / f"new_{k}.png")
    ws.import_dataset("folder", extra, dataset="scenes")
    with ws.session() as s:
        ids = list(s.scalars(select(AssetRow.id).order_by(AssetRow.id)))
    folder = root / "model"
    folder.mkdir()
    stages = []
    result = train_dense(ws, task="boxes", dataset_id=dataset_id, asset_ids=ids, folder=folder,
                         options=OPTIONS, progress=lambda stage, done: stages.append(
                             (stage, done)))
    yield ws, dataset_id, ids, folder, result, stages
    ws.close()


# -- training and the card --------------------------------------------------------------------
def test_card_reports_kfold_metrics_data_and_time(trained):
    _, _, ids, folder, result, stages = trained
    card = result.card
    json.dumps(card), json.dumps(result.meta)  # both must be storable as JSON
    assert card["task"] == "boxes" and card["classes"] == sorted(SHAPES)
    assert card["data"]["images"] == N_IMAGES == len(ids) - N_UNLABELED
    assert card["data"]["unlabeled_left_out"] == N_UNLABELED
    assert sum(card["data"]["per_class"].values()) == card["data"]["objects"] > N_IMAGES
    assert card["evaluation"]["method"] == "3-fold cross-validation"
    assert card["evaluation"]["held_out_images"] == N_IMAGES  # every image held out once
    m = card["metrics"]
    assert 0.3 < m["map50"] <= 1.0 and 0.0 < m["map"] <= m["map50"]
    for name in SHAPES:
        row = m["per_class"][name]
        assert row["boxes"] == card["data"]["per_class"][name]
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0
        assert row["ap50"] is not None
    assert 0.0 <= card["calibration"]["ece_after"] <= 1.0
    assert card["training_seconds"] > 0
    assert card["parameters"]["epochs"] == OPTIONS["epochs"]
    assert card["buckets"]["method"] == "image_error"
    held = card["buckets"]["held_out"]
    assert sum(b["count"] for b in held.values()) == N_IMAGES
    assert any("only 36 labeled images" in w for w in card["warnings"])
    assert f"{N_UNLABELED} of the {len(ids)} images have no object labeled" in card["warnings"][0]
    assert result.warnings == card["warnings"]
    # What apply needs, and the model files themselves.
    meta = result.meta
    assert meta["classes"] == card["classes"] and meta["buckets"] == card["buckets"]
    assert meta["calibration"]["boxes"]["x"] and meta["keypoints"] == {}
    assert (folder / "detector" / "head.onnx").is_file()
    assert stages[0] == ("loading images", 0.0) and stages[-1] == ("done", 1.0)
    assert [s for s, _ in stages if s.startswith("evaluating")] == [
        f"evaluating: fold {k} of 3" for k in (1, 2, 3)]


def test_training_caches_backbone_maps_inside_the_workspace(trained):
    ws = trained[0]
    cached = list(feature_folder(ws).rglob("*.npz"))
    # Each image once as it is and once mirrored.
    assert len(cached) == 2 * N_IMAGES
    assert all(ws.path in p.parents for p in cached)


# -- applying ---------------------------------------------------------------------------------
def test_apply_predicts_every_asset_in_pixels_with_uncertainty_and_buckets(trained, box_scenes):
    ws, _, ids, folder, result, _ = trained
    done = []
    preds = list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=ids,
                             progress=done.append))
    assert [p.asset_id for p in preds] == ids
    assert done[-1] == len(ids) and done == sorted(done)
    buckets = result.meta["buckets"]
    for p in preds:
        assert 0.0 <= p.uncertainty <= 1.0 and p.expected_error == p.uncertainty
        assert p.bucket in ("easy", "medium", "hard")
        if buckets["hard_min"] is not None and p.uncertainty >= buckets["hard_min"]:
            assert p.bucket == "hard"
        for o in p.objects:
            x, y, w, h = o["bbox"]
            assert o["class_name"] in SHAPES and o["keypoints"] is None
            assert 0 <= x and 0 <= y and w > 0 and h > 0
            assert x + w <= BOXES.width + 0.01 and y + h <= BOXES.height + 0.01
            assert result.meta["keep"] <= o["confidence"] <= 1.0
    # The final model saw these images: its pre-labels must find most of their boxes.
    truth = _truth(box_scenes)
    found = [[Annotation(o["class_name"], bbox=tuple(o["bbox"]), source="model",
                         confidence=o["confidence"]) for o in p.objects]
             for p in preds[:N_IMAGES]]
    assert detection_metrics(truth, found, classes=list(SHAPES)).map50 > 0.5


def _truth(coco: Path) -> list[ImageRecord]:
    from labelwise.io.coco import read_coco

    return read_coco(coco, images=coco.parent / "images").images


def test_apply_reads_cached_maps_but_keeps_no_new_ones(trained):
    ws, _, ids, folder, result, _ = trained
    before = sorted(feature_folder(ws).rglob("*.npz"))
    list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=ids[:5]))
    assert sorted(feature_folder(ws).rglob("*.npz")) == before


def test_large_images_are_shrunk_on_load_and_boxes_mapped_back(trained, monkeypatch):
    ws, _, ids, folder, result, _ = trained
    full = list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=ids[:6]))
    monkeypatch.setattr(dense_data, "MAX_SIDE", 120)  # 160x120 images shrink to 120x90
    small = list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=ids[:6]))
    pairs = [(a, b) for p, q in zip(full, small, strict=True)
             for a, b in zip(p.objects, q.objects) if a["class_name"] == b["class_name"]]
    assert pairs
    # The same objects, in the original image's pixels: unmapped, the boxes of the shrunk
    # image would be a quarter smaller and shifted towards the origin.
    ious = [box_iou(_xyxy(a["bbox"]), _xyxy(b["bbox"]))[0, 0] for a, b in pairs]
    assert np.median(ious) > 0.6


def _xyxy(b):
    return np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]]])


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for the module, shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_engine_gives_the_local_engines_predictions(trained, ray_instance):
    ws, _, ids, folder, result, _ = trained
    some = ids[:20] + ids[-2:]  # three batches of 16 images, the last ones not labeled
    local = list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=some))
    done = []
    remote = list(apply_dense(ws, folder=folder, meta=result.meta, asset_ids=some,
                              engine="ray", progress=done.append))
    assert [p.asset_id for p in remote] == some and done[-1] == len(some)
    assert sum(len(p.objects) for p in local) > 0
    for a, b in zip(local, remote, strict=True):
        assert a.bucket == b.bucket
        assert a.uncertainty == pytest.approx(b.uncertainty, abs=1e-4)
        assert [o["class_name"] for o in a.objects] == [o["class_name"] for o in b.objects]
        for oa, ob in zip(a.objects, b.objects, strict=True):
            assert np.allclose(oa["bbox"], ob["bbox"], atol=0.05)
            assert oa["confidence"] == pytest.approx(ob["confidence"], abs=1e-3)


def test_apply_refuses_unknown_engines_assets_and_meta(trained):
    ws, _, ids, folder, result, _ = trained
    with pytest.raises(ValidationError, match="unknown engine 'spark'; choose one of local, ray"):
        apply_dense(ws, folder=folder, meta=result.meta, asset_ids=ids, engine="spark")
    with pytest.raises(NotFoundError, match="1 asset id.* not found: 999999"):
        apply_dense(ws, folder=folder, meta=result.meta, asset_ids=[ids[0], 999_999])
    with pytest.raises(ValidationError, match="not a box/keypoint model"):
        apply_dense(ws, folder=folder, meta={"task": "category"}, asset_ids=ids)
    with pytest.raises(NotFoundError, match="no saved detector here"):
        apply_dense(ws, folder=folder / "elsewhere", meta=result.meta, asset_ids=ids)


# -- refusals ---------------------------------------------------------------------------------
def _train(ws, dataset_id, ids, tmp_path, task="boxes", **options):
    folder = tmp_path / f"model-{len(list(tmp_path.glob('model-*')))}"
    folder.mkdir()
    return train_dense(ws, task=task, dataset_id=dataset_id, asset_ids=ids, folder=folder,
                       options=options)


def test_refuses_a_dataset_with_only_categories(workspace, tmp_path):
    src = write_fashion_mnist_folders(tmp_path / "fm", n=12, seed=1)
    workspace.import_dataset("classfolders", src, dataset="fm")
    with workspace.session() as s:
        ds = s.scalar(select(DatasetRow).where(DatasetRow.name == "fm"))
        ids = list(s.scalars(select(AssetRow.id).where(AssetRow.dataset_id == ds.id)))
        assert s.scalar(select(AnnotationRow.id).limit(1)) is not None  # categories only
    with pytest.raises(ValidationError) as err:
        _train(workspace, ds.id, ids, tmp_path)
    assert "none of the 12 image(s) of dataset 'fm' has a box or polygon" in str(err.value)
    assert "categorization model" in str(err.value)
    with pytest.raises(ValidationError, match="has an object with labeled keypoints"):
        _train(workspace, ds.id, ids, tmp_path, task="keypoints")


def test_refuses_a_single_class(workspace, tmp_path):
    coco = write_scenes(tmp_path / "one", SceneConfig(classes=("disc",), seed=3), 6)
    dataset_id, ids = import_scenes(workspace, coco)
    with pytest.raises(ValidationError, match="needs at least 2 classes.*only have boxes of "
                                              "'disc'"):
        _train(workspace, dataset_id, ids, tmp_path)


def test_refuses_a_class_with_three_examples_and_names_it(workspace, tmp_path):
    coco = write_scenes(tmp_path / "few", SceneConfig(classes=("disc", "square"), seed=4), 12)
    dataset_id, ids = import_scenes(workspace, coco)
    with workspace.session() as s, s.begin():
        square = s.scalar(select(LabelClassRow.id).where(LabelClassRow.name == "square"))
        rows = s.scalars(select(AnnotationRow.id).where(AnnotationRow.class_id == square)
                         .order_by(AnnotationRow.id)).all()
        assert len(rows) > 3
        s.execute(delete(AnnotationRow).where(AnnotationRow.id.in_(rows[3:])))
    with pytest.raises(ValidationError) as err:
        _train(workspace, dataset_id, ids, tmp_path)
    assert "every class needs at least 5 labeled objects" in str(err.value)
    assert "'square': 3 box(es)" in str(err.value)
    assert "disc" not in str(err.value).split("\n", 1)[1]  # only the short class is listed
    with pytest.raises(ValidationError, match=r"no boxes of class\(es\) \['hexagon'\]"):
        _train(workspace, dataset_id, ids, tmp_path, classes=["disc", "hexagon"])


def test_refuses_keypoints_without_a_skeleton_in_the_schema(workspace, tmp_path):
    coco = write_scenes(tmp_path / "fig", FIGURES, 8)
    dataset_id, ids = import_scenes(workspace, coco)
    with workspace.session() as s, s.begin():
        s.execute(update(LabelClassRow).where(LabelClassRow.name == FIGURE)
                  .values(skeleton=None, tool="bbox"))
    with pytest.raises(ValidationError) as err:
        _train(workspace, dataset_id, ids, tmp_path, task="keypoints")
    assert "['figure'] of dataset 'scenes' have keypoints but no skeleton" in str(err.value)
    assert "--skeleton" in str(err.value)
    with pytest.raises(ValidationError, match=r"no labeled keypoints of class\(es\) \['disc'\]"):
        _train(workspace, dataset_id, ids, tmp_path, task="keypoints", classes=["disc"])


def test_refuses_bad_requests_before_reading_anything(workspace, tmp_path):
    coco = write_scenes(tmp_path / "s", BOXES, 4)
    dataset_id, ids = import_scenes(workspace, coco)
    with pytest.raises(ValidationError, match="unknown task 'polygons'.*boxes, keypoints"):
        _train(workspace, dataset_id, ids, tmp_path, task="polygons")
    with pytest.raises(ValidationError, match=r"unknown box/keypoint training option\(s\)"):
        _train(workspace, dataset_id, ids, tmp_path, lr=0.1)
    with pytest.raises(ValidationError, match="no assets to train on"):
        _train(workspace, dataset_id, [], tmp_path)
    with pytest.raises(NotFoundError, match=f"not found in dataset {dataset_id}: 424242"):
        _train(workspace, dataset_id, [*ids, 424242], tmp_path)
    with pytest.raises(NotFoundError, match="no dataset with id 999"):
        _train(workspace, 999, ids, tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "old.txt").write_text("x")
    with pytest.raises(ValidationError, match="must exist and be empty"):
        train_dense(workspace, task="boxes", dataset_id=dataset_id, asset_ids=ids, folder=busy)
    assert [p.name for p in busy.iterdir()] == ["old.txt"]


def test_a_damaged_image_is_named_by_its_asset(workspace, tmp_path):
    coco = write_scenes(tmp_path / "s", BOXES, 4)
    dataset_id, ids = import_scenes(workspace, coco)
    with workspace.session() as s:
        asset = s.get(AssetRow, ids[2])
        key, path = image_key(asset.content_hash, asset.format), asset.path
    workspace.store.local_path(key).write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match=f"asset {ids[2]} \\({path}\\)"):
        _train(workspace, dataset_id, ids, tmp_path)
    workspace.store.delete(key)
    with pytest.raises(ImageError, match=f"asset {ids[2]} .*cannot be read"):
        _train(workspace, dataset_id, ids, tmp_path)
    assert [list((tmp_path / n).iterdir()) for n in ("model-0", "model-1")] == [[], []]


# -- keypoints --------------------------------------------------------------------------------
def test_keypoints_train_a_detector_and_a_point_model_and_apply_both(workspace, tmp_path):
    coco = write_scenes(tmp_path / "fig", FIGURES, 18)
    dataset_id, ids = import_scenes(workspace, coco)
    folder = tmp_path / "kp"
    folder.mkdir()
    result = train_dense(workspace, task="keypoints", dataset_id=dataset_id, asset_ids=ids,
                         folder=folder, options={"epochs": 8, "keypoint_epochs": 6, "crop": 64,
                                                 "folds": 2, "keep": 0.05})
    card = result.card
    assert card["task"] == "keypoints" and card["classes"] == [FIGURE]
    assert card["evaluation"]["method"] == "2-fold cross-validation"
    assert card["data"]["keypoint_objects"][FIGURE] >= 5
    points = card["keypoints"][FIGURE]
    assert points["skeleton_points"] == 14
    assert 0.0 <= points["true_boxes"]["pck"] <= 1.0 and 0.0 <= points["true_boxes"]["oks_ap"]
    assert points["true_boxes"]["objects"] == card["data"]["keypoint_objects"][FIGURE]
    meta = result.meta
    assert meta["keypoints"][FIGURE]["skeleton"]["keypoints"][0] == "head"
    assert (folder / meta["keypoints"][FIGURE]["folder"] / "head.onnx").is_file()
    json.dumps(card), json.dumps(meta)
    preds = list(apply_dense(workspace, folder=folder, meta=meta, asset_ids=ids))
    assert [p.asset_id for p in preds] == ids
    objects = [o for p in preds for o in p.objects]
    assert objects  # kept from a calibrated confidence of 0.05 on: a short schedule finds some
    for o in objects:
        assert o["class_name"] == FIGURE and len(o["keypoints"]) == 14
        assert all(len(pt) == 3 and pt[2] in (0, 1, 2) for pt in o["keypoints"])
        assert len(o["attributes"]["keypoint_scores"]) == 14


# -- which labels count -----------------------------------------------------------------------
def test_accepted_pre_labels_count_and_pending_ones_do_not(workspace, tmp_path):
    from labelwise.db.autolabel_models import (
        AutolabelModelRow,
        AutolabelVersionRow,
        PrelabelRow,
        PrelabelRunRow,
    )

    coco = write_scenes(tmp_path / "s", BOXES, 4)
    dataset_id, ids = import_scenes(workspace, coco)
    with workspace.session() as s, s.begin():
        model = AutolabelModelRow(name="m", task="boxes", dataset_id=dataset_id)
        s.add(model)
        s.flush()
        version = AutolabelVersionRow(model_id=model.id, version=1, path="models/m/v1")
        s.add(version)
        s.flush()
        run = PrelabelRunRow(version_id=version.id, dataset_id=dataset_id)
        s.add(run)
        s.flush()
        for asset, status in ((ids[0], "accepted"), (ids[1], "pending")):
            s.add(PrelabelRow(run_id=run.id, asset_id=asset, uncertainty=0.1,
                              expected_error=0.1, bucket="medium", status=status))
            s.execute(update(AnnotationRow).where(AnnotationRow.asset_id == asset)
                      .values(source="model", prelabel_run_id=run.id))
    data = dense_data.load_training_set(workspace, dataset_id=dataset_id, asset_ids=ids)
    assert data.asset_ids == [ids[0], ids[2], ids[3]] and data.unlabeled == [ids[1]]
    assert {a.source for r in data.records for a in r.annotations} == {"human"}
