"""Projects: create and list them, their members, their label schema, assignment, exports.

Non-members get 404 for a project id, as if it did not exist; members below the role an
action needs get 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from labelwise.core.schema import LabelClass, skeleton_template
from labelwise.db import queries
from labelwise.db.workflow_models import ProjectRow
from labelwise.errors import ValidationError
from labelwise.server.auth import CurrentUser, ManagerUser
from labelwise.server.deps import MAX_ID, PageCursor, PageLimit, SessionDep, WorkspaceDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import ClassPublic, Page
from labelwise.server.workflow_schemas import (
    AssignRequest,
    AssignResult,
    ClassCreate,
    ClassRemoved,
    ClassUpdate,
    ExportCreate,
    ExportPublic,
    MemberIn,
    MemberPublic,
    ProjectCreate,
    ProjectDetail,
    ProjectPublic,
)
from labelwise.server.workflow_deps import ProjectManager, ProjectMember
from labelwise.server.workflow_views import project_detail, project_public
from labelwise.workflow import assignment, exports, projects

router = APIRouter(prefix="/api", tags=["projects"], responses=error_responses(401, 503))

ClassId = Annotated[int, Path(ge=1, le=MAX_ID, description="Class id (of the project).")]
MemberId = Annotated[int, Path(ge=1, le=MAX_ID, description="User id of the member.")]


def _task_counts(session, project: ProjectRow, user, role: str) -> dict[str, int]:
    """Labelers count only their own tasks."""
    mine = user.id if role == "labeler" else None
    return projects.project_counts(session, project.id, assignee_id=mine)


@router.get(
    "/projects",
    summary="List the projects you can see",
    description="Owners and admins see every project, others those they are members of.",
    responses=error_responses(400, 422),
)
def list_projects(
    user: CurrentUser, session: SessionDep, limit: PageLimit = 100, cursor: PageCursor = None
) -> Page[ProjectPublic]:
    found = projects.list_visible(session, user, after=queries.decode_cursor(cursor),
                                  limit=limit + 1)
    more = len(found) > limit
    items = [project_public(p, role) for p, role in found[:limit]]
    return Page[ProjectPublic](
        items=items, next_cursor=queries.encode_cursor(items[-1].id) if more else None)


@router.post(
    "/projects",
    summary="Create a project on a dataset or split",
    description="Workspace managers and above. Copies the dataset's schema and makes one todo "
    "task per image; you become the project's manager.",
    status_code=201,
    responses=error_responses(403, 404, 409, 422),
)
def create_project(body: ProjectCreate, user: ManagerUser, session: SessionDep) -> ProjectDetail:
    with session.begin():
        project = projects.create_project(
            session, user, name=body.name, dataset=body.dataset, split=body.split,
            description=body.description, settings=body.settings,
            import_labels=body.import_labels,
        )
        return project_detail(session, project, "manager",
                              projects.project_counts(session, project.id))


@router.get(
    "/projects/{project_id}",
    summary="One project with its classes and task counts",
    responses=error_responses(404, 422),
)
def read_project(access: ProjectMember, session: SessionDep) -> ProjectDetail:
    counts = _task_counts(session, access.project, access.user, access.role)
    return project_detail(session, access.project, access.role, counts)


@router.get(
    "/projects/{project_id}/members",
    summary="The project's members and their roles",
    responses=error_responses(404, 422),
)
def list_members(access: ProjectMember, session: SessionDep) -> Page[MemberPublic]:
    return Page[MemberPublic](items=[MemberPublic(**m) for m in
                                     projects.members(session, access.project)])


@router.put(
    "/projects/{project_id}/members",
    summary="Add a member or change their role",
    description="Project managers.",
    responses=error_responses(403, 404, 409, 422),
)
def put_member(access: ProjectManager, body: MemberIn, session: SessionDep) -> MemberPublic:
    with session.begin():
        member = projects.find_user(session, body.user)
        projects.add_member(session, access.project, member, body.role)
        return MemberPublic(user_id=member.id, username=member.username,
                            display_name=member.display_name, role=body.role)


@router.delete(
    "/projects/{project_id}/members/{member_id}",
    summary="Remove a member",
    description="Project managers. Their unfinished tasks go back to the shared pool.",
    status_code=204,
    response_class=Response,
    responses=error_responses(403, 404, 422),
)
def delete_member(access: ProjectManager, member_id: MemberId, session: SessionDep) -> Response:
    with session.begin():
        projects.remove_member(session, access.project, projects.find_user(session, member_id))
    return Response(status_code=204)


@router.post(
    "/projects/{project_id}/classes",
    summary="Add a class to the project's schema",
    description="Project managers. Existing class ids never change.",
    status_code=201,
    responses=error_responses(403, 404, 409, 422),
)
def add_class(access: ProjectManager, body: ClassCreate, session: SessionDep) -> ClassPublic:
    try:
        skeleton = skeleton_template(body.skeleton) if body.skeleton else None
        cls = LabelClass(body.name, body.kind, body.tool if body.kind == "object" else None,
                         color=body.color, skeleton=skeleton)
    except (KeyError, ValueError) as err:
        raise ValidationError(str(err).strip('"')) from err
    with session.begin():
        row = projects.add_class(session, access.project, cls)
        return ClassPublic.model_validate(queries.class_public(row))


@router.patch(
    "/projects/{project_id}/classes/{class_id}",
    summary="Rename or recolor a class (its id stays)",
    description="Project managers.",
    responses=error_responses(403, 404, 409, 422),
)
def update_class(
    access: ProjectManager, class_id: ClassId, body: ClassUpdate, session: SessionDep
) -> ClassPublic:
    with session.begin():
        row = projects.update_class(session, access.project, class_id, name=body.name,
                                    color=body.color)
        return ClassPublic.model_validate(queries.class_public(row))


@router.delete(
    "/projects/{project_id}/classes/{class_id}",
    summary="Remove a class",
    description="Project managers. A class with labels needs move_to (a class of the same "
    "kind and tool to move them to) or delete=true; otherwise 409.",
    responses=error_responses(403, 404, 409, 422),
)
def remove_class(
    access: ProjectManager,
    class_id: ClassId,
    session: SessionDep,
    move_to: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    delete: bool = False,
) -> ClassRemoved:
    with session.begin():
        n = projects.remove_class(session, access.project, class_id, move_to=move_to,
                                  delete_labels=delete)
    return ClassRemoved(class_id=class_id, labels_affected=n)


@router.post(
    "/projects/{project_id}/assign",
    summary="Assign tasks to labelers or reviewers",
    description="Project managers. With asset_ids: those images' tasks go to the one user "
    "given. With spread=N: each user gets N unassigned tasks in image order.",
    responses=error_responses(403, 404, 409, 422),
)
def assign(access: ProjectManager, body: AssignRequest, session: SessionDep) -> AssignResult:
    if (body.asset_ids is None) == (body.spread is None):
        raise ValidationError("pass either asset_ids (explicit) or spread (N per user)")
    project, user = access.project, access.user
    with session.begin():
        people = [projects.find_user(session, u) for u in body.users]
        if body.asset_ids is not None:
            if len(people) != 1:
                raise ValidationError("explicit asset_ids go to exactly one user; use spread "
                                      "to share work among several")
            n = assignment.assign(session, project, people[0], body.asset_ids, actor=user,
                                  role=body.role)
            return AssignResult(assigned={people[0].username: n})
        return AssignResult(assigned=assignment.spread(
            session, project, people, body.spread, actor=user, role=body.role))



# -- exports ------------------------------------------------------------------------------------
ExportId = Annotated[int, Path(ge=1, le=MAX_ID, description="Project export id.")]


def _export_public(export) -> ExportPublic:
    return ExportPublic(
        **{k: v for k, v in export.as_dict().items() if k not in ("storage_key", "dest")},
        download_url=f"/api/projects/{export.project_id}/exports/{export.id}/download",
    )


@router.post(
    "/projects/{project_id}/exports",
    summary="Snapshot the project's labels in a format",
    description="Project managers. approved_only (default) takes only approved tasks. The "
    "snapshot (label files + manifest.json of image content hashes) stays downloadable.",
    status_code=201,
    responses=error_responses(403, 404, 422),
)
def create_export(access: ProjectManager, body: ExportCreate, ws: WorkspaceDep) -> ExportPublic:
    made = exports.export_project(
        ws, access.project.id, body.format, approved_only=body.approved_only,
        created_by=access.user.id, options=body.options,
    )
    return _export_public(made)


@router.get(
    "/projects/{project_id}/exports",
    summary="The project's export snapshots, oldest first",
    responses=error_responses(403, 404, 422),
)
def list_exports(access: ProjectManager, ws: WorkspaceDep) -> Page[ExportPublic]:
    return Page[ExportPublic](items=[_export_public(e) for e in
                                     exports.list_exports(ws, access.project.id)])


@router.get(
    "/projects/{project_id}/exports/{export_id}/download",
    summary="Download an export snapshot (zip)",
    response_class=Response,
    responses={200: {"content": {"application/zip": {"schema": {"type": "string",
                                                                "format": "binary"}}},
                     "description": "The snapshot zip."},
               **error_responses(403, 404, 422)},
)
def download_export(access: ProjectManager, export_id: ExportId, ws: WorkspaceDep) -> Response:
    export = exports.get_export(ws, access.project.id, export_id)
    name = f"{access.project.name}-{export.format}-{export.id}.zip".replace('"', "")
    return Response(
        exports.export_bytes(ws, export), media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "ETag": f'"{export.sha256}"'},
    )
