"""Review: approve, reject with a reason, issue threads on labels or points, the review queue.

The queue lists submitted tasks; ordered by ``uncertainty`` it puts the labels an auto-label
model was least sure of first (then tasks without a score, oldest first), so reviewers spend
their time where mistakes are likeliest.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from labelwise.db.account_models import UserRow
from labelwise.db.models import AssetRow
from labelwise.db.workflow_models import (
    IssueCommentRow,
    ProjectRow,
    ReviewIssueRow,
    TaskAnnotationRow,
    TaskRow,
)
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.workflow import pages
from labelwise.workflow.access import get_task
from labelwise.workflow.lifecycle import Actor, now, transition

QUEUE_ORDERS = ("uncertainty", "id")
MAX_COMMENT = 10_000


def approve(session: Session, task: TaskRow, actor: Actor, *, version: int,
            comment: str | None = None) -> TaskRow:
    """Approve a submitted task (reviewers and managers); ``comment`` goes in the audit log."""
    return transition(session, task, actor, "approve", version=version, comment=comment)


def reject(session: Session, task: TaskRow, actor: Actor, *, version: int,
           reason: str) -> TaskRow:
    """Send a submitted task back to its labeler; ``reason`` tells them what to fix."""
    return transition(session, task, actor, "reject", version=version, reason=reason)


def review_queue(
    session: Session,
    project: ProjectRow,
    actor: Actor,
    *,
    order: str = "uncertainty",
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[TaskRow], str | None]:
    """Submitted tasks waiting for review, a page at a time.

    Reviewers see tasks assigned to them or to no reviewer; managers see all. ``order``:
    ``uncertainty`` (most uncertain first, unscored last) or ``id``.
    """
    if order not in QUEUE_ORDERS:
        raise ValidationError(f"unknown queue order {order!r}; choose one of "
                              f"{', '.join(QUEUE_ORDERS)}")
    t = TaskRow
    base = select(t).where(t.project_id == project.id, t.status == "submitted")
    if actor.role == "reviewer":
        base = base.where(or_(t.reviewer_id.is_(None), t.reviewer_id == actor.user.id))
    if order == "id":
        pos = pages.decode(cursor, keys=("id",))
        q = base.where(t.id > (pos["id"] if pos else 0)).order_by(t.id).limit(limit + 1)
        rows = list(session.scalars(q))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, pages.encode({"id": rows[-1].id}) if more else None
    pos = pages.decode(cursor, keys=("u", "id"))
    rows: list[TaskRow] = []
    if pos is None or pos["u"] is not None:
        q = base.where(t.uncertainty.is_not(None))
        if pos is not None:
            q = q.where(or_(t.uncertainty < pos["u"],
                            and_(t.uncertainty == pos["u"], t.id < pos["id"])))
        rows = list(session.scalars(
            q.order_by(t.uncertainty.desc(), t.id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        after = pos["id"] if pos is not None and pos["u"] is None else 0
        rows += list(session.scalars(
            base.where(t.uncertainty.is_(None), t.id > after).order_by(t.id)
            .limit(limit + 1 - len(rows))))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = pages.encode({"u": rows[-1].uncertainty, "id": rows[-1].id}) if more else None
    return rows, nxt


# -- issues -------------------------------------------------------------------------------------
def _body(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError("a comment needs some text")
    if len(text) > MAX_COMMENT:
        raise ValidationError(f"a comment may have at most {MAX_COMMENT} characters, got "
                              f"{len(text)}")
    return text


def open_issue(
    session: Session,
    task: TaskRow,
    user: UserRow,
    *,
    body: str,
    annotation_id: int | None = None,
    x: float | None = None,
    y: float | None = None,
) -> ReviewIssueRow:
    """Open a thread on one of the task's labels, or on a point (x, y) of its image."""
    text = _body(body)
    if (annotation_id is None) == (x is None or y is None):
        raise ValidationError(
            "anchor an issue to exactly one thing: a label (annotation_id) or a point (x and y)"
        )
    if annotation_id is not None:
        label = session.get(TaskAnnotationRow, annotation_id)
        if label is None or label.task_id != task.id or label.deleted:
            raise NotFoundError(f"task {task.id} has no label with id {annotation_id}; reload "
                                "the task for its current label ids")
    else:
        asset = session.get(AssetRow, task.asset_id)
        if not (math.isfinite(x) and math.isfinite(y)
                and 0 <= x <= asset.width and 0 <= y <= asset.height):
            raise ValidationError(f"point ({x}, {y}) lies outside the {asset.width}x"
                                  f"{asset.height} image of task {task.id}")
    issue = ReviewIssueRow(task_id=task.id, project_id=task.project_id,
                           annotation_id=annotation_id, x=x, y=y, status="open",
                           created_by=user.id, created_at=now())
    session.add(issue)
    session.flush()
    session.add(IssueCommentRow(issue_id=issue.id, user_id=user.id, body=text,
                                created_at=now()))
    session.flush()
    return issue


