"""Dependencies that load a project, task or issue the caller may see, with their role.

They run before the request body is validated, so a caller without access gets 404 (or 403
for a member below the role needed) whatever they send. Each ends its read transaction, so
routes start clean and may use ``session.begin()``.

    @router.post("/api/tasks/{task_id}/approve")
    def approve(access: TaskReviewer, body: TransitionIn, session: SessionDep): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated

from fastapi import Depends, Path

from labelwise.db.account_models import UserRow
from labelwise.db.workflow_models import ProjectRow, ReviewIssueRow, TaskRow
from labelwise.server.auth import CurrentUser
from labelwise.server.deps import MAX_ID, SessionDep
from labelwise.workflow import review
from labelwise.workflow.access import (
    get_project,
    get_task,
    project_role,
    require_project_role,
)
from labelwise.workflow.lifecycle import Actor

ProjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="Project id.")]
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="Task id.")]
IssueId = Annotated[int, Path(ge=1, le=MAX_ID, description="Review issue id.")]


@dataclass(frozen=True)
class ProjectAccess:
    project: ProjectRow
    user: UserRow
    role: str

    @property
    def actor(self) -> Actor:
        return Actor(self.user, self.role)


@dataclass(frozen=True)
class TaskAccess(ProjectAccess):
    task: TaskRow


@dataclass(frozen=True)
class IssueAccess(TaskAccess):
    issue: ReviewIssueRow


@cache
def project_access(minimum: str):
    def load_project(project_id: ProjectId, user: CurrentUser,
                     session: SessionDep) -> ProjectAccess:
        project, role = get_project(session, user, project_id, minimum=minimum)
        session.commit()
        return ProjectAccess(project, user, role)

    load_project.__name__ = f"project_{minimum}"
    return load_project


@cache
def task_access(minimum: str):
    def load_task(task_id: TaskId, user: CurrentUser, session: SessionDep) -> TaskAccess:
        task, project, role = get_task(session, user, task_id, minimum=minimum)
        session.commit()
        return TaskAccess(project, user, role, task)

    load_task.__name__ = f"task_{minimum}"
    return load_task


def issue_access(issue_id: IssueId, user: CurrentUser, session: SessionDep) -> IssueAccess:
    issue, task = review.get_issue(session, user, issue_id)
    project = session.get(ProjectRow, task.project_id)
    role = project_role(session, user, project.id)
    require_project_role(project, role, "labeler")
    session.commit()
    return IssueAccess(project, user, role, task, issue)


ProjectMember = Annotated[ProjectAccess, Depends(project_access("labeler"))]
ProjectReviewer = Annotated[ProjectAccess, Depends(project_access("reviewer"))]
ProjectManager = Annotated[ProjectAccess, Depends(project_access("manager"))]
TaskMember = Annotated[TaskAccess, Depends(task_access("labeler"))]
TaskReviewer = Annotated[TaskAccess, Depends(task_access("reviewer"))]
TaskManager = Annotated[TaskAccess, Depends(task_access("manager"))]
IssueMember = Annotated[IssueAccess, Depends(issue_access)]
