"""The label lifecycle: transitions, optimistic concurrency, saving labels, the audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow, TaskEventRow
from labelwise.errors import ConflictError, ValidationError
from labelwise.workflow import assignment, lifecycle, projects
from labelwise.workflow.access import PermissionDeniedError
from labelwise.workflow.lifecycle import StaleVersionError


def _cat_id(s, team) -> int:
    p = s.get(ProjectRow, team.project_id)
    return next(c.id for c in projects.project_classes(s, p) if c.name == "cat")


def _assigned(team, asset_index: int = 3, who: str = "labeler") -> int:
    asset = sorted(team.data.files)[asset_index]
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assignment.assign(s, p, team.user(s, who), [asset], actor=team.user(s, "manager"))
    return asset


def _events(s, task_id):
    return [(e.action, e.from_status, e.to_status, e.version) for e in s.scalars(
        select(TaskEventRow).where(TaskEventRow.task_id == task_id).order_by(TaskEventRow.id))]


def test_full_cycle_with_rejection_and_resubmission(team):
    asset = _assigned(team)
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        lab, rev = team.actor(s, "labeler"), team.actor(s, "reviewer")
        lifecycle.transition(s, task, lab, "start", version=2)
        box = {"class_id": _cat_id(s, team), "bbox": [1, 2, 10, 12]}
        lifecycle.save_labels(s, task, lab, version=3, labels=[box], active_seconds=4.0)
        lifecycle.transition(s, task, lab, "submit", version=4, active_seconds=2.0)
        lifecycle.transition(s, task, rev, "reject", version=5, reason="box too loose")
        assert task.status == "rejected" and task.reviewer_id == team.users["reviewer"]
        lifecycle.transition(s, task, lab, "start", version=6)
        lifecycle.transition(s, task, lab, "submit", version=7, active_seconds=1.5)
        lifecycle.transition(s, task, rev, "approve", version=8, comment="good now")
        assert (task.status, task.version) == ("approved", 9)
        assert _events(s, task.id) == [
            ("assign", "todo", "todo", 2),
            ("start", "todo", "in_progress", 3),
            ("save", "in_progress", "in_progress", 4),
            ("submit", "in_progress", "submitted", 5),
            ("reject", "submitted", "rejected", 6),
            ("start", "rejected", "in_progress", 7),
            ("resubmit", "in_progress", "submitted", 8),
            ("approve", "submitted", "approved", 9),
        ]
        events = s.scalars(select(TaskEventRow).where(TaskEventRow.task_id == task.id)
                           .order_by(TaskEventRow.id)).all()
        first_submit = events[3]
        assert first_submit.cycle_seconds == pytest.approx(6.0)  # 4 s saving + 2 s at submit
        assert first_submit.num_labels == 1 and first_submit.tool == "bbox"
        assert first_submit.seconds_per_label == pytest.approx(6.0)
        assert events[4].payload == {"reason": "box too loose"}
        assert events[4].turnaround_seconds is not None and events[4].assignee_id == team.users[
            "labeler"]
        assert events[6].cycle_seconds == pytest.approx(1.5)
        assert events[7].payload == {"comment": "good now"}


def test_a_stale_version_is_refused_with_the_current_one(team):
    asset = _assigned(team)
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        lifecycle.transition(s, task, team.actor(s, "labeler"), "start", version=2)
    with team.ws.session() as s:
        task = team.task_for(s, asset)
        with pytest.raises(StaleVersionError) as err:
            lifecycle.save_labels(s, task, team.actor(s, "labeler"), version=2, labels=[])
        assert err.value.current_version == 3 and err.value.http_status == 409
        assert "now version 3" in err.value.message
        assert isinstance(err.value, ConflictError)


def test_a_lost_update_is_impossible_between_two_sessions(team):
    """Two people read version 3; the first save wins, the second gets 409, nothing is lost."""
    asset = _assigned(team)
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        lifecycle.transition(s, task, team.actor(s, "labeler"), "start", version=2)
    first, second = team.ws.session(), team.ws.session()
    with first as s1, second as s2:
        t1, t2 = team.task_for(s1, asset), team.task_for(s2, asset)
        cat = _cat_id(s1, team)
        lifecycle.save_labels(s1, t1, team.actor(s1, "labeler"), version=3,
                              labels=[{"class_id": cat, "bbox": [1, 1, 5, 5]}])
        s1.commit()
        with pytest.raises(StaleVersionError):
            lifecycle.save_labels(s2, t2, team.actor(s2, "manager"), version=3,
                                  labels=[{"class_id": cat, "bbox": [2, 2, 5, 5]}])
        s2.rollback()
    with team.ws.session() as s:
        labels = lifecycle.task_labels(s, team.task_for(s, asset).id)
        assert [(lb.bbox_x, lb.bbox_y) for lb in labels] == [(1, 1)]


def test_transitions_out_of_order_are_conflicts(team):
    asset = _assigned(team)
    with team.ws.session() as s:
        task = team.task_for(s, asset)
        with pytest.raises(ConflictError, match="is todo; submit needs a task that is "
                                                "in_progress"):
            lifecycle.transition(s, task, team.actor(s, "labeler"), "submit", version=2)
        with pytest.raises(ConflictError, match="approve needs a task that is submitted"):
            lifecycle.transition(s, task, team.actor(s, "reviewer"), "approve", version=2)
        with pytest.raises(ValidationError, match="unknown action 'finish'"):
            lifecycle.transition(s, task, team.actor(s, "labeler"), "finish", version=2)


def test_roles_and_assignees_are_enforced(team):
    asset = _assigned(team)
    with team.ws.session() as s:
        task = team.task_for(s, asset)
        with pytest.raises(PermissionDeniedError, match="assigned to someone else"):
            lifecycle.transition(s, task, team.actor(s, "labeler2"), "start", version=2)
        with pytest.raises(PermissionDeniedError, match="needs the manager role"):
            lifecycle.transition(s, task, team.actor(s, "labeler"), "reopen", version=2)
        with pytest.raises(PermissionDeniedError, match="needs the reviewer role"):
            lifecycle.transition(s, task, team.actor(s, "labeler"), "approve", version=2)


def test_reject_needs_a_reason_and_seconds_must_be_sane(team):
    asset = _assigned(team)
    with team.ws.session() as s:
        task = team.task_for(s, asset)
        lab = team.actor(s, "labeler")
        with pytest.raises(ValidationError, match="active_seconds -1"):
            lifecycle.transition(s, task, lab, "start", version=2, active_seconds=-1)
        with pytest.raises(ValidationError, match="active_seconds"):
            lifecycle.transition(s, task, lab, "start", version=2, active_seconds=float("nan"))
        lifecycle.transition(s, task, lab, "start", version=2)
        lifecycle.transition(s, task, lab, "submit", version=3)
        with pytest.raises(ValidationError, match="needs a reason"):
            lifecycle.transition(s, task, team.actor(s, "reviewer"), "reject", version=4,
                                 reason="  ")


def test_skip_and_reopen(team):
    asset = _assigned(team)
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        lifecycle.transition(s, task, team.actor(s, "labeler"), "skip", version=2,
                             reason="blurry")
        assert task.status == "skipped"
        lifecycle.transition(s, task, team.actor(s, "manager"), "reopen", version=3)
        assert task.status == "todo"


def test_invalid_labels_list_every_problem_and_save_nothing(team):
    asset = _assigned(team)
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        lifecycle.transition(s, task, team.actor(s, "labeler"), "start", version=2)
    with team.ws.session() as s:
        task = team.task_for(s, asset)
        cat = _cat_id(s, team)
        bad = [
            {"class_id": 987654, "bbox": [1, 1, 2, 2]},
            {"class_id": cat},
            {"class_id": cat, "bbox": [1, 1, -2, 2]},
            {"class_id": cat, "bbox": [1, 1, 5000, 2]},
            {"class_id": cat, "bbox": [1, 1, 2]},
        ]
        before = len(lifecycle.task_labels(s, task.id))
        with pytest.raises(ValidationError) as err:
            lifecycle.save_labels(s, task, team.actor(s, "labeler"), version=3, labels=bad)
        problems = err.value.problems
        assert len(problems) == 5
        assert "class_id 987654 is not in the project's schema" in problems[0]
        assert "needs bbox" in problems[1]
        assert "non-positive size" in problems[2]
        assert "outside" in problems[3]
        assert "4 numbers" in problems[4]
        assert "nothing was saved" in err.value.message
        s.rollback()
        assert len(lifecycle.task_labels(s, task.id)) == before
        with pytest.raises(ValidationError, match="not labels of this task"):
            lifecycle.save_labels(s, task, team.actor(s, "labeler"), version=3,
                                  labels=[{"id": 424242, "class_id": cat, "bbox": [1, 1, 2, 2]}])


def test_model_prelabels_are_settled_at_submit(team):
    """Keep one model box unchanged, edit another, delete the third: 1/1/1 outcomes."""
    assets = sorted(team.data.files)
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assignment.assign(s, p, team.user(s, "labeler"), assets[:2],
                          actor=team.user(s, "manager"))
    with team.ws.session() as s, s.begin():
        lab = team.actor(s, "labeler")
        for asset in assets[:2]:
            task = team.task_for(s, asset)
            lifecycle.transition(s, task, lab, "start", version=task.version)
            labels = lifecycle.task_labels(s, task.id)
            model = [lb for lb in labels if lb.source == "model"]
            keep = [{"id": lb.id, "class_id": lb.class_id,
                     "bbox": [lb.bbox_x, lb.bbox_y, lb.bbox_w, lb.bbox_h]}
                    for lb in labels if lb.source == "human"]
            if asset == assets[0]:  # two model boxes: keep one, edit one
                a, b = model
                keep.append({"id": a.id, "class_id": a.class_id,
                             "bbox": [a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h]})
                keep.append({"id": b.id, "class_id": b.class_id,
                             "bbox": [b.bbox_x + 1, b.bbox_y, b.bbox_w, b.bbox_h]})
            lifecycle.save_labels(s, task, lab, version=task.version, labels=keep)
            lifecycle.transition(s, task, lab, "submit", version=task.version)
        outcomes = sorted(s.scalars(select(TaskAnnotationRow.model_outcome).where(
            TaskAnnotationRow.project_id == team.project_id,
            TaskAnnotationRow.model_outcome.is_not(None))))
        assert outcomes == ["accepted", "edited", "rejected"]
