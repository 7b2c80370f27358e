"""Project exports: approved only or all, every writable format, frozen snapshots."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from labelwise.db.workflow_models import ProjectRow
from labelwise.errors import LabelwiseError, NotFoundError
from labelwise.io.formats import get_format
from labelwise.workflow import assignment, exports, lifecycle, projects


def _approve_one(team) -> int:
    """Label asset 3 with one new dog box and approve it; returns the asset id."""
    asset = sorted(team.data.files)[3]
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        dog = next(c.id for c in projects.project_classes(s, p) if c.name == "dog")
        assignment.assign(s, p, team.user(s, "labeler"), [asset], actor=team.user(s, "manager"))
        task = team.task_for(s, asset)
        s.refresh(task)
        lab = team.actor(s, "labeler")
        lifecycle.transition(s, task, lab, "start", version=task.version)
        lifecycle.save_labels(s, task, lab, version=task.version,
                              labels=[{"class_id": dog, "bbox": [2, 3, 10, 11]}])
        lifecycle.transition(s, task, lab, "submit", version=task.version)
        lifecycle.transition(s, task, team.actor(s, "reviewer"), "approve", version=task.version)
    return asset


def _reopen(team, asset: int) -> None:
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        lifecycle.transition(s, task, team.actor(s, "manager"), "reopen", version=task.version)


def test_approved_only_export_holds_only_approved_tasks(team, tmp_path):
    asset = _approve_one(team)
    made = exports.export_project(team.ws, team.project_id, "coco", dest=tmp_path / "out")
    assert (made.num_assets, made.num_annotations) == (1, 1)
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == [team.data.files[asset].name]
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    assert [(cats[a["category_id"]], a["bbox"]) for a in coco["annotations"]] == [
        ("dog", [2, 3, 10, 11])]
    everything = exports.export_project(team.ws, team.project_id, "coco", approved_only=False)
    assert everything.num_assets == 7 and everything.num_annotations > 1


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "csv", "classfolders"])
def test_every_writable_format_makes_a_downloadable_snapshot(team, fmt):
    _approve_one(team)
    options = {"task": "detect"} if fmt == "yolo" else {}
    made = exports.export_project(team.ws, team.project_id, fmt, options=options,
                                  approved_only=False)
    data = exports.export_bytes(team.ws, exports.get_export(team.ws, team.project_id, made.id))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
    # Class folders are made of images only: their snapshot is the manifest alone.
    assert "manifest.json" in names and (len(names) > 1) == (fmt != "classfolders")
    assert len(manifest) == 7
    assert [e.id for e in exports.list_exports(team.ws, team.project_id)] == [made.id]
    assert get_format(fmt, writable=True).name == made.format


def test_snapshots_stay_frozen(team):
    asset = _approve_one(team)
    first = exports.export_project(team.ws, team.project_id, "coco")
    _reopen(team, asset)
    second = exports.export_project(team.ws, team.project_id, "coco")
    assert second.num_assets == 0 and first.num_assets == 1
    old = exports.export_bytes(team.ws, exports.get_export(team.ws, team.project_id, first.id))
    with zipfile.ZipFile(io.BytesIO(old)) as zf:
        assert len(json.loads(zf.read("annotations.json"))["annotations"]) == 1


def test_the_same_labels_export_to_the_same_bytes(team):
    """No clock in the zip: a second export of unchanged labels has the same sha256 and
    shares the stored blob; a changed label changes it."""
    asset = _approve_one(team)
    first = exports.export_project(team.ws, team.project_id, "coco", approved_only=False)
    again = exports.export_project(team.ws, team.project_id, "coco", approved_only=False)
    assert again.id != first.id and again.sha256 == first.sha256
    stored = [exports.get_export(team.ws, team.project_id, e.id) for e in (first, again)]
    assert stored[0].storage_key == stored[1].storage_key
    approved = exports.export_project(team.ws, team.project_id, "coco")
    _reopen(team, asset)
    changed = exports.export_project(team.ws, team.project_id, "coco")
    assert changed.sha256 != approved.sha256


def test_bad_export_requests(team):
    with pytest.raises(LabelwiseError, match="cannot export format 'folder'; choose one of"):
        exports.export_project(team.ws, team.project_id, "folder")
    with pytest.raises(NotFoundError, match="has no export 999"):
        exports.get_export(team.ws, team.project_id, 999)


def test_writer_options_are_checked(team):
    from labelwise.errors import UnsafePathError, ValidationError

    with pytest.raises(ValidationError, match="format 'coco' has no option 'bogus'; its "
                                             "options: filename"):
        exports.export_project(team.ws, team.project_id, "coco", options={"bogus": 1})
    for bad in ("../../escape.json", "/tmp/x.json", ".hidden", "a/b.json"):
        with pytest.raises(UnsafePathError, match="plain file or folder name"):
            exports.export_project(team.ws, team.project_id, "coco",
                                   options={"filename": bad})
    made = exports.export_project(team.ws, team.project_id, "coco", approved_only=False,
                                  options={"filename": "labels.json"})
    data = exports.export_bytes(team.ws, exports.get_export(team.ws, team.project_id, made.id))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "labels.json" in zf.namelist()
