"""Boxes and keypoints models trained from a frozen project export (``--from-export``).

A dozen small synthetic scenes (discs, squares and stick figures with 14 keypoints), imported
from COCO into a dataset, a project over it with every task approved, and its exports. The
real dense trainer runs with a few epochs: each training takes seconds.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

import labelwise
from labelwise.autolabel import dense_data, service
from labelwise.autolabel import training_data as data
from labelwise.autolabel.synthetic import (
    SceneConfig,
    make_scenes,
    scene_schema,
    write_coco_scenes,
)
from labelwise.core.schema import LabelClass
from labelwise.db.account_models import UserRow
from labelwise.db.autolabel_models import AutolabelModelRow
from labelwise.db.models import AnnotationRow, AssetRow, DatasetRow, LabelClassRow, LabelSchemaRow
from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow, TaskRow
from labelwise.errors import NotFoundError, ValidationError
from labelwise.workflow import projects
from labelwise.workflow.exports import export_project
from tests.workflow.conftest import add_users

#: A few epochs: enough to train and evaluate end to end, in seconds.
FAST = {"epochs": 3, "patience": 2, "keypoint_epochs": 3, "folds": 2}
SCENES = 12


@pytest.fixture
def shapes(workspace: labelwise.Workspace, tmp_path) -> labelwise.Workspace:
    """Dataset ``shapes`` and project ``p`` over it with every task approved."""
    config = SceneConfig(classes=("disc", "square", "figure"), width=160, height=128,
                         objects=(2, 3), object_size=(24, 56), seed=3)
    coco = write_coco_scenes(make_scenes(config, SCENES), tmp_path / "scenes",
                             schema=scene_schema(config))
    workspace.import_dataset("coco", coco, images=coco.parent / "images", dataset="shapes")
    with workspace.session() as s:
        users = add_users(s, {"boss": "manager"})
        project = projects.create_project(s, s.get(UserRow, users["boss"]), name="p",
                                          dataset="shapes")
        s.flush()
        s.execute(update(TaskRow).where(TaskRow.project_id == project.id)
                  .values(status="approved"))
        s.commit()
    return workspace


def _project_id(ws) -> int:
    with ws.session() as s:
        return s.scalar(select(ProjectRow.id).where(ProjectRow.name == "p"))


def _export(ws, fmt: str = "coco", *, approved_only: bool = True):
    return export_project(ws, _project_id(ws), fmt, approved_only=approved_only)


def _frozen(ws, export_id: int) -> data.FrozenLabels:
    with ws.session() as s:
        ds = s.scalar(select(DatasetRow).where(DatasetRow.name == "shapes"))
        return data.export_object_labels(ws, s, ds.id, ds.name, export_id)


def _dataset_id(ws) -> int:
    with ws.session() as s:
        return s.scalar(select(DatasetRow.id).where(DatasetRow.name == "shapes"))


def _objects(training_set) -> list[tuple]:
    return [(aid, a.label, a.bbox, a.keypoints, a.source)
            for aid, rec in zip(training_set.asset_ids, training_set.records, strict=True)
            for a in rec.annotations]


def _edit_after_export(ws) -> None:
    """A person moves a disc's box and deletes a square in the dataset."""
    with ws.session() as s:
        disc, square = (s.scalar(select(AnnotationRow).join(
            LabelClassRow, LabelClassRow.id == AnnotationRow.class_id)
            .where(LabelClassRow.name == name).order_by(AnnotationRow.id)) for name in
            ("disc", "square"))
        disc.bbox_x, disc.bbox_w = disc.bbox_x + 7.0, disc.bbox_w + 5.0
        s.delete(square)
        s.commit()


def test_boxes_train_from_an_approved_export_whatever_the_dataset_holds_since(shapes):
    ws = shapes
    frozen = _export(ws)
    first = service.train(ws, "shapes", name="boxes", task="boxes", source_export=frozen.id,
                          options=FAST)
    t = first.trained_on
    assert t["export"] == frozen.id and t["export_sha256"] == frozen.sha256
    assert t["assets"] == SCENES and set(t["class_counts"]) == {"disc", "square"}
    assert first.card["data"]["export"] == frozen.id
    assert first.card["data"]["export_sha256"] == frozen.sha256
    card = json.loads((ws.path / first.path / "card.json").read_text())
    assert card["data"]["export"] == frozen.id  # the stored card says it too
    assert service.show(ws, "boxes")["trained_on"]["export"] == frozen.id

    ids = sorted(_frozen(ws, frozen.id).by_asset)
    before = _objects(dense_data.load_training_set(
        ws, dataset_id=_dataset_id(ws), asset_ids=ids, labels=_frozen(ws, frozen.id)))
    from_dataset = _objects(dense_data.load_training_set(ws, dataset_id=_dataset_id(ws),
                                                         asset_ids=ids))
    _edit_after_export(ws)
    after = _objects(dense_data.load_training_set(
        ws, dataset_id=_dataset_id(ws), asset_ids=ids, labels=_frozen(ws, frozen.id)))
    assert after == before  # the frozen objects, not the edited ones
    assert _objects(dense_data.load_training_set(ws, dataset_id=_dataset_id(ws),
                                                 asset_ids=ids)) != from_dataset
    assert all(source == "human" for *_, source in after)

    second = service.train(ws, "shapes", name="boxes", task="boxes", source_export=frozen.id,
                           options=FAST)
    assert second.version == 2
    assert second.trained_on["data_digest"] == t["data_digest"]
    assert second.trained_on["class_counts"] == t["class_counts"]
    assert second.card["data"]["data_digest"] == first.card["data"]["data_digest"]


