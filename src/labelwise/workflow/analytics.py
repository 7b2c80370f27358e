"""Project analytics: plain SQL aggregates over the audit log, each one index range.

Every function takes a project id and answers from ``tasks``, ``task_events`` or
``task_annotations`` through a covering index (see ``labelwise.db.workflow_models``), so they
stay fast on millions of events. Medians are read with ``ORDER BY ... OFFSET`` inside one
contiguous index range instead of sorting rows in Python.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from labelwise.db.account_models import UserRow
from labelwise.db.workflow_models import TaskAnnotationRow, TaskEventRow
from labelwise.errors import ValidationError
from labelwise.workflow.projects import project_counts

SUBMITS = ("submit", "resubmit")
REVIEWS = ("approve", "reject")
OUTCOMES = ("accepted", "edited", "rejected")


def progress(session: Session, project_id: int) -> dict[str, Any]:
    """Tasks per status and the share finished (approved or skipped)."""
    counts = project_counts(session, project_id)
    total = sum(counts.values())
    done = counts["approved"] + counts["skipped"]
    return {"total": total, "by_status": counts,
            "done_fraction": round(done / total, 4) if total else 0.0}


def _usernames(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return dict(session.execute(select(UserRow.id, UserRow.username).where(
        UserRow.id.in_(wanted))).all())


def _check_range(since: date | None, until: date | None) -> None:
    if since and until and since > until:
        raise ValidationError(f"since {since} is after until {until}; swap them")


def throughput(
    session: Session, project_id: int, *, since: date | None = None, until: date | None = None
) -> list[dict[str, Any]]:
    """Tasks and labels submitted per labeler per day (UTC), oldest day first."""
    _check_range(since, until)
    ev = TaskEventRow
    q = (
        select(ev.user_id, ev.day, func.count(), func.coalesce(func.sum(ev.num_labels), 0))
        .where(ev.project_id == project_id, ev.action.in_(SUBMITS))
        .group_by(ev.user_id, ev.day)
        .order_by(ev.day, ev.user_id)
    )
    if since:
        q = q.where(ev.day >= since)
    if until:
        q = q.where(ev.day <= until)
    rows = session.execute(q).all()
    names = _usernames(session, {r[0] for r in rows})
    return [{"user_id": u, "username": names.get(u), "day": d, "tasks": int(n),
             "labels": int(lb)} for u, d, n, lb in rows]


def _median(session: Session, where: list[Any], column: Any, n: int) -> float | None:
    """The median of ``column`` over ``n`` rows matching ``where``, read from its index."""
    if n == 0:
        return None
    q = select(column).where(*where).order_by(column).offset((n - 1) // 2).limit(2 - n % 2)
    values = [float(v) for v in session.scalars(q)]
    return sum(values) / len(values)


def time_per_label(session: Session, project_id: int) -> list[dict[str, Any]]:
    """Median active seconds per label for each tool (bbox, polygon, keypoints, category).

    Each submit contributes its cycle's active time divided by its number of labels.
    """
    ev = TaskEventRow
    counts = session.execute(
        select(ev.tool, func.count(), func.sum(ev.num_labels))
        .where(ev.project_id == project_id, ev.tool.is_not(None),
               ev.seconds_per_label.is_not(None))
        .group_by(ev.tool).order_by(ev.tool)
    ).all()
    out = []
    for tool, n, labels in counts:
        where = [ev.project_id == project_id, ev.tool == tool, ev.seconds_per_label.is_not(None)]
        median = _median(session, where, ev.seconds_per_label, int(n))
        out.append({"tool": tool, "submits": int(n), "labels": int(labels or 0),
                    "median_seconds_per_label": round(median, 3)})
    return out


def rejection_rate(session: Session, project_id: int) -> list[dict[str, Any]]:
    """Per labeler: reviews of their tasks, rejections, and the rejected share."""
    ev = TaskEventRow
    rejected = func.sum(case((ev.action == "reject", 1), else_=0))
    rows = session.execute(
        select(ev.assignee_id, func.count(), rejected)
        .where(ev.project_id == project_id, ev.action.in_(REVIEWS))
        .group_by(ev.assignee_id).order_by(ev.assignee_id)
    ).all()
    names = _usernames(session, {r[0] for r in rows})
    return [{"user_id": u, "username": names.get(u), "reviewed": int(n),
             "rejected": int(r or 0), "rejection_rate": round((r or 0) / n, 4) if n else 0.0}
            for u, n, r in rows]


def review_turnaround(session: Session, project_id: int) -> dict[str, Any]:
    """Seconds from submit to approve/reject: count, mean, median, 90th percentile."""
    ev = TaskEventRow
    where = [ev.project_id == project_id, ev.turnaround_seconds.is_not(None)]
    n, mean = session.execute(
        select(func.count(), func.avg(ev.turnaround_seconds)).where(*where)
    ).one()
    n = int(n)
    p90 = None
    if n:
        p90 = session.scalar(select(ev.turnaround_seconds).where(*where)
                             .order_by(ev.turnaround_seconds).offset(int(0.9 * (n - 1)))
                             .limit(1))
    median = _median(session, where, ev.turnaround_seconds, n)
    return {"reviews": n,
            "mean_seconds": round(float(mean), 3) if mean is not None else None,
            "median_seconds": round(median, 3) if median is not None else None,
            "p90_seconds": round(float(p90), 3) if p90 is not None else None}


def auto_label_acceptance(session: Session, project_id: int) -> dict[str, Any]:
    """Model pre-labels in submitted work: accepted as is, edited, or rejected (deleted)."""
    ta = TaskAnnotationRow
    counts = dict(session.execute(
        select(ta.model_outcome, func.count())
        .where(ta.project_id == project_id, ta.model_outcome.is_not(None))
        .group_by(ta.model_outcome)
    ).all())
    total = sum(counts.values())
    out: dict[str, Any] = {"total": total}
    for outcome in OUTCOMES:
        k = int(counts.get(outcome, 0))
        out[outcome] = k
        out[f"{outcome}_rate"] = round(k / total, 4) if total else 0.0
    return out
