"""Review: the queue, approve and reject, issue threads with comments."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from labelwise.server.deps import PageCursor, PageLimit, SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import Page
from labelwise.server.workflow_schemas import (
    CommentIn,
    CommentPublic,
    IssueCreate,
    IssuePublic,
    IssueStatusIn,
    RejectIn,
    StaleResponse,
    TaskPublic,
    TransitionIn,
)
from labelwise.server.workflow_deps import IssueMember, ProjectReviewer, TaskMember, TaskReviewer
from labelwise.server.workflow_views import task_public
from labelwise.workflow import review

router = APIRouter(prefix="/api", tags=["review"], responses=error_responses(401, 503))

STALE = {409: {"model": StaleResponse, "description": "Stale version, or not submitted."}}


@router.get(
    "/projects/{project_id}/review-queue",
    summary="Submitted tasks waiting for review",
    description="order=uncertainty (default) puts the tasks an auto-label model was least "
    "sure of first, unscored ones after by id; order=id is oldest first. Reviewers see tasks "
    "assigned to them or to no reviewer; managers see all.",
    responses=error_responses(400, 403, 404, 422),
)
def review_queue(
    access: ProjectReviewer,
    session: SessionDep,
    order: Literal["uncertainty", "id"] = "uncertainty",
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> Page[TaskPublic]:
    rows, nxt = review.review_queue(session, access.project, access.actor, order=order,
                                    cursor=cursor, limit=limit)
    return Page[TaskPublic](items=[task_public(t) for t in rows], next_cursor=nxt)


@router.post(
    "/tasks/{task_id}/approve",
    summary="Approve a submitted task",
    description="Reviewers and managers; comment goes in the audit log.",
    responses={**error_responses(403, 404, 422), **STALE},
)
def approve(access: TaskReviewer, body: TransitionIn, session: SessionDep) -> TaskPublic:
    with session.begin():
        review.approve(session, access.task, access.actor, version=body.version,
                       comment=body.comment)
        return task_public(access.task)


@router.post(
    "/tasks/{task_id}/reject",
    summary="Send a submitted task back with a reason",
    responses={**error_responses(403, 404, 422), **STALE},
)
def reject(access: TaskReviewer, body: RejectIn, session: SessionDep) -> TaskPublic:
    with session.begin():
        review.reject(session, access.task, access.actor, version=body.version,
                      reason=body.reason)
        return task_public(access.task)


@router.get(
    "/tasks/{task_id}/issues",
    summary="The task's review issues with their comments",
    responses=error_responses(404, 422),
)
def list_issues(access: TaskMember, session: SessionDep) -> Page[IssuePublic]:
    return Page[IssuePublic](items=review.task_issues(session, access.task.id))


@router.post(
    "/tasks/{task_id}/issues",
    summary="Open an issue on a label or a point",
    description="Anchor it to one of the task's labels (annotation_id) or a point (x, y).",
    status_code=201,
    responses=error_responses(404, 422),
)
def open_issue(access: TaskMember, body: IssueCreate, session: SessionDep) -> IssuePublic:
    with session.begin():
        issue = review.open_issue(session, access.task, access.user, body=body.body,
                                  annotation_id=body.annotation_id, x=body.x, y=body.y)
        return IssuePublic(**review.issue_public(issue, review.issue_comments(session,
                                                                                issue.id)))


@router.post(
    "/issues/{issue_id}/comments",
    summary="Reply in an issue's thread",
    status_code=201,
    responses=error_responses(404, 422),
)
def add_comment(access: IssueMember, body: CommentIn, session: SessionDep) -> CommentPublic:
    with session.begin():
        row = review.add_comment(session, access.issue, access.user, body.body)
        return CommentPublic(id=row.id, user_id=row.user_id, body=row.body,
                             created_at=row.created_at)


@router.patch(
    "/issues/{issue_id}",
    summary="Resolve or reopen an issue",
    responses=error_responses(404, 409, 422),
)
def set_issue_status(access: IssueMember, body: IssueStatusIn,
                     session: SessionDep) -> IssuePublic:
    issue = access.issue
    with session.begin():
        review.set_issue_status(session, issue, access.user, body.status)
        return IssuePublic(**review.issue_public(issue, review.issue_comments(session,
                                                                                issue.id)))