def test_export_objects_are_scaled_with_their_images_like_dataset_labels(shapes, monkeypatch):
    """COCO keeps boxes and points in the original image's pixels, as the dataset does, so a
    shrunk image takes both the same way."""
    ws = shapes
    monkeypatch.setattr(dense_data, "MAX_SIDE", 100)  # 160 px wide scenes load at 100
    frozen = _frozen(ws, _export(ws).id)
    ids = sorted(frozen.by_asset)
    exported = dense_data.load_training_set(ws, dataset_id=_dataset_id(ws), asset_ids=ids,
                                            labels=frozen)
    stored = dense_data.load_training_set(ws, dataset_id=_dataset_id(ws), asset_ids=ids)
    assert exported.scales == stored.scales == [0.625] * SCENES
    assert _objects(exported) == _objects(stored)
    assert any(kps is not None for _, _, _, kps, _ in _objects(exported))


def test_keypoints_train_from_an_export_with_the_dataset_skeleton(shapes):
    ws = shapes
    frozen = _export(ws)
    # no image categories in the export: auto picks keypoints, as it does on the dataset
    result = service.train(ws, "shapes", name="figures", source_export=frozen.id,
                           options=FAST)
    assert result.task == "keypoints" and result.trained_on["export"] == frozen.id
    assert set(result.trained_on["class_counts"]) == {"figure"}
    assert result.card["keypoints"]["figure"]["skeleton_points"] == 14
    meta = json.loads((ws.path / result.path / "model.json").read_text())["meta"]
    with ws.session() as s:
        stored = s.scalar(select(LabelClassRow.skeleton).join(
            LabelSchemaRow, LabelSchemaRow.id == LabelClassRow.schema_id)
            .join(DatasetRow, DatasetRow.schema_id == LabelSchemaRow.id)
            .where(LabelClassRow.name == "figure"))
    # the dataset's skeleton, left/right pairs included (a COCO file has none)
    assert meta["keypoints"]["figure"]["skeleton"]["flip_pairs"] == stored["flip_pairs"]
    assert stored["flip_pairs"]


def test_training_from_an_export_refuses_with_the_fix(shapes):
    ws = shapes
    with pytest.raises(NotFoundError, match="no project export 99; list a project's exports"):
        service.train(ws, "shapes", name="m", task="boxes", source_export=99)
    everything = _export(ws, approved_only=False)
    with pytest.raises(ValidationError, match="export the project again with approved labels"):
        service.train(ws, "shapes", name="m", task="keypoints", source_export=everything.id)
    csv = _export(ws, "csv")
    with pytest.raises(ValidationError, match="csv format.*export the project again as coco"):
        service.train(ws, "shapes", name="m", task="boxes", source_export=csv.id)
    frozen = _export(ws)
    with ws.session() as s:
        schema = LabelSchemaRow(name="other")
        s.add(schema)
        s.flush()
        s.add(DatasetRow(name="other", schema_id=schema.id))
        s.commit()
    with pytest.raises(ValidationError, match="another dataset.*train on the dataset it was "
                                              "made from"):
        service.train(ws, "other", name="m", task="boxes", source_export=frozen.id)
    with ws.session() as s:
        assert s.scalar(select(AutolabelModelRow.id)) is None


def test_refusals_about_export_labels_name_the_export(shapes):
    ws = shapes
    frozen = _export(ws)
    with pytest.raises(ValidationError, match=rf"no labeled keypoints of class\(es\) \['disc'\] "
                                              rf"on the \d+ image\(s\) of export {frozen.id} "
                                              r"\(dataset 'shapes'\)"):
        service.train(ws, "shapes", name="m", task="keypoints", source_export=frozen.id,
                      options={**FAST, "classes": ["disc", "figure"]})
    with ws.session() as s:
        assert s.scalar(select(AutolabelModelRow.id)) is None


def test_an_export_class_the_dataset_lacks_is_refused(shapes):
    ws = shapes
    with ws.session() as s:
        project = s.get(ProjectRow, _project_id(ws))
        star = projects.add_class(s, project, LabelClass("star", tool="bbox"))
        s.flush()
        task = s.scalar(select(TaskRow).where(TaskRow.project_id == project.id)
                        .order_by(TaskRow.id))
        s.add(TaskAnnotationRow(task_id=task.id, project_id=project.id, class_id=star.id,
                                bbox_x=5.0, bbox_y=5.0, bbox_w=20.0, bbox_h=20.0,
                                fingerprint="a star"))
        s.commit()
    frozen = _export(ws)
    with pytest.raises(ValidationError, match=r"class\(es\) \['star'\] that dataset 'shapes' "
                                              r"has no object class for.*labelwise schema add"):
        service.train(ws, "shapes", name="m", task="boxes", source_export=frozen.id)


def test_images_gone_or_replaced_since_the_export_are_left_out_with_a_warning(shapes):
    ws = shapes
    frozen = _export(ws)
    with ws.session() as s:
        first, second = s.scalars(select(AssetRow).order_by(AssetRow.id).limit(2)).all()
        first.path = "renamed.png"  # no longer at the exported path
        second.content_hash = "0" * len(second.content_hash)  # another image at that path
        gone = {first.id, second.id}
        s.commit()
    labels = _frozen(ws, frozen.id)
    assert len(labels.by_asset) == SCENES - 2 and not gone & set(labels.by_asset)
    assert labels.warnings == [(f"2 labeled images of export {frozen.id} are no longer in "
                                "dataset 'shapes' (or their image was replaced); they were "
                                "left out")]
