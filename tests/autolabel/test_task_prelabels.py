"""`autolabel apply` puts its pre-labels into the untouched todo tasks of projects made before.

The data of ``service_data`` (45 labeled images in split ``seed``, 60 unlabeled) with a
project over the whole dataset created *before* the first run, as in an active-learning
loop: label a first batch in the project, train, apply, label the rest with pre-labels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

import labelwise
from labelwise.autolabel import service
from labelwise.db.account_models import UserRow
from labelwise.db.autolabel_models import PrelabelRow
from labelwise.db.models import AnnotationRow
from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow, TaskRow
from labelwise.workflow import lifecycle, projects
from labelwise.workflow.lifecycle import Actor
from tests.autolabel.service_data import build, write_sources
from tests.workflow.conftest import add_users


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    return write_sources(tmp_path_factory.mktemp("al"), labeled=15, pool=20)


@pytest.fixture
def ws(workspace: labelwise.Workspace, sources) -> labelwise.Workspace:
    ws = build(workspace, sources)
    service.train(ws, "fm", source_split="seed", name="clothes")
    return ws


@pytest.fixture
def project(ws) -> dict[str, int]:
    """Project ``p`` over ``fm`` (labels of the 45 labeled images copied in), its users."""
    with ws.session() as s, s.begin():
        users = add_users(s, {"boss": "manager", "ann": "labeler", "rev": "reviewer"})
        p = projects.create_project(s, s.get(UserRow, users["boss"]), name="p", dataset="fm")
        for name, role in (("ann", "labeler"), ("rev", "reviewer")):
            projects.add_member(s, p, s.get(UserRow, users[name]), role)
        return {"id": p.id, **users}


def _unlabeled_tasks(ws, pid: int) -> list[TaskRow]:
    """The project's tasks without any label, in asset order (the 60 pool images)."""
    with ws.session() as s:
        ta = TaskAnnotationRow
        has_label = select(ta.id).where(ta.task_id == TaskRow.id).exists()
        rows = list(s.scalars(select(TaskRow).where(TaskRow.project_id == pid, ~has_label)
                              .order_by(TaskRow.asset_id)))
        s.expunge_all()
        return rows


def _task_labels(ws, task_id: int) -> list[tuple[str, float | None, int | None, bool]]:
    with ws.session() as s:
        ta = TaskAnnotationRow
        return [tuple(r) for r in s.execute(
            select(ta.source, ta.confidence, ta.prelabel_run_id, ta.deleted)
            .where(ta.task_id == task_id).order_by(ta.id)).all()]


ROLES = {"ann": "labeler", "rev": "reviewer"}


def _actor(s, users: dict[str, int], name: str) -> Actor:
    return Actor(s.get(UserRow, users[name]), ROLES[name])


def test_apply_prelabels_the_untouched_todo_tasks_of_an_existing_project(ws, project):
    pid = project["id"]
    pool = _unlabeled_tasks(ws, pid)
    assert len(pool) == 60
    started, worked = pool[0], pool[1]
    with ws.session() as s, s.begin():
        ann = _actor(s, project, "ann")
        task = s.get(TaskRow, started.id)
        task.assignee_id = ann.user.id
        lifecycle.transition(s, task, ann, "start", version=task.version)
        # a todo task holding a person's label (drawn, then sent back to todo)
        s.add(TaskAnnotationRow(task_id=worked.id, project_id=pid, class_id=next(
            c.id for c in projects.project_classes(s, s.get(ProjectRow, pid))
            if c.name == "bag"), source="human", fingerprint="drawn", created_by=ann.user.id))
        boss = s.get(UserRow, project["boss"])
        blind = projects.create_project(s, boss, name="blind", dataset="fm", import_labels=False)
        s.flush()
        blind_id = blind.id
    run = service.apply(ws, "clothes", "fm")
    # 58 of p's 60 pool tasks; none of "blind", made without labels (it gets the review order)
    assert run.images == 60 and run.tasks_prelabeled == 58 and run.tasks_updated == 120
    with ws.session() as s:
        assert s.scalar(select(TaskAnnotationRow.id)
                        .where(TaskAnnotationRow.project_id == blind_id)) is None
    with ws.session() as s:
        confidence = dict(s.execute(
            select(AnnotationRow.asset_id, AnnotationRow.confidence)
            .where(AnnotationRow.prelabel_run_id == run.run_id)).all())
        versions = {t.id: t.version for t in s.scalars(
            select(TaskRow).where(TaskRow.project_id == pid))}
    for task in pool[2:]:
        assert _task_labels(ws, task.id) == [
            ("model", pytest.approx(confidence[task.asset_id]), run.run_id, False)]
        assert versions[task.id] == task.version + 1  # clients that read it reload
    assert _task_labels(ws, started.id) == []  # someone is on it: left alone
    assert _task_labels(ws, worked.id) == [("human", None, None, False)]


def test_a_later_run_replaces_its_predecessors_labels_in_untouched_tasks_only(ws, project):
    pid = project["id"]
    first = service.apply(ws, "clothes", "fm")
    assert _unlabeled_tasks(ws, pid) == []  # every pool task got the run's label
    with ws.session() as s, s.begin():
        tasks = list(s.scalars(select(TaskRow).join(
            TaskAnnotationRow, TaskAnnotationRow.task_id == TaskRow.id).where(
            TaskRow.project_id == pid, TaskAnnotationRow.prelabel_run_id == first.run_id)
            .order_by(TaskRow.asset_id)))
        edited = tasks[0].id
        # its model label was changed by a person (then the task went back to todo)
        s.execute(update(TaskAnnotationRow).where(TaskAnnotationRow.task_id == edited)
                  .values(fingerprint="changed"))
    second = service.apply(ws, "clothes", "fm")
    assert second.replaced == 60 and second.tasks_prelabeled == 59
    assert [r[2] for r in _task_labels(ws, edited)] == [first.run_id]
    for task in tasks[1:]:
        labels = _task_labels(ws, task.id)
        assert [(src, run) for src, _, run, _ in labels] == [("model", second.run_id)]


def test_approving_a_pushed_prelabel_settles_it(ws, project):
    pid = project["id"]
    run = service.apply(ws, "clothes", "fm")
    with ws.session() as s, s.begin():
        ann, rev = _actor(s, project, "ann"), _actor(s, project, "rev")
        kept, dropped = s.scalars(select(TaskRow).join(
            TaskAnnotationRow, TaskAnnotationRow.task_id == TaskRow.id).where(
            TaskRow.project_id == pid, TaskAnnotationRow.prelabel_run_id == run.run_id)
            .order_by(TaskRow.asset_id).limit(2)).all()
        for task, keep in ((kept, True), (dropped, False)):
            task.assignee_id = ann.user.id
            lifecycle.transition(s, task, ann, "start", version=task.version)
            labels = [{"id": lb.id, "class_id": lb.class_id}
                      for lb in lifecycle.task_labels(s, task.id)]
            lifecycle.save_labels(s, task, ann, version=task.version,
                                  labels=labels if keep else [])
            lifecycle.transition(s, task, ann, "submit", version=task.version)
            lifecycle.transition(s, task, rev, "approve", version=task.version)
        kept_asset, dropped_asset = kept.asset_id, dropped.asset_id
    with ws.session() as s:
        assert s.get(PrelabelRow, (run.run_id, kept_asset)).status == "accepted"
        assert s.get(PrelabelRow, (run.run_id, dropped_asset)).status == "rejected"
