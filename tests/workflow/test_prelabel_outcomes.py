"""An approved project task settles the Auto-Label pre-labels its model labels came from.

The dataset gets real pre-label runs (a category model on four images, a boxes model on a
fifth) before the project is created, so the project imports their labels as pre-labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select

import labelwise
from labelwise.autolabel import review, training_data
from labelwise.db import migrate
from labelwise.db.account_models import UserRow
from labelwise.db.autolabel_models import (
    AutolabelModelRow,
    AutolabelVersionRow,
    PrelabelRow,
    PrelabelRunRow,
)
from labelwise.db.models import AnnotationRow, DatasetRow, LabelClassRow
from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow, TaskRow
from labelwise.workflow import assignment, lifecycle, projects
from labelwise.workflow.lifecycle import Actor, TaskLabel, prelabel_outcomes
from tests.server.helpers import import_test_dataset
from tests.workflow.conftest import add_users

#: Category pre-labels of the first four images: (class, confidence); distinct confidences.
CATEGORY_PRELABELS = [("day", 0.91), ("night", 0.62), ("day", 0.55), ("night", 0.83)]


@dataclass
class Setup:
    ws: labelwise.Workspace
    dataset_id: int
    dataset: str
    assets: list[int]
    project_id: int = 0
    users: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # model task -> run id

    def actor(self, s, name: str) -> Actor:
        return Actor(s.get(UserRow, self.users[name]), name)

    def task(self, s, asset: int) -> TaskRow:
        return s.scalar(select(TaskRow).where(TaskRow.project_id == self.project_id,
                                              TaskRow.asset_id == asset))

    def status(self, s, asset: int, kind: str = "category") -> str:
        return s.get(PrelabelRow, (self.runs[kind], asset)).status


def _run(s, dataset_id: int, task: str) -> int:
    model = AutolabelModelRow(name=f"m-{task}", task=task, dataset_id=dataset_id)
    s.add(model)
    s.flush()
    version = AutolabelVersionRow(model_id=model.id, version=1, path=f"models/{task}/v1")
    s.add(version)
    s.flush()
    run = PrelabelRunRow(version_id=version.id, dataset_id=dataset_id, summary={})
    s.add(run)
    s.flush()
    return run.id


def _prelabel(s, run_id: int, dataset_id: int, asset: int, class_id: int, conf: float,
              bbox: list[float] | None = None) -> None:
    s.add(PrelabelRow(run_id=run_id, asset_id=asset, uncertainty=1 - conf,
                      expected_error=0.1, bucket="medium", status="pending"))
    x, y, w, h = bbox or (None, None, None, None)
    s.add(AnnotationRow(dataset_id=dataset_id, asset_id=asset, class_id=class_id, bbox_x=x,
                        bbox_y=y, bbox_w=w, bbox_h=h, source="model", confidence=conf,
                        prelabel_run_id=run_id, fingerprint=f"run{run_id}-{asset}"))


@pytest.fixture
def setup(workspace: labelwise.Workspace, tmp_path: Path) -> Setup:
    data = import_test_dataset(workspace, tmp_path / "src")
    out = Setup(workspace, data.dataset_id, data.name, sorted(data.files))
    with workspace.session() as s, s.begin():
        out.users = add_users(s, {"manager": "manager", "labeler": "labeler",
                                  "reviewer": "reviewer"})
        schema_id = s.get(DatasetRow, data.dataset_id).schema_id
        for name in ("day", "night"):
            s.add(LabelClassRow(schema_id=schema_id, name=name, kind="category",
                                color="#808080"))
        s.flush()
        classes = {(c.kind, c.name): c.id for c in s.scalars(
            select(LabelClassRow).where(LabelClassRow.schema_id == schema_id))}
        out.runs["category"] = _run(s, data.dataset_id, "category")
        for asset, (name, conf) in zip(out.assets, CATEGORY_PRELABELS, strict=False):
            _prelabel(s, out.runs["category"], data.dataset_id, asset,
                      classes[("category", name)], conf)
        out.runs["boxes"] = _run(s, data.dataset_id, "boxes")
        _prelabel(s, out.runs["boxes"], data.dataset_id, out.assets[4],
                  classes[("object", "cat")], 0.77, bbox=[3.0, 4.0, 20.0, 12.0])
        s.flush()
        manager = s.get(UserRow, out.users["manager"])
        project = projects.create_project(s, manager, name="p", dataset=data.name)
        for name in ("labeler", "reviewer"):
            projects.add_member(s, project, s.get(UserRow, out.users[name]), name)
        assignment.assign(s, project, s.get(UserRow, out.users["labeler"]), out.assets,
                          actor=manager)
        out.project_id = project.id
    return out


def _as_input(label) -> dict:
    out = {"id": label.id, "class_id": label.class_id}
    if label.bbox_w is not None:
        out["bbox"] = [label.bbox_x, label.bbox_y, label.bbox_w, label.bbox_h]
    return out


def _label_and_submit(s, st: Setup, asset: int, edit) -> TaskRow:
    """Start the task, save ``edit(labels as input dicts)``, submit."""
    lab = st.actor(s, "labeler")
    task = st.task(s, asset)
    lifecycle.transition(s, task, lab, "start", version=task.version)
    labels = [_as_input(lb) for lb in lifecycle.task_labels(s, task.id)]
    lifecycle.save_labels(s, task, lab, version=task.version, labels=edit(labels))
    lifecycle.transition(s, task, lab, "submit", version=task.version)
    return task


def _class_id(s, st: Setup, name: str) -> int:
    p = s.get(ProjectRow, st.project_id)
    return next(c.id for c in projects.project_classes(s, p) if c.name == name)


def _model_categories(s, st: Setup, asset: int) -> list[int]:
    return list(s.scalars(select(AnnotationRow.class_id).where(
        AnnotationRow.asset_id == asset, AnnotationRow.prelabel_run_id == st.runs["category"])))


def test_approval_records_accepted_edited_and_rejected(setup):
    st = setup
    a0, a1, a2, a3, a4 = st.assets[:5]
    with st.ws.session() as s, s.begin():
        day, cat = _class_id(s, st, "day"), _class_id(s, st, "cat")
        added_box = {"class_id": cat, "bbox": [1.0, 1.0, 5.0, 5.0]}
        tasks = [
            # kept as is; a box drawn alongside belongs to no category run's family
            _label_and_submit(s, st, a0, lambda labels: [*labels, added_box]),
            _label_and_submit(s, st, a1, lambda labels: [
                {**lb, "class_id": day} if "bbox" not in lb else lb for lb in labels]),
            _label_and_submit(s, st, a2, lambda labels: [lb for lb in labels if "bbox" in lb]),
            _label_and_submit(s, st, a4, lambda labels: [*labels, added_box]),
        ]
        _label_and_submit(s, st, a3, lambda labels: labels)  # submitted, never approved
        rev = st.actor(s, "reviewer")
        for task in tasks:
            lifecycle.transition(s, task, rev, "approve", version=task.version)
    with st.ws.session() as s:
        assert [st.status(s, a) for a in (a0, a1, a2, a3)] == [
            "accepted", "edited", "rejected", "pending"]
        assert st.status(s, a4, "boxes") == "edited"  # a box added beside the model's box
        # A rejected run's model labels leave the dataset, as with `review reject`.
        assert _model_categories(s, st, a2) == []
        assert len(_model_categories(s, st, a1)) == 1
    queue = review.review_queue(st.ws, st.dataset, run=st.runs["category"])
    assert [item["asset_id"] for item in queue["items"]] == [a3]
    edited = review.review_queue(st.ws, st.dataset, run=st.runs["category"], status="edited")
    assert [item["asset_id"] for item in edited["items"]] == [a1]
    with st.ws.session() as s:
        # both are settled: neither is pre-labeled again nor proposed for labeling
        labeled = training_data.labeled_assets(s, st.dataset_id, "category")
        assert labeled == {a0, a1}
        labels = training_data.dataset_category_labels(
            s, st.dataset_id, split_id=None, multi_label=False, source={})
        # The dataset keeps the model's label (night) for the edited a1: it must not train
        # the next version (the labeler's "day" lives in the project and trains through an
        # export); the accepted a0 does.
        assert labels.by_asset == {a0: {"day"}}


def test_only_approval_settles_and_a_first_verdict_stands(setup):
    st = setup
    a0, a1 = st.assets[:2]
    with st.ws.session() as s, s.begin():
        s.get(PrelabelRow, (st.runs["category"], a1)).status = "accepted"  # review accept
    with st.ws.session() as s, s.begin():
        rev = st.actor(s, "reviewer")
        t0 = _label_and_submit(s, st, a0, lambda labels: [])
        t1 = _label_and_submit(s, st, a1, lambda labels: [])
        lifecycle.transition(s, t0, rev, "reject", version=t0.version, reason="look again")
        assert st.status(s, a0) == "pending"  # sent back: no verdict yet
        lifecycle.transition(s, t1, rev, "approve", version=t1.version)
        assert st.status(s, a1) == "accepted"  # settled before the project's verdict
        assert len(_model_categories(s, st, a1)) == 1  # and its labels stay


@pytest.mark.parametrize("confidence", [0.66, CATEGORY_PRELABELS[0][1]])
def test_a_run_that_replaced_the_tasks_prelabels_is_not_settled(setup, confidence):
    """A later run's pending pre-label was never seen by the labeler: it stays pending, even
    when its label has the very confidence of the one in the task."""
    st = setup
    a0 = st.assets[0]
    with st.ws.session() as s, s.begin():
        old = st.runs["category"]
        day = s.scalar(select(AnnotationRow.class_id).where(
            AnnotationRow.asset_id == a0, AnnotationRow.prelabel_run_id == old))
        s.delete(s.get(PrelabelRow, (old, a0)))
        for ann in s.scalars(select(AnnotationRow).where(AnnotationRow.asset_id == a0,
                                                          AnnotationRow.prelabel_run_id == old)):
            s.delete(ann)
        newer = _run(s, st.dataset_id, "multilabel")
        _prelabel(s, newer, st.dataset_id, a0, day, confidence)
    with st.ws.session() as s, s.begin():
        task = _label_and_submit(s, st, a0, lambda labels: labels)
        lifecycle.transition(s, task, st.actor(s, "reviewer"), "approve",
                             version=task.version)
        assert s.get(PrelabelRow, (newer, a0)).status == "pending"


def test_upgrading_names_the_run_of_task_labels_copied_before(setup):
    """Migration 0007 fills ``prelabel_run_id`` of model labels copied into tasks before the
    column existed, from the run whose model annotation has the same confidence."""
    st = setup
    engine = st.ws.engine
    command.downgrade(migrate.alembic_config(engine), "0006")
    migrate.upgrade(engine)
    with st.ws.session() as s:
        ta = TaskAnnotationRow
        runs = dict(s.execute(
            select(TaskRow.asset_id, ta.prelabel_run_id).join(ta, ta.task_id == TaskRow.id)
            .where(TaskRow.project_id == st.project_id, ta.source == "model")).all())
    assert runs == {**dict.fromkeys(st.assets[:4], st.runs["category"]),
                    st.assets[4]: st.runs["boxes"]}
    with st.ws.session() as s, s.begin():  # and settling works on them
        task = _label_and_submit(s, st, st.assets[0], lambda labels: labels)
        lifecycle.transition(s, task, st.actor(s, "reviewer"), "approve",
                             version=task.version)
    with st.ws.session() as s:
        assert st.status(s, st.assets[0]) == "accepted"


def _lb(i, *, run=None, model=True, deleted=False, unchanged=True, added=False,
        family="object") -> TaskLabel:
    return TaskLabel(i, family, model, deleted, unchanged, added, run)


def test_outcomes_per_run():
    assert prelabel_outcomes([]) == {}
    assert prelabel_outcomes([_lb(1, run=None)]) == {}  # a model label no pending run made
    assert prelabel_outcomes([_lb(1, run=7), _lb(1, run=7), _lb(2, run=7)]) == {7: "accepted"}
    assert prelabel_outcomes([_lb(1, run=7), _lb(2, run=7, deleted=True)]) == {7: "edited"}
    assert prelabel_outcomes([_lb(1, run=7, unchanged=False)]) == {7: "edited"}
    assert prelabel_outcomes([_lb(1, run=7, deleted=True, unchanged=False),
                              _lb(2, model=False, added=True)]) == {7: "rejected"}
    # An added box edits the boxes run only, not the category run beside it.
    assert prelabel_outcomes([
        _lb(1, run=7, family="category"), _lb(2, run=8),
        _lb(3, model=False, added=True, family="object"),
        _lb(4, model=False, added=False, family="category"),  # imported, not drawn here
    ]) == {7: "accepted", 8: "edited"}
