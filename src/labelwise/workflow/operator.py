"""Team actions run as the workspace operator: the Python API and the CLI, on the server itself.

Whoever can open the workspace can open its database, so these act without a sign-in, like
``labelwise user ...`` and ``labelwise project ...``: they may create the first owner. Project
actions are recorded under ``by`` (a username or id), by default the first active owner.
Every function takes an open ``Workspace`` and returns plain dicts.

    ws.add_user("ana", role="owner", password="correct horse battery")
    ws.create_project("street-boxes", "street")
    ws.assign("street-boxes", ["lena", "leo"], spread=50)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelwise.db import queries
from labelwise.db.account_models import UserRow
from labelwise.db.workflow_models import ProjectRow
from labelwise.errors import NotFoundError, ValidationError
from labelwise.workflow import accounts, assignment, exports, projects

if TYPE_CHECKING:
    from labelwise.workspace import Workspace


def acting_user(session: Session, by: int | str | None) -> UserRow:
    """The user an operator action is recorded under: ``by``, else the first active owner."""
    if by is not None:
        return projects.find_user(session, by)
    owner = session.scalar(select(UserRow).where(UserRow.role == "owner",
                                                 UserRow.is_active.is_(True))
                           .order_by(UserRow.id).limit(1))
    if owner is None:
        raise NotFoundError("the workspace has no owner yet; create one with "
                            "`labelwise user add NAME --role owner` or ws.add_user(NAME, "
                            "role='owner', password=...)")
    return owner


# -- users ------------------------------------------------------------------------------------
def add_user(ws: Workspace, username: str, *, role: str, password: str,
             display_name: str = "") -> dict[str, Any]:
    with ws.session() as s:
        user = accounts.create_user(s, username, password, role=role, display_name=display_name,
                                    policy=accounts.AuthPolicy.from_settings(ws.settings))
        return accounts.user_public(user)


def users(ws: Workspace) -> list[dict[str, Any]]:
    with ws.session() as s:
        return [accounts.user_public(u) for u in accounts.list_users(s)]


def set_role(ws: Workspace, user: int | str, role: str) -> dict[str, Any]:
    with ws.session() as s:
        return accounts.user_public(accounts.set_role(s, user, role))


def deactivate_user(ws: Workspace, user: int | str) -> dict[str, Any]:
    with ws.session() as s:
        return accounts.user_public(accounts.deactivate(s, user))


def activate_user(ws: Workspace, user: int | str) -> dict[str, Any]:
    with ws.session() as s:
        return accounts.user_public(accounts.reactivate(s, user))


def set_password(ws: Workspace, user: int | str, password: str) -> dict[str, Any]:
    with ws.session() as s:
        changed = accounts.set_password(s, user, password,
                                        policy=accounts.AuthPolicy.from_settings(ws.settings))
        return accounts.user_public(changed)


# -- API tokens -------------------------------------------------------------------------------
def create_token(ws: Workspace, user: int | str, name: str, *,
                 expires_days: int | None = None) -> dict[str, Any]:
    with ws.session() as s:
        new = accounts.create_token(s, accounts.get_user(s, user), name,
                                    expires_days=expires_days)
        return {**accounts.token_public(new.row), "token": new.token}


def tokens(ws: Workspace, user: int | str) -> list[dict[str, Any]]:
    with ws.session() as s:
        return [accounts.token_public(t)
                for t in accounts.list_tokens(s, accounts.get_user(s, user))]


def revoke_token(ws: Workspace, user: int | str, token_id: int) -> dict[str, Any]:
    with ws.session() as s:
        return accounts.token_public(accounts.revoke_token(s, accounts.get_user(s, user),
                                                           token_id))


# -- projects ---------------------------------------------------------------------------------
def _project_public(session: Session, project: ProjectRow) -> dict[str, Any]:
    return {
        "id": project.id, "name": project.name, "description": project.description,
        "dataset_id": project.dataset_id, "split_id": project.split_id,
        "created_by": project.created_by, "created_at": project.created_at,
        "tasks": projects.project_counts(session, project.id),
    }


def create_project(ws: Workspace, name: str, dataset: int | str, *, split: str | None = None,
                   description: str = "", import_labels: bool = True,
                   by: int | str | None = None) -> dict[str, Any]:
    with ws.session() as s, s.begin():
        project = projects.create_project(
            s, acting_user(s, by), name=name, dataset=dataset, split=split,
            description=description, import_labels=import_labels,
        )
        return _project_public(s, project)


def list_projects(ws: Workspace) -> list[dict[str, Any]]:
    with ws.session() as s:
        return [_project_public(s, p)
                for p in s.scalars(select(ProjectRow).order_by(ProjectRow.id))]


def project_summary(ws: Workspace, project: int | str) -> dict[str, Any]:
    with ws.session() as s:
        row = projects.find_project(s, project)
        return {
            **_project_public(s, row),
            "classes": [queries.class_public(c) for c in projects.project_classes(s, row)],
            "members": projects.members(s, row),
        }


def add_member(ws: Workspace, project: int | str, user: int | str, *,
               role: str) -> dict[str, Any]:
    with ws.session() as s, s.begin():
        row = projects.find_project(s, project)
        member = projects.find_user(s, user)
        projects.add_member(s, row, member, role)
        return {"user_id": member.id, "username": member.username,
                "display_name": member.display_name, "role": role}


def assign(ws: Workspace, project: int | str, users: Sequence[int | str], *,
           asset_ids: Sequence[int] | None = None, spread: int | None = None,
           role: str = "labeler", by: int | str | None = None) -> dict[str, int]:
    if isinstance(users, str | int):  # one user given bare: a string is not a list of names
        users = [users]
    if (asset_ids is None) == (spread is None):
        raise ValidationError("pass either asset_ids=[...] (explicit, one user) or spread=N "
                              "(N unassigned tasks per user)")
    with ws.session() as s, s.begin():
        row = projects.find_project(s, project)
        actor = acting_user(s, by)
        people = [projects.find_user(s, u) for u in users]
        if asset_ids is not None:
            if len(people) != 1:
                raise ValidationError("explicit asset_ids go to exactly one user; use spread=N "
                                      "to share work among several")
            return {people[0].username: assignment.assign(s, row, people[0], list(asset_ids),
                                                          actor=actor, role=role)}
        return assignment.spread(s, row, people, spread, actor=actor, role=role)


def export_project(ws: Workspace, project: int | str, fmt: str,
                   dest: str | Path | None = None, *, approved_only: bool = False,
                   copy_images: bool = True, options: dict[str, Any] | None = None,
                   by: int | str | None = None) -> dict[str, Any]:
    with ws.session() as s:
        project_id = projects.find_project(s, project).id
        actor_id = acting_user(s, by).id
    made = exports.export_project(ws, project_id, fmt, dest=dest, approved_only=approved_only,
                                  copy_images=copy_images, created_by=actor_id,
                                  options=options)
    return made.as_dict()


def project_exports(ws: Workspace, project: int | str) -> list[dict[str, Any]]:
    with ws.session() as s:
        project_id = projects.find_project(s, project).id
    return [e.as_dict() for e in exports.list_exports(ws, project_id)]