def get_issue(session: Session, user: UserRow, issue_id: int) -> tuple[ReviewIssueRow, TaskRow]:
    """An issue on a task the user may see (else not found)."""
    issue = session.get(ReviewIssueRow, issue_id)
    if issue is None:
        raise NotFoundError(f"no review issue with id {issue_id}")
    try:
        task, _project, _role = get_task(session, user, issue.task_id)
    except NotFoundError:
        raise NotFoundError(f"no review issue with id {issue_id}") from None
    return issue, task


def add_comment(session: Session, issue: ReviewIssueRow, user: UserRow,
                body: str) -> IssueCommentRow:
    row = IssueCommentRow(issue_id=issue.id, user_id=user.id, body=_body(body),
                          created_at=now())
    session.add(row)
    session.flush()
    return row


def set_issue_status(session: Session, issue: ReviewIssueRow, user: UserRow,
                     status: str) -> ReviewIssueRow:
    """Resolve (``resolved``) or reopen (``open``) an issue."""
    if status not in ("open", "resolved"):
        raise ValidationError(f"issue status {status!r}? choose open or resolved")
    if issue.status == status:
        raise ConflictError(f"issue {issue.id} is already {status}")
    issue.status = status
    issue.resolved_by = user.id if status == "resolved" else None
    issue.resolved_at = now() if status == "resolved" else None
    session.flush()
    return issue


def task_issues(session: Session, task_id: int) -> list[dict[str, Any]]:
    """The task's issues with their comments, oldest first."""
    issues = list(session.scalars(
        select(ReviewIssueRow).where(ReviewIssueRow.task_id == task_id)
        .order_by(ReviewIssueRow.id)))
    comments: dict[int, list[IssueCommentRow]] = {i.id: [] for i in issues}
    if issues:
        for c in session.scalars(
            select(IssueCommentRow).where(IssueCommentRow.issue_id.in_(list(comments)))
            .order_by(IssueCommentRow.issue_id, IssueCommentRow.id)
        ):
            comments[c.issue_id].append(c)
    return [issue_public(i, comments[i.id]) for i in issues]


def issue_public(issue: ReviewIssueRow, comments: list[IssueCommentRow]) -> dict[str, Any]:
    return {
        "id": issue.id, "task_id": issue.task_id, "annotation_id": issue.annotation_id,
        "x": issue.x, "y": issue.y, "status": issue.status, "created_by": issue.created_by,
        "resolved_by": issue.resolved_by, "created_at": issue.created_at,
        "resolved_at": issue.resolved_at,
        "comments": [{"id": c.id, "user_id": c.user_id, "body": c.body,
                      "created_at": c.created_at} for c in comments],
    }


def issue_comments(session: Session, issue_id: int) -> list[IssueCommentRow]:
    return list(session.scalars(select(IssueCommentRow).where(
        IssueCommentRow.issue_id == issue_id).order_by(IssueCommentRow.id)))
