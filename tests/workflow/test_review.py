"""Review: the queue ordered by uncertainty, issues anchored to labels or points, comments."""

from __future__ import annotations

import pytest

from labelwise.db.workflow_models import ProjectRow
from labelwise.errors import ConflictError, LabelwiseError, NotFoundError, ValidationError
from labelwise.workflow import assignment, lifecycle, review
from labelwise.workflow.access import PermissionDeniedError


def _submit_all(team, assets, who="labeler"):
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assignment.assign(s, p, team.user(s, who), assets, actor=team.user(s, "manager"))
        lab = team.actor(s, who)
        for a in assets:
            task = team.task_for(s, a)
            lifecycle.transition(s, task, lab, "start", version=task.version)
            lifecycle.transition(s, task, lab, "submit", version=task.version)


def test_queue_orders_by_uncertainty_then_unscored_by_id(team):
    assets = sorted(team.data.files)
    _submit_all(team, assets)
    with team.ws.session() as s:
        p = s.get(ProjectRow, team.project_id)
        rev = team.actor(s, "reviewer")
        seen, cursor = [], None
        while True:
            rows, cursor = review.review_queue(s, p, rev, cursor=cursor, limit=2)
            seen += [(r.asset_id, r.uncertainty) for r in rows]
            if cursor is None:
                break
        # Uncertainty 0.6 (asset 0), 0.3 (asset 1), then the rest by id.
        assert [a for a, _u in seen] == [assets[0], assets[1], *assets[2:]]
        by_id, _ = review.review_queue(s, p, rev, order="id", limit=100)
        assert [r.asset_id for r in by_id] == assets
        with pytest.raises(ValidationError, match="unknown queue order 'random'"):
            review.review_queue(s, p, rev, order="random")
        with pytest.raises(LabelwiseError, match="invalid cursor"):
            review.review_queue(s, p, rev, cursor="garbage!")


def test_reviewers_see_their_own_and_unassigned_reviews(team):
    assets = sorted(team.data.files)[:3]
    _submit_all(team, assets)
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        from labelwise.workflow import projects

        projects.add_member(s, p, team.user(s, "labeler2"), "reviewer")
        assignment.assign(s, p, team.user(s, "labeler2"), assets[:1], role="reviewer",
                          actor=team.user(s, "manager"))
        mine, _ = review.review_queue(s, p, team.actor(s, "reviewer"), order="id")
        assert [r.asset_id for r in mine] == assets[1:]
        task = team.task_for(s, assets[0])
        with pytest.raises(PermissionDeniedError, match="another reviewer"):
            review.approve(s, task, team.actor(s, "reviewer"), version=task.version)
        review.approve(s, task, team.actor(s, "labeler2"), version=task.version)
        assert task.status == "approved"


def test_issues_anchor_to_a_label_or_a_point_and_resolve(team):
    asset = sorted(team.data.files)[1]  # has one imported box and one model box
    _submit_all(team, [asset])
    with team.ws.session() as s, s.begin():
        task = team.task_for(s, asset)
        reviewer = team.user(s, "reviewer")
        label = lifecycle.task_labels(s, task.id)[0]
        on_label = review.open_issue(s, task, reviewer, body="wrong class?",
                                     annotation_id=label.id)
        on_point = review.open_issue(s, task, reviewer, body="missed a cat here", x=10, y=20)
        review.add_comment(s, on_point, team.user(s, "labeler"), "fixed")
        review.set_issue_status(s, on_point, reviewer, "resolved")
        with pytest.raises(ConflictError, match="already resolved"):
            review.set_issue_status(s, on_point, reviewer, "resolved")
        threads = review.task_issues(s, task.id)
        assert [(t["annotation_id"], t["x"], t["status"]) for t in threads] == [
            (label.id, None, "open"), (None, 10, "resolved")]
        assert [c["body"] for c in threads[1]["comments"]] == ["missed a cat here", "fixed"]
        assert on_label.id != on_point.id


def test_bad_issues_are_refused(team):
    asset = sorted(team.data.files)[1]
    _submit_all(team, [asset])
    with team.ws.session() as s:
        task = team.task_for(s, asset)
        u = team.user(s, "reviewer")
        with pytest.raises(ValidationError, match="exactly one thing"):
            review.open_issue(s, task, u, body="x")
        with pytest.raises(ValidationError, match="exactly one thing"):
            review.open_issue(s, task, u, body="x", annotation_id=1, x=1, y=1)
        with pytest.raises(ValidationError, match="outside the"):
            review.open_issue(s, task, u, body="x", x=-5, y=1)
        with pytest.raises(NotFoundError, match="no label with id 777777"):
            review.open_issue(s, task, u, body="x", annotation_id=777777)
        with pytest.raises(ValidationError, match="needs some text"):
            review.open_issue(s, task, u, body="   ", x=1, y=1)
        issue = review.open_issue(s, task, u, body="ok", x=1, y=1)
        s.flush()
        with pytest.raises(NotFoundError, match="no review issue"):
            review.get_issue(s, team.user(s, "labeler2"), issue.id)  # not their task
        assert review.get_issue(s, team.user(s, "labeler"), issue.id)[0].id == issue.id
