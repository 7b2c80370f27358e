"""Tasks: list them, get the next one, save labels, and move them along the lifecycle.

Every change sends the task ``version`` it was made against; a stale one answers 409 with
``current_version`` in the error. Labelers see only tasks assigned to them (others: 404).

The labeling loop's routes (next, read, save, the transitions) answer with their model
serialised once (``_json``); FastAPI would otherwise dump the returned model, validate it
again in a worker thread and serialise it. Their ``response_model`` still documents them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from labelwise.db import queries
from labelwise.db.models import AssetRow
from labelwise.server.deps import MAX_ID, PageCursor, PageLimit, SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import Page
from labelwise.server.workflow_deps import ProjectMember, TaskAccess, TaskManager, TaskMember
from labelwise.server.workflow_schemas import (
    NextTask,
    SaveLabels,
    StaleResponse,
    TaskDetail,
    TaskEventPublic,
    TaskPublic,
    TaskStatus,
    TransitionIn,
)
from labelwise.server.workflow_views import task_detail, task_public
from labelwise.workflow import assignment, lifecycle

router = APIRouter(prefix="/api", tags=["tasks"], responses=error_responses(401, 503))

STALE = {409: {"model": StaleResponse,
               "description": "Stale version or a status that does not allow this; "
               "current_version says what the task is at now."}}


def _json(model: BaseModel) -> Response:
    """``model`` as the JSON answer, serialised by pydantic in one pass."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.get(
    "/projects/{project_id}/tasks",
    summary="List a project's tasks, a page at a time",
    description="In id order, optionally by status or assignee. Labelers see only their own.",
    responses=error_responses(400, 404, 422),
)
def list_tasks(
    access: ProjectMember,
    session: SessionDep,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this status.")] = None,
    assignee_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> Page[TaskPublic]:
    if access.role == "labeler":
        if assignee_id not in (None, access.user.id):
            return Page[TaskPublic](items=[])  # labelers only ever see their own tasks
        assignee_id = access.user.id
    rows = lifecycle.list_tasks(session, access.project.id, after=queries.decode_cursor(cursor),
                                limit=limit + 1, status=status, assignee_id=assignee_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[TaskPublic](items=[task_public(t) for t in rows],
                            next_cursor=queries.encode_cursor(rows[-1].id) if more else None)


@router.post(
    "/projects/{project_id}/tasks/next",
    summary="Get your next task (started for you)",
    description="Your task in progress, else your rejected or assigned ones, else the first "
    "free task, claimed for you: no two people ever get the same task. task is null when "
    "nothing is left.",
    response_model=NextTask,
    responses=error_responses(404, 422),
)
def next_task(access: ProjectMember, session: SessionDep) -> Response:
    with session.begin():
        task = assignment.next_task(session, access.project, access.actor)
        return _json(NextTask(task=task_detail(session, task) if task is not None else None))


@router.get(
    "/tasks/{task_id}",
    summary="One task with its image, labels and review issues",
    response_model=TaskDetail,
    responses=error_responses(404, 422),
)
def read_task(access: TaskMember, session: SessionDep) -> Response:
    return _json(task_detail(session, access.task))


@router.put(
    "/tasks/{task_id}/labels",
    summary="Save the task's labels (all of them)",
    description="Labels with an id update that label, labels without one are new, stored "
    "labels left out are deleted. The task must be in progress. Send active_seconds: the "
    "time spent since the last save.",
    response_model=TaskDetail,
    responses={**error_responses(403, 404, 422), **STALE},
)
def save_labels(access: TaskMember, body: SaveLabels, session: SessionDep) -> Response:
    task = access.task
    with session.begin():
        # Held here: the session keeps rows only while something refers to them, and both the
        # validation (image size) and the answer need the asset; read it once.
        asset = session.get(AssetRow, task.asset_id)  # noqa: F841
        lifecycle.save_labels(
            session, task, access.actor, version=body.version,
            labels=[lb.model_dump(exclude_none=True) for lb in body.labels],
            active_seconds=body.active_seconds,
        )
        return _json(task_detail(session, task))


def _move(access: TaskAccess, action: str, body: TransitionIn, session) -> Response:
    with session.begin():
        lifecycle.transition(session, access.task, access.actor, action, version=body.version,
                             active_seconds=body.active_seconds, comment=body.comment)
        return _json(task_public(access.task))


_ACTIONS = {
    "start": "Start (or restart after a rejection) a task assigned to you.",
    "submit": "Submit your labels for review; active_seconds adds the last stretch of time.",
    "skip": "Skip a task (unreadable image, out of scope); comment says why.",
    "reopen": "Project managers: put a skipped or approved task back to todo.",
}


def _register(action: str, description: str) -> None:
    def route(access: TaskMember, body: TransitionIn, session: SessionDep) -> Response:
        return _move(access, action, body, session)

    if action == "reopen":  # only managers may reopen: checked before the body is read
        route.__annotations__["access"] = TaskManager

    route.__name__ = f"{action}_task"
    router.add_api_route(
        f"/tasks/{{task_id}}/{action}", route, methods=["POST"],
        summary=f"{action.capitalize()} a task", description=description,
        response_model=TaskPublic,
        responses={**error_responses(403, 404, 422), **STALE},
    )


for _action, _description in _ACTIONS.items():
    _register(_action, _description)


@router.get(
    "/tasks/{task_id}/events",
    summary="The task's audit log, oldest first",
    responses=error_responses(400, 404, 422),
)
def list_events(
    access: TaskMember, session: SessionDep, limit: PageLimit = 100, cursor: PageCursor = None,
) -> Page[TaskEventPublic]:
    rows = lifecycle.task_events(session, access.task.id, after=queries.decode_cursor(cursor),
                                 limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [TaskEventPublic.model_validate(e, from_attributes=True) for e in rows]
    return Page[TaskEventPublic](
        items=items, next_cursor=queries.encode_cursor(rows[-1].id) if more else None)
