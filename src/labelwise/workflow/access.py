"""Who may see and do what in a project.

Workspace owners and admins act as managers of every project. Everyone else sees only the
projects they are members of, with their project role: a manager runs the project, a reviewer
reviews it, a labeler labels, and sees only the assets of tasks assigned to them.

Things a user may not see answer "not found", never "forbidden": ids cannot be probed.
"""

from __future__ import annotations

from sqlalchemy import exists, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from labelwise.db.account_models import UserRow
from labelwise.db.workflow_models import ProjectMemberRow, ProjectRow, TaskRow
from labelwise.errors import NotFoundError, PermissionDeniedError

#: Workspace roles that manage every project without being members.
WORKSPACE_ADMINS = ("owner", "admin")
#: Workspace roles that may create projects.
PROJECT_CREATORS = ("owner", "admin", "manager")
PROJECT_RANK = {"labeler": 1, "reviewer": 2, "manager": 3}


def is_workspace_admin(user: UserRow) -> bool:
    return user.role in WORKSPACE_ADMINS


def project_role(session: Session, user: UserRow, project_id: int) -> str | None:
    """The user's effective role in a project (owners/admins: manager), None if not a member."""
    if is_workspace_admin(user):
        return "manager"
    return session.scalar(
        select(ProjectMemberRow.role).where(
            ProjectMemberRow.project_id == project_id, ProjectMemberRow.user_id == user.id
        )
    )


def visible_projects(session: Session, user: UserRow) -> Select:
    """A query of the projects the user may see, for further filters and ordering."""
    q = select(ProjectRow)
    if is_workspace_admin(user):
        return q
    member = exists().where(
        ProjectMemberRow.project_id == ProjectRow.id, ProjectMemberRow.user_id == user.id
    )
    return q.where(member)


def get_project(
    session: Session, user: UserRow, project_id: int, *, minimum: str = "labeler"
) -> tuple[ProjectRow, str]:
    """The project and the user's role in it, checked against ``minimum``.

    Not found (also for non-members) -> NotFoundError; a member below ``minimum`` ->
    PermissionDeniedError naming the role needed.
    """
    if is_workspace_admin(user):
        project, role = session.get(ProjectRow, project_id), "manager"
    else:  # one query: the project joined to the user's membership
        found = session.execute(
            select(ProjectRow, ProjectMemberRow.role)
            .join(ProjectMemberRow, (ProjectMemberRow.project_id == ProjectRow.id)
                  & (ProjectMemberRow.user_id == user.id))
            .where(ProjectRow.id == project_id)
        ).first()
        project, role = found if found is not None else (None, None)
    if project is None or role is None:
        raise NotFoundError(
            f"no project with id {project_id} that {user.username!r} can see; list yours with "
            "GET /api/projects or `labelwise project list`"
        )
    require_project_role(project, role, minimum)
    return project, role


def require_project_role(project: ProjectRow, role: str, minimum: str) -> None:
    if PROJECT_RANK[role] < PROJECT_RANK[minimum]:
        raise PermissionDeniedError(
            f"this needs the {minimum} role in project {project.name!r}; you are a {role}. Ask "
            "a project manager to change your role"
        )


def get_task(
    session: Session, user: UserRow, task_id: int, *, minimum: str = "labeler"
) -> tuple[TaskRow, ProjectRow, str]:
    """A task the user may see (labelers: only their own), with its project and their role.

    One query: the task, its project and the user's membership, joined.
    """
    found = session.execute(
        select(TaskRow, ProjectRow, ProjectMemberRow.role)
        .join(ProjectRow, ProjectRow.id == TaskRow.project_id)
        .outerjoin(ProjectMemberRow, (ProjectMemberRow.project_id == TaskRow.project_id)
                   & (ProjectMemberRow.user_id == user.id))
        .where(TaskRow.id == task_id)
    ).first()
    task, project, role = found if found is not None else (None, None, None)
    if is_workspace_admin(user) and task is not None:
        role = "manager"
    if task is None or role is None or (role == "labeler" and task.assignee_id != user.id):
        raise NotFoundError(
            f"no task with id {task_id} that {user.username!r} can see; ask for the next one "
            "with POST /api/projects/{id}/tasks/next"
        )
    require_project_role(project, role, minimum)
    return task, project, role


def can_view_asset(session: Session, user: UserRow, asset_id: int) -> bool:
    """Whether a project gives the user this asset.

    Owners and admins see every asset. Managers and reviewers of a project see all its assets;
    labelers only the assets of tasks assigned to them.
    """
    if is_workspace_admin(user):
        return True
    via_project = (
        select(true())
        .select_from(TaskRow)
        .join(ProjectMemberRow, ProjectMemberRow.project_id == TaskRow.project_id)
        .where(
            TaskRow.asset_id == asset_id,
            ProjectMemberRow.user_id == user.id,
            (ProjectMemberRow.role != "labeler") | (TaskRow.assignee_id == user.id),
        )
        .limit(1)
    )
    return session.scalar(via_project) is not None
