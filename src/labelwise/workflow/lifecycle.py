"""The label lifecycle of a task, with optimistic concurrency and an audit log.

::

    todo --start--> in_progress --submit--> submitted --approve--> approved
      |                 |   ^                   |
      |                 |   +------start--- rejected <--reject--+
      +------skip-------+--skip--> skipped
    skipped, approved --reopen--> todo

A submit after a review (a rejection, or an approval a manager reopened) is recorded as
``resubmit``. Every change names the version it
was made against; the UPDATE only applies when the row still has that version, so two people
acting on the same task at once never lose a change: the later one gets a
``StaleVersionError`` (409) carrying the current version. Each change writes a
``task_events`` row. A submit records what became of each model pre-label in the task; an
approval settles the dataset's pending Auto-Label pre-labels the task's came from
(``settle_prelabels``), in the same transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from labelwise.db.account_models import UserRow
from labelwise.db.autolabel_models import PrelabelRow
from labelwise.db.models import AnnotationRow, AssetRow, LabelClassRow, LabelSchemaRow
from labelwise.db.workflow_models import (
    ProjectRow,
    TaskAnnotationRow,
    TaskEventRow,
    TaskRow,
)
from labelwise.errors import ConflictError, ValidationError
from labelwise.workflow.access import PROJECT_RANK, PermissionDeniedError
from labelwise.workflow.labels import (
    label_columns,
    label_fingerprint,
    main_tool,
    row_geometry,
    validate_labels,
)

#: action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("todo", "rejected"), "in_progress"),
    "submit": (("in_progress",), "submitted"),
    "approve": (("submitted",), "approved"),
    "reject": (("submitted",), "rejected"),
    "skip": (("todo", "in_progress"), "skipped"),
    "reopen": (("skipped", "approved"), "todo"),
}
#: The least project role each action needs; labeling actions also need to be the assignee.
ACTION_ROLE = {"start": "labeler", "submit": "labeler", "skip": "labeler", "save": "labeler",
               "approve": "reviewer", "reject": "reviewer", "reopen": "manager"}
#: Longest active time one report may carry (a day): more is a client bug, not labeling.
MAX_ACTIVE_SECONDS = 86_400.0


class StaleVersionError(ConflictError):
    """The task changed since the client read it; ``current_version`` is what it is now."""

    def __init__(self, task_id: int, expected: int, current: int, status: str) -> None:
        self.task_id = task_id
        self.current_version = current
        self.current_status = status
        super().__init__(
            f"task {task_id} was changed by someone else (you sent version {expected}, it is "
            f"now version {current}, status {status}); reload the task and apply your change "
            "again"
        )


@dataclass(frozen=True)
class Actor:
    """Who acts, with their effective role in the task's project."""

    user: UserRow
    role: str


def now() -> datetime:
    return datetime.now(UTC)


