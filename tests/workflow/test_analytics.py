"""Analytics over a planted history whose answers are known."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow
from labelwise.errors import ValidationError
from labelwise.workflow import analytics, assignment, lifecycle, projects


def _plant(team):
    """labeler: 3 tasks (2 boxes each, 10 s each cycle), 1 rejected once then approved;
    labeler2: 1 task (1 box, 3 s), approved. One model box kept, one deleted."""
    assets = sorted(team.data.files)
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        cat = next(c.id for c in projects.project_classes(s, p) if c.name == "cat")
        mgr = team.user(s, "manager")
        assignment.assign(s, p, team.user(s, "labeler"), assets[2:5], actor=mgr)
        assignment.assign(s, p, team.user(s, "labeler2"), [assets[5]], actor=mgr)
        lab, lab2, rev = (team.actor(s, n) for n in ("labeler", "labeler2", "reviewer"))
        two = [{"class_id": cat, "bbox": [1, 1, 5, 5]}, {"class_id": cat, "bbox": [9, 9, 5, 5]}]

        def label(task, actor, labels, seconds):
            lifecycle.transition(s, task, actor, "start", version=task.version)
            lifecycle.save_labels(s, task, actor, version=task.version, labels=labels,
                                  active_seconds=seconds / 2)
            lifecycle.transition(s, task, actor, "submit", version=task.version,
                                 active_seconds=seconds / 2)

        tasks = [team.task_for(s, a) for a in assets[2:5]]
        for t in tasks:
            label(t, lab, two, 10.0)
        lifecycle.transition(s, tasks[0], rev, "reject", version=tasks[0].version, reason="x")
        label(tasks[0], lab, two, 10.0)
        for t in tasks:
            lifecycle.transition(s, t, rev, "approve", version=t.version)
        t2 = team.task_for(s, assets[5])
        label(t2, lab2, two[:1], 3.0)
        lifecycle.transition(s, t2, rev, "approve", version=t2.version)
        # Model pre-labels on asset 0: keep the first as is, delete the second.
        t0 = team.task_for(s, assets[0])
        assignment.assign(s, p, team.user(s, "labeler"), [assets[0]], actor=mgr)
        s.refresh(t0)
        labels = lifecycle.task_labels(s, t0.id)
        model = [lb for lb in labels if lb.source == "model"]
        keep = [{"id": lb.id, "class_id": lb.class_id,
                 "bbox": [lb.bbox_x, lb.bbox_y, lb.bbox_w, lb.bbox_h]}
                for lb in labels if lb not in model[1:]]
        lifecycle.transition(s, t0, lab, "start", version=t0.version)
        lifecycle.save_labels(s, t0, lab, version=t0.version, labels=keep)
        lifecycle.transition(s, t0, lab, "submit", version=t0.version)
    return assets


def test_progress_counts_every_status(team):
    _plant(team)
    with team.ws.session() as s:
        out = analytics.progress(s, team.project_id)
    assert out["total"] == 7
    assert out["by_status"] == {"todo": 2, "in_progress": 0, "submitted": 1, "approved": 4,
                                "rejected": 0, "skipped": 0}
    assert out["done_fraction"] == pytest.approx(4 / 7, abs=1e-4)


def test_throughput_per_labeler_per_day(team):
    _plant(team)
    today = date.today()
    with team.ws.session() as s:
        rows = analytics.throughput(s, team.project_id)
        none = analytics.throughput(s, team.project_id, since=today + timedelta(days=2))
        with pytest.raises(ValidationError, match="swap them"):
            analytics.throughput(s, team.project_id, since=today, until=today - timedelta(1))
    by_user = {r["username"]: (r["tasks"], r["labels"]) for r in rows}
    # labeler: 3 submits + 1 resubmit (2 labels each) + the model task (labels kept there).
    assert by_user["labeler2"] == (1, 1)
    assert by_user["labeler"][0] == 5
    assert none == []


def test_median_time_per_label_per_tool(team):
    _plant(team)
    with team.ws.session() as s:
        rows = analytics.time_per_label(s, team.project_id)
    assert [r["tool"] for r in rows] == ["bbox"]
    # Per-label times: 5 s x 4 (labeler, 10 s / 2 labels), 3 s (labeler2), 0 s (model task).
    assert rows[0]["submits"] == 6
    assert rows[0]["median_seconds_per_label"] == pytest.approx(5.0)


def test_rejection_rate_and_turnaround(team):
    _plant(team)
    with team.ws.session() as s:
        rates = {r["username"]: r for r in analytics.rejection_rate(s, team.project_id)}
        turn = analytics.review_turnaround(s, team.project_id)
    assert (rates["labeler"]["reviewed"], rates["labeler"]["rejected"]) == (4, 1)
    assert rates["labeler"]["rejection_rate"] == pytest.approx(0.25)
    assert rates["labeler2"]["rejection_rate"] == 0.0
    assert turn["reviews"] == 5
    assert turn["median_seconds"] is not None and turn["median_seconds"] >= 0


def test_auto_label_acceptance(team):
    _plant(team)
    with team.ws.session() as s:
        out = analytics.auto_label_acceptance(s, team.project_id)
        pending = s.query(TaskAnnotationRow).filter(
            TaskAnnotationRow.source == "model", TaskAnnotationRow.model_outcome.is_(None)).count()
    assert (out["total"], out["accepted"], out["edited"], out["rejected"]) == (2, 1, 0, 1)
    assert out["accepted_rate"] == 0.5
    assert pending == 1  # asset 1's model box: its task was never submitted


def test_empty_project_analytics(team):
    with team.ws.session() as s:
        assert analytics.time_per_label(s, team.project_id) == []
        assert analytics.review_turnaround(s, team.project_id) == {
            "reviews": 0, "mean_seconds": None, "median_seconds": None, "p90_seconds": None}
        assert analytics.auto_label_acceptance(s, team.project_id)["total"] == 0
