"""Assignment: explicit, spread N per person, and next_task under real concurrency."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from labelwise.db.account_models import UserRow
from labelwise.db.models import AssetRow
from labelwise.db.workflow_models import ProjectRow, TaskEventRow, TaskRow
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.workflow import assignment, lifecycle, projects
from labelwise.workflow.access import project_role
from labelwise.workflow.lifecycle import Actor
from tests.workflow.conftest import add_users


def test_assign_sets_the_labeler_and_logs_it(team):
    assets = sorted(team.data.files)[:3]
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        n = assignment.assign(s, p, team.user(s, "labeler"), assets,
                              actor=team.user(s, "manager"))
        assert n == 3
        assert {team.task_for(s, a).assignee_id for a in assets} == {team.users["labeler"]}
        assert assignment.assign(s, p, team.user(s, "reviewer"), assets, role="reviewer",
                                 actor=team.user(s, "manager")) == 3
        assert {team.task_for(s, a).reviewer_id for a in assets} == {team.users["reviewer"]}
        logged = s.scalar(select(func.count()).where(TaskEventRow.action == "assign"))
        assert logged == 6


def test_assign_refuses_bad_requests_with_nothing_changed(team):
    assets = sorted(team.data.files)
    with team.ws.session() as s:
        p = s.get(ProjectRow, team.project_id)
        mgr = team.user(s, "manager")
        with pytest.raises(NotFoundError, match="1 asset id\\(s\\) are not in project") as err:
            assignment.assign(s, p, team.user(s, "labeler"), [assets[0], 99999], actor=mgr)
        assert err.value.problems == ["asset 99999"]
        with pytest.raises(ValidationError, match="'outsider' is not a member"):
            assignment.assign(s, p, team.user(s, "outsider"), assets[:1], actor=mgr)
        with pytest.raises(ValidationError, match="is a labeler .* cannot be given reviewer"):
            assignment.assign(s, p, team.user(s, "labeler"), assets[:1], role="reviewer",
                              actor=mgr)
        with pytest.raises(ValidationError, match="assign as 'boss'"):
            assignment.assign(s, p, team.user(s, "labeler"), assets[:1], role="boss", actor=mgr)
        with pytest.raises(ValidationError, match="no asset ids"):
            assignment.assign(s, p, team.user(s, "labeler"), [], actor=mgr)
        assignment.assign(s, p, team.user(s, "labeler"), assets[:1], actor=mgr)
        task = team.task_for(s, assets[0])
        lifecycle.transition(s, task, team.actor(s, "labeler"), "start", version=task.version)
        with pytest.raises(ConflictError, match="cannot get a new labeler") as err:
            assignment.assign(s, p, team.user(s, "labeler2"), assets[:2], actor=mgr)
        assert err.value.problems == [f"asset {assets[0]}: task {task.id} is in_progress"]
        assert team.task_for(s, assets[1]).assignee_id is None


def test_spread_gives_each_person_n_distinct_tasks(team):
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        given = assignment.spread(s, p, [team.user(s, "labeler"), team.user(s, "labeler2")], 3,
                                  actor=team.user(s, "manager"))
        assert given == {"labeler": 3, "labeler2": 3}
        owners = Counter(s.scalars(select(TaskRow.assignee_id).where(
            TaskRow.project_id == p.id)))
        assert owners == {team.users["labeler"]: 3, team.users["labeler2"]: 3, None: 1}
        # Only one unassigned task is left to spread.
        assert assignment.spread(s, p, [team.user(s, "labeler")], 5,
                                 actor=team.user(s, "manager")) == {"labeler": 1}
        with pytest.raises(ValidationError, match="positive number"):
            assignment.spread(s, p, [team.user(s, "labeler")], 0, actor=team.user(s, "manager"))


def test_next_task_prefers_own_work_then_claims(team):
    assets = sorted(team.data.files)
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assignment.assign(s, p, team.user(s, "labeler"), [assets[5]],
                          actor=team.user(s, "manager"))
        first = assignment.next_task(s, p, team.actor(s, "labeler"))
        assert first.asset_id == assets[5] and first.status == "in_progress"
        again = assignment.next_task(s, p, team.actor(s, "labeler"))
        assert again.id == first.id  # still in progress: the same task comes back
        lifecycle.transition(s, first, team.actor(s, "labeler"), "submit", version=first.version)
        claimed = assignment.next_task(s, p, team.actor(s, "labeler"))
        # One of the free tasks (SQLite spreads concurrent claims over the first few).
        assert claimed.asset_id in assets[:5] and claimed.assignee_id == team.users["labeler"]
        assert claimed.status == "in_progress"
        ev = s.scalars(select(TaskEventRow).where(TaskEventRow.task_id == claimed.id)).all()
        assert [(e.action, e.payload) for e in ev] == [("start", {"claimed": True})]


def test_next_task_returns_none_when_nothing_is_left(team):
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assignment.spread(s, p, [team.user(s, "labeler2")], 100, actor=team.user(s, "manager"))
        assert assignment.next_task(s, p, team.actor(s, "labeler")) is None


def _big_project(team, n_assets: int, n_users: int) -> tuple[int, list[int]]:
    with team.ws.session() as s, s.begin():
        s.add_all(AssetRow(dataset_id=team.data.dataset_id, path=f"bulk/{i}.png",
                           content_hash=f"{i:064d}", width=10, height=10, format="png",
                           size_bytes=1) for i in range(n_assets))
        s.flush()
        names = {f"worker{i}": "labeler" for i in range(n_users)}
        ids = add_users(s, names)
        p = projects.create_project(s, team.user(s, "manager"), name="big",
                                    dataset=team.data.name, import_labels=False)
        for uid in ids.values():
            projects.add_member(s, p, s.get(UserRow, uid), "labeler")
        return p.id, list(ids.values())


@pytest.mark.parametrize("n_threads", [8])
def test_concurrent_next_task_never_hands_out_a_task_twice(team, n_threads):
    """Real threads, one session each, racing for tasks until none are left."""
    project_id, user_ids = _big_project(team, n_assets=120, n_users=n_threads)
    with team.ws.session() as s:
        total = s.scalar(select(func.count()).where(TaskRow.project_id == project_id))
    got: dict[int, list[int]] = {uid: [] for uid in user_ids}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(uid: int) -> None:
        try:
            barrier.wait()
            while True:
                with team.ws.session() as s, s.begin():
                    user = s.get(UserRow, uid)
                    p = s.get(ProjectRow, project_id)
                    actor = Actor(user, project_role(s, user, project_id))
                    task = assignment.next_task(s, p, actor)
                    if task is None:
                        return
                    got[uid].append(task.id)
                    lifecycle.transition(s, task, actor, "submit", version=task.version)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(u,)) for u in user_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    handed = [tid for ids in got.values() for tid in ids]
    assert len(handed) == len(set(handed)) == total
    assert sum(1 for ids in got.values() if ids) > 1  # the work was really shared
    with team.ws.session() as s:
        submitted = s.scalar(select(func.count()).where(
            TaskRow.project_id == project_id, TaskRow.status == "submitted"))
        assert submitted == total
        per_user = dict(s.execute(select(TaskRow.assignee_id, func.count()).where(
            TaskRow.project_id == project_id).group_by(TaskRow.assignee_id)).all())
        assert per_user == {u: len(ids) for u, ids in got.items() if ids}