def _aware(ts: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they are stored in UTC."""
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def check_seconds(active_seconds: float | None) -> float | None:
    if active_seconds is None:
        return None
    value = float(active_seconds)
    if not math.isfinite(value) or value < 0 or value > MAX_ACTIVE_SECONDS:
        raise ValidationError(
            f"active_seconds {active_seconds!r} must be a number of seconds from 0 to "
            f"{MAX_ACTIVE_SECONDS:g} (the time actively spent since the last save)"
        )
    return value


def _check_actor(task: TaskRow, actor: Actor, action: str) -> None:
    need = ACTION_ROLE[action]
    if PROJECT_RANK[actor.role] < PROJECT_RANK[need]:
        raise PermissionDeniedError(f"{action} needs the {need} role in the project; you are a "
                             f"{actor.role}")
    if need == "labeler" and actor.role != "manager":
        if task.assignee_id is not None and task.assignee_id != actor.user.id:
            raise PermissionDeniedError(f"task {task.id} is assigned to someone else; only its "
                                 "assignee or a project manager may " + action + " it")
        if task.assignee_id is None:
            raise PermissionDeniedError(f"task {task.id} is not assigned to you; get work with "
                                 "POST /api/projects/{id}/tasks/next")
    if (need == "reviewer" and actor.role == "reviewer" and task.reviewer_id is not None
            and task.reviewer_id != actor.user.id):
        raise PermissionDeniedError(f"task {task.id} is assigned to another reviewer")


def _guarded_update(
    session: Session, task: TaskRow, version: int, statuses: tuple[str, ...],
    values: dict[str, Any], action: str,
) -> None:
    """Apply ``values`` (plain values) only if the task still has ``version`` and one of
    ``statuses``; the in-memory task follows without another query."""
    ts = now()
    tasks = TaskRow.__table__  # a Core statement: the ORM has nothing to track here
    result = session.execute(
        update(tasks)
        .where(tasks.c.id == task.id, tasks.c.version == version, tasks.c.status.in_(statuses))
        .values(version=version + 1, updated_at=ts, **values)
    )
    if result.rowcount == 1:
        for key, value in {**values, "version": version + 1, "updated_at": ts}.items():
            set_committed_value(task, key, value)
        return
    session.refresh(task)
    if task.version != version:
        raise StaleVersionError(task.id, version, task.version, task.status)
    raise ConflictError(
        f"task {task.id} is {task.status}; {action} needs a task that is "
        f"{' or '.join(statuses)}"
    )


def record_event(
    session: Session, task: TaskRow, user: UserRow | None, action: str, from_status: str,
    **fields: Any,
) -> None:
    """Append one row to the audit log, after the task row changed."""
    ts = now()
    session.execute(
        insert(TaskEventRow.__table__).values(  # Core: no ORM bookkeeping for a log row
            task_id=task.id, project_id=task.project_id, user_id=user.id if user else None,
            assignee_id=task.assignee_id, action=action, from_status=from_status,
            to_status=task.status, version=task.version, day=ts.date(), created_at=ts,
            payload=fields.pop("payload", None) or {}, **fields,
        )
    )


def transition(
    session: Session,
    task: TaskRow,
    actor: Actor,
    action: str,
    *,
    version: int,
    active_seconds: float | None = None,
    reason: str | None = None,
    comment: str | None = None,
) -> TaskRow:
    """Move ``task`` along the lifecycle by ``action``; returns the task at its new version.

    ``version`` is the version the client saw. Reject needs a ``reason``; any action may
    carry a ``comment`` for the audit log.
    """
    if action not in TRANSITIONS:
        raise ValidationError(f"unknown action {action!r}; choose one of "
                              f"{', '.join(TRANSITIONS)}")
    statuses, _to = TRANSITIONS[action]
    seconds = check_seconds(active_seconds)
    _check_actor(task, actor, action)
    if task.version != version:
        raise StaleVersionError(task.id, version, task.version, task.status)
    reason = (reason or "").strip()
    if action == "reject" and not reason:
        raise ValidationError(f"rejecting task {task.id} needs a reason the labeler can act on")
    before = task.status
    reviewed_before = task.reviewed_at is not None
    stats = _label_stats(session, task) if action == "submit" else None
    values, fields = _effects(task, actor, action, seconds, stats)
    values["status"] = TRANSITIONS[action][1]
    _guarded_update(session, task, version, statuses, values, action)
    if action == "approve":
        settle_prelabels(session, task)
    if stats is not None:
        if stats.model_labels:  # model labels exist only when the project imported them
            _settle_model_labels(session, task)
        if reviewed_before:  # a submit after a review sent it back
            action = "resubmit"
    payload: dict[str, Any] = {"reason": reason} if reason else {}
    if comment and comment.strip():
        payload["comment"] = comment.strip()[:10_000]
    record_event(session, task, actor.user, action, before, active_seconds=seconds,
                 payload=payload, **fields)
    return task


def _effects(
    task: TaskRow, actor: Actor, action: str, seconds: float | None, stats: LabelStats | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column changes for the task and extra fields for its event (``stats``: on submit)."""
    ts = now()
    values: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    if action == "start":
        values = {"started_at": ts, "assignee_id": task.assignee_id or actor.user.id}
    elif action == "submit":
        cycle = (task.pending_seconds or 0.0) + (seconds or 0.0)
        n = stats.count
        values = {"submitted_at": ts, "pending_seconds": 0.0}
        fields = {"cycle_seconds": cycle, "num_labels": n, "tool": stats.tool,
                  "seconds_per_label": cycle / n if n else None}
    elif action in ("approve", "reject"):
        values = {"reviewed_at": ts, "reviewer_id": task.reviewer_id or actor.user.id}
        submitted = _aware(task.submitted_at)
        if submitted is not None:
            fields = {"turnaround_seconds": max(0.0, (ts - submitted).total_seconds())}
    elif action == "skip" and seconds:
        values = {"pending_seconds": (task.pending_seconds or 0.0) + seconds}
    return values, fields


@dataclass(frozen=True)
class LabelStats:
    """A task's labels at submit: how many, the main tool, whether any came from a model."""

    count: int
    tool: str | None
    model_labels: bool


def _label_stats(session: Session, task: TaskRow) -> LabelStats:
    """One query over all the task's labels, deleted model labels included."""
    ta = TaskAnnotationRow
    rows = session.execute(
        select(LabelClassRow.kind, LabelClassRow.tool, ta.deleted,
               ta.model_fingerprint.is_not(None))
        .join(ta, ta.class_id == LabelClassRow.id)
        .where(ta.task_id == task.id)
    ).all()
    kept = [(kind, tool) for kind, tool, deleted, _model in rows if not deleted]
    return LabelStats(count=len(kept), tool=main_tool(kept),
                      model_labels=any(model for *_rest, model in rows))


def _settle_model_labels(session: Session, task: TaskRow) -> None:
    """Record for each model pre-label whether it was accepted as is, edited or rejected."""
    ta = TaskAnnotationRow
    outcome = case(
        (ta.deleted.is_(True), "rejected"),
        (ta.fingerprint == ta.model_fingerprint, "accepted"),
        else_="edited",
    )
    session.execute(
        update(ta)
        .where(ta.task_id == task.id, ta.model_fingerprint.is_not(None))
        .values(model_outcome=outcome)
        .execution_options(synchronize_session=False)
    )


# -- pre-label outcomes -----------------------------------------------------------------------
def _family(kind: str, tool: str | None) -> str:
    """The kind of model that proposes labels of this class: a category (or multilabel)
    model category labels, a keypoints model keypoints, a boxes model the other objects."""
    if kind == "category":
        return "category"
    return "keypoints" if tool == "keypoints" else "object"


@dataclass(frozen=True)
class TaskLabel:
    """One label of an approved task, as far as pre-label outcomes care.

    ``run_id``: the pending pre-label run it was copied from (None for labels no pending
    run proposed); ``added``: drawn by a labeler in this project.
    """

    label_id: int
    family: str
    is_model: bool
    deleted: bool
    unchanged: bool
    added: bool
    run_id: int | None


def prelabel_outcomes(labels: list[TaskLabel]) -> dict[int, str]:
    """The review outcome of each pending pre-label run the task's model labels came from.

    ``rejected``: every model label of the run was deleted; ``accepted``: all kept as they
    were and no label of the same family added; ``edited``: anything in between.
    """
    by_run: dict[int, dict[int, TaskLabel]] = {}
    for label in labels:
        if label.is_model and label.run_id is not None:
            by_run.setdefault(label.run_id, {})[label.label_id] = label
    added = {lb.family for lb in labels if lb.added and not lb.is_model}
    outcomes = {}
    for run_id, own in by_run.items():
        kept = [lb for lb in own.values() if not lb.deleted]
        families = {lb.family for lb in own.values()}
        as_proposed = len(kept) == len(own) and all(lb.unchanged for lb in kept)
        if not kept:
            outcomes[run_id] = "rejected"
        elif as_proposed and not families & added:
            outcomes[run_id] = "accepted"
        else:
            outcomes[run_id] = "edited"
    return outcomes


def settle_prelabels(session: Session, task: TaskRow) -> dict[int, str]:
    """Record an approved task's verdict on the dataset's pending pre-labels of its image.

    Settled at approve, not at submit: a submit is the labeler's proposal that review may
    send back, while a pre-label's status decides whether its model labels train the next
    version (``training_data.trusted``), so only a reviewer's approval may set it. Labels
    cannot change between submit and approve (saving needs ``in_progress``). Nothing copies
    task labels into the dataset; approved work leaves a project through exports.

    A task's model label names the run it came from (``prelabel_run_id``, copied with it):
    only that run's pre-label is settled, and only while it is pending, not one of a run
    that replaced it since. A rejected run's model labels
    are deleted from the dataset, as ``labelwise review reject`` does, so the next run
    pre-labels the image anew instead of stacking on them. Only pending pre-labels change:
    a verdict reached first (``review accept``, an earlier approval) stands.
    Returns {run id: outcome}.
    """
    outcomes = prelabel_outcomes(_task_labels_with_runs(session, task))
    if not outcomes:
        return outcomes
    p = PrelabelRow
    session.execute(
        update(p)
        .where(p.asset_id == task.asset_id, p.run_id.in_(list(outcomes)), p.status == "pending")
        .values(status=case(outcomes, value=p.run_id))
        .execution_options(synchronize_session=False)
    )
    rejected = [run for run, outcome in outcomes.items() if outcome == "rejected"]
    if rejected:
        # Only pre-labels that are rejected now: one settled otherwise meanwhile keeps its
        # verdict (the UPDATE skipped it) and its labels.
        now_rejected = select(p.run_id).where(p.asset_id == task.asset_id,
                                              p.run_id.in_(rejected), p.status == "rejected")
        session.execute(
            delete(AnnotationRow)
            .where(AnnotationRow.asset_id == task.asset_id, AnnotationRow.source == "model",
                   AnnotationRow.prelabel_run_id.in_(now_rejected))
            .execution_options(synchronize_session=False)
        )
    return outcomes


def _task_labels_with_runs(session: Session, task: TaskRow) -> list[TaskLabel]:
    """One query: the task's labels, each model label with the pending run that proposed it."""
    ta, p = TaskAnnotationRow, PrelabelRow
    rows = session.execute(
        select(ta.id, LabelClassRow.kind, LabelClassRow.tool, ta.model_fingerprint,
               ta.fingerprint, ta.deleted, ta.created_by, p.run_id)
        .join(LabelClassRow, LabelClassRow.id == ta.class_id)
        .outerjoin(p, (p.run_id == ta.prelabel_run_id) & (p.asset_id == task.asset_id)
                   & (p.status == "pending") & ta.model_fingerprint.is_not(None))
        .where(ta.task_id == task.id)
    ).all()
    return [
        TaskLabel(label_id=lid, family=_family(kind, tool), is_model=model_fp is not None,
                  deleted=bool(deleted), unchanged=fp == model_fp,
                  added=created_by is not None, run_id=run_id)
        for lid, kind, tool, model_fp, fp, deleted, created_by, run_id in rows
    ]


# -- saving labels ------------------------------------------------------------------------------
def save_labels(
    session: Session,
    task: TaskRow,
    actor: Actor,
    *,
    version: int,
    labels: list[dict[str, Any]],
    active_seconds: float | None = None,
) -> TaskRow:
    """Replace the task's labels with ``labels`` (all of them, as the editor holds them).

    A label with an ``id`` updates that label; one without is new; a stored label left out is
    deleted (model pre-labels are only marked deleted, to count them as rejected). The task
    must be in progress; the save bumps its version like any change.
    """
    seconds = check_seconds(active_seconds)
    _check_actor(task, actor, "save")
    if task.version != version:
        raise StaleVersionError(task.id, version, task.version, task.status)
    project = session.get(ProjectRow, task.project_id)
    asset = session.get(AssetRow, task.asset_id)
    multi_label, classes = _schema_classes(session, project.schema_id)
    where = f"task {task.id} (asset {asset.path!r})"
    validate_labels(labels, classes, width=asset.width, height=asset.height,
                    multi_label=multi_label, where=where)
    ta = TaskAnnotationRow
    stored = {r.id: r for r in session.scalars(
        select(ta).where(ta.task_id == task.id, ta.deleted.is_(False)))}
    unknown = [lb["id"] for lb in labels if lb.get("id") is not None and lb["id"] not in stored]
    if unknown:
        raise ValidationError(
            f"{where}: label id(s) {unknown} are not labels of this task; leave 'id' out for "
            "new labels and reload the task to get the current ids"
        )
    pending = (task.pending_seconds or 0.0) + (seconds or 0.0)
    _guarded_update(session, task, version, ("in_progress",), {"pending_seconds": pending},
                    "saving labels")
    _write_labels(session, task, actor.user, labels, stored)
    record_event(session, task, actor.user, "save", "in_progress", active_seconds=seconds,
                 num_labels=len(labels))
    return task


def _schema_classes(session: Session, schema_id: int) -> tuple[bool, dict[int, LabelClassRow]]:
    """The schema's multi_label flag and its classes by id, in one query."""
    rows = session.execute(
        select(LabelSchemaRow.multi_label, LabelClassRow)
        .outerjoin(LabelClassRow, LabelClassRow.schema_id == LabelSchemaRow.id)
        .where(LabelSchemaRow.id == schema_id)
    ).all()
    return bool(rows and rows[0][0]), {c.id: c for _m, c in rows if c is not None}


def _write_labels(
    session: Session, task: TaskRow, user: UserRow, labels: list[dict[str, Any]],
    stored: dict[int, TaskAnnotationRow],
) -> None:
    ts = now()
    kept: set[int] = set()
    for label in labels:
        cols = label_columns(label)
        fp = label_fingerprint(cols["class_id"], row_geometry(cols))
        row = stored.get(label.get("id")) if label.get("id") is not None else None
        if row is None:
            session.add(TaskAnnotationRow(
                task_id=task.id, project_id=task.project_id, source="human", fingerprint=fp,
                created_by=user.id, created_at=ts, updated_at=ts, deleted=False, **cols,
            ))
            continue
        kept.add(row.id)
        if row.fingerprint != fp:
            for key, value in cols.items():
                setattr(row, key, value)
            row.fingerprint = fp
            row.updated_at = ts
    gone = [r for rid, r in stored.items() if rid not in kept]
    model_gone = [r.id for r in gone if r.model_fingerprint is not None]
    human_gone = [r.id for r in gone if r.model_fingerprint is None]
    ta = TaskAnnotationRow
    if model_gone:
        session.execute(update(ta).where(ta.id.in_(model_gone)).values(deleted=True,
                                                                      updated_at=ts))
    if human_gone:
        session.execute(delete(ta).where(ta.id.in_(human_gone)))
    session.flush()


def task_labels(session: Session, task_id: int) -> list[TaskAnnotationRow]:
    """The task's current labels in id order."""
    ta = TaskAnnotationRow
    return list(session.scalars(
        select(ta).where(ta.task_id == task_id, ta.deleted.is_(False)).order_by(ta.id)))


def task_events(
    session: Session, task_id: int, *, after: int = 0, limit: int = 100
) -> list[TaskEventRow]:
    ev = TaskEventRow
    return list(session.scalars(
        select(ev).where(ev.task_id == task_id, ev.id > after).order_by(ev.id).limit(limit)))


def count_labels(session: Session, task_id: int) -> int:
    ta = TaskAnnotationRow
    return session.scalar(
        select(func.count()).where(ta.task_id == task_id, ta.deleted.is_(False))) or 0


def list_tasks(
    session: Session,
    project_id: int,
    *,
    after: int = 0,
    limit: int = 100,
    status: str | None = None,
    assignee_id: int | None = None,
) -> list[TaskRow]:
    """A keyset page of a project's tasks in id order (``limit`` + 1 rows tell if more)."""
    q = select(TaskRow).where(TaskRow.project_id == project_id, TaskRow.id > after)
    if assignee_id is not None:
        q = q.where(TaskRow.assignee_id == assignee_id)
    if status is not None:
        q = q.where(TaskRow.status == status)
    return list(session.scalars(q.order_by(TaskRow.id).limit(limit)))
