"""Who works on what: explicit assignment, spreading N tasks per person, and "next task".

``next_task`` hands each labeler their next task and never gives one task to two people, even
when many ask at the same moment: on PostgreSQL the candidate row is locked with
``SELECT ... FOR UPDATE SKIP LOCKED`` (others skip it instead of waiting); on SQLite, where
writers take turns anyway, the claim is one guarded ``UPDATE ... WHERE assignee_id IS NULL
AND version = :v`` and a lost race moves on to the next candidate. Either way the claiming
``UPDATE`` returns the claimed row (``RETURNING``), so it is not read again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, insert, literal, select, update
from sqlalchemy.orm import Session

from labelwise.db.account_models import UserRow
from labelwise.db.workflow_models import ProjectRow, TaskEventRow, TaskRow
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.workflow.access import PROJECT_RANK
from labelwise.workflow.lifecycle import Actor, now, record_event, transition
from labelwise.workflow.projects import member_role

#: Statuses whose labeler may still change by assignment.
REASSIGNABLE = ("todo", "rejected", "skipped")
#: Statuses a reviewer may be assigned to (not yet reviewed).
REVIEWABLE = ("todo", "in_progress", "submitted", "rejected")
CHUNK = 900  # ids per IN (...) list, below SQLite's bound-parameter limit
ROLES = ("labeler", "reviewer")


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError(f"assign as {role!r}? choose one of {', '.join(ROLES)}")
    return role


def _check_member(session: Session, project: ProjectRow, user: UserRow, role: str) -> None:
    have = member_role(session, project, user)
    if have is None:
        raise ValidationError(
            f"{user.username!r} is not a member of project {project.name!r}; add them first "
            f"(`labelwise project add-member {project.name} {user.username} --role {role}`)"
        )
    if PROJECT_RANK[have] < PROJECT_RANK[role]:
        raise ValidationError(
            f"{user.username!r} is a {have} in project {project.name!r} and cannot be given "
            f"{role} work; change their role to {role} or manager first"
        )


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def _log(
    session: Session, task_ids: Sequence[int], actor: UserRow, action: str,
    payload: dict[str, Any],
) -> None:
    """One audit event per task, written by one INSERT ... SELECT per chunk."""
    ts = now()
    for chunk in _chunks(task_ids):
        rows = select(
            TaskRow.id, TaskRow.project_id, literal(actor.id), TaskRow.assignee_id,
            literal(action), TaskRow.status, TaskRow.status, TaskRow.version,
            literal(payload, TaskEventRow.payload.type), literal(ts.date()), literal(ts),
        ).where(TaskRow.id.in_(chunk))
        cols = ["task_id", "project_id", "user_id", "assignee_id", "action", "from_status",
                "to_status", "version", "payload", "day", "created_at"]
        session.execute(insert(TaskEventRow).from_select(cols, rows))


def assign(
    session: Session,
    project: ProjectRow,
    user: UserRow,
    asset_ids: Sequence[int],
    *,
    actor: UserRow,
    role: str = "labeler",
) -> int:
    """Assign the tasks of ``asset_ids`` to ``user`` as labeler or reviewer; all or nothing.

    Labeler assignment only moves tasks that are todo, rejected or skipped; others are listed
    in a ConflictError. Returns how many tasks were assigned.
    """
    _check_role(role)
    _check_member(session, project, user, role)
    wanted = sorted({int(a) for a in asset_ids})
    if not wanted:
        raise ValidationError("no asset ids given; pass the ids of the images to assign")
    found: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(wanted):
        for tid, aid, status in session.execute(
            select(TaskRow.id, TaskRow.asset_id, TaskRow.status).where(
                TaskRow.project_id == project.id, TaskRow.asset_id.in_(chunk))
        ):
            found[aid] = (tid, status)
    missing = [a for a in wanted if a not in found]
    if missing:
        raise NotFoundError(
            f"{len(missing)} asset id(s) are not in project {project.name!r}",
            problems=[f"asset {a}" for a in missing[:50]],
        )
    allowed = REASSIGNABLE if role == "labeler" else REVIEWABLE
    busy = [f"asset {a}: task {t} is {s}" for a, (t, s) in found.items() if s not in allowed]
    if busy:
        raise ConflictError(
            f"{len(busy)} task(s) cannot get a new {role} in their current status "
            f"(allowed: {', '.join(allowed)}); nothing was assigned",
            problems=busy[:50],
        )
    column = "assignee_id" if role == "labeler" else "reviewer_id"
    task_ids = [t for t, _s in found.values()]
    for chunk in _chunks(task_ids):
        session.execute(
            update(TaskRow).where(TaskRow.id.in_(chunk))
            .values({column: user.id, "version": TaskRow.version + 1, "updated_at": now()})
            .execution_options(synchronize_session=False)
        )
    _log(session, task_ids, actor, "assign", {"role": role, "user_id": user.id})
    return len(task_ids)


def spread(
    session: Session,
    project: ProjectRow,
    users: Sequence[UserRow],
    per_user: int,
    *,
    actor: UserRow,
    role: str = "labeler",
) -> dict[str, int]:
    """Give each user up to ``per_user`` unassigned tasks, in asset order; returns the counts."""
    _check_role(role)
    if per_user < 1:
        raise ValidationError(f"spread needs a positive number of tasks per person, got "
                              f"{per_user}")
    if not users:
        raise ValidationError("spread needs at least one user")
    for user in users:
        _check_member(session, project, user, role)
    column = TaskRow.assignee_id if role == "labeler" else TaskRow.reviewer_id
    statuses = ("todo",) if role == "labeler" else REVIEWABLE
    given: dict[str, int] = {}
    for user in users:
        q = (
            select(TaskRow.id)
            .where(TaskRow.project_id == project.id, TaskRow.status.in_(statuses),
                   column.is_(None))
            .order_by(TaskRow.id)
            .limit(per_user)
        )
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        ids = list(session.scalars(q))
        for chunk in _chunks(ids):
            session.execute(
                update(TaskRow).where(TaskRow.id.in_(chunk), column.is_(None))
                .values({column.key: user.id, "version": TaskRow.version + 1,
                         "updated_at": now()})
                .execution_options(synchronize_session=False)
            )
        _log(session, ids, actor, "assign", {"role": role, "user_id": user.id})
        given[user.username] = len(ids)
    return given


def next_task(session: Session, project: ProjectRow, actor: Actor) -> TaskRow | None:
    """The labeler's next task, started (in progress); None when the project has none left.

    Order: a task they already have in progress, then their rejected tasks, then tasks
    assigned to them, then the first unassigned todo task (claimed for them).
    """
    user = actor.user
    t = TaskRow
    order = case((t.status == "in_progress", 0), (t.status == "rejected", 1), else_=2)
    mine = session.scalar(
        select(t).where(t.project_id == project.id, t.assignee_id == user.id,
                        t.status.in_(("in_progress", "rejected", "todo")))
        .order_by(order, t.id).limit(1)
    )
    if mine is not None and mine.status == "in_progress":
        return mine
    if mine is not None:
        return transition(session, mine, actor, "start", version=mine.version)
    if session.get_bind().dialect.name == "postgresql":
        task = _claim_locked(session, project, user)
    else:
        task = _claim_guarded(session, project, user)
    if task is None:
        return None
    record_event(session, task, user, "start", "todo", payload={"claimed": True})
    return task


def _claim_values(user: UserRow) -> dict[str, Any]:
    ts = now()
    return {"assignee_id": user.id, "status": "in_progress", "version": TaskRow.version + 1,
            "started_at": ts, "updated_at": ts}


def _claim_update(session: Session, *where: Any, user: UserRow) -> TaskRow | None:
    """``UPDATE tasks ... WHERE <where> RETURNING tasks.*``: the claimed task, or None."""
    claim = (update(TaskRow).where(*where).values(**_claim_values(user))
             .returning(TaskRow))
    return session.scalars(claim, execution_options={"synchronize_session": False,
                                                     "populate_existing": True}).first()


def _claim_locked(session: Session, project: ProjectRow, user: UserRow) -> TaskRow | None:
    """PostgreSQL: in one statement, lock the first free row others have not locked, and
    take it."""
    t = TaskRow
    free = (
        select(t.id)
        .where(t.project_id == project.id, t.status == "todo", t.assignee_id.is_(None))
        .order_by(t.id).limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return _claim_update(session, t.id == free, user=user)


#: How many free candidates SQLite claims look at per round; users start at different ones.
CANDIDATES = 16


def _claim_guarded(session: Session, project: ProjectRow, user: UserRow) -> TaskRow | None:
    """SQLite: claim with a guarded UPDATE; a lost race tries the next candidate."""
    t = TaskRow
    while True:
        candidates = session.execute(
            select(t.id, t.version)
            .where(t.project_id == project.id, t.status == "todo", t.assignee_id.is_(None))
            .order_by(t.id).limit(CANDIDATES)
        ).all()
        if not candidates:
            return None
        start = user.id % len(candidates)  # spread concurrent users over the candidates
        for tid, version in candidates[start:] + candidates[:start]:
            won = _claim_update(session, t.id == tid, t.assignee_id.is_(None),
                                t.status == "todo", t.version == version, user=user)
            if won is not None:
                return won
