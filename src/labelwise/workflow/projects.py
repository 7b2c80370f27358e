"""Projects: a dataset (or split) to label, with its own copy of the label schema and members.

Creating a project makes one ``todo`` task per asset and, unless told otherwise, copies the
dataset's existing labels into the tasks as pre-labels (model labels keep their confidence
and set the task's uncertainty, which orders the review queue). Later Auto-Label runs put
their labels into the tasks nobody has touched yet (``push_prelabels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labelwise.core.schema import LabelClass
from labelwise.db import queries
from labelwise.db.account_models import UserRow
from labelwise.db.models import (
    AnnotationRow,
    AssetRow,
    DatasetRow,
    LabelClassRow,
    LabelSchemaRow,
    SplitAssetRow,
)
from labelwise.db.schemas import class_row
from labelwise.db.workflow_models import (
    PROJECT_ROLES,
    TASK_STATUSES,
    ProjectMemberRow,
    ProjectRow,
    TaskAnnotationRow,
    TaskRow,
)
from labelwise.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from labelwise.workflow.access import PROJECT_CREATORS, project_role, visible_projects
from labelwise.workflow.labels import label_fingerprint, row_geometry

#: Images per statement when Auto-Label pushes a run's labels into tasks (bounded IN lists).
PUSH_CHUNK = 5_000


def _is_id(ref: int | str) -> bool:
    return isinstance(ref, int) or str(ref).isdigit()


def _get_by_id(session: Session, model: type, ref: int | str) -> Any:
    n = int(ref)
    # Ids are 64-bit: a bigger number names no row (and would overflow the driver).
    return session.get(model, n) if 1 <= n <= queries.MAX_ID else None


def find_user(session: Session, ref: int | str) -> UserRow:
    """A user by id or username."""
    if _is_id(ref):
        row = _get_by_id(session, UserRow, ref)
    else:
        row = session.scalar(select(UserRow).where(UserRow.username == str(ref).lower()))
    if row is None:
        raise NotFoundError(
            f"no user {ref!r}; list users with `labelwise user list`, add one with "
            "`labelwise user add`"
        )
    return row


def find_project(session: Session, ref: int | str) -> ProjectRow:
    """A project by id or name (for the CLI; the API checks membership through ``access``)."""
    if _is_id(ref):
        row = _get_by_id(session, ProjectRow, ref)
    else:
        row = session.scalar(select(ProjectRow).where(ProjectRow.name == ref))
    if row is None:
        names = session.scalars(select(ProjectRow.name).order_by(ProjectRow.name).limit(20))
        raise NotFoundError(
            f"no project {ref!r} (projects: {', '.join(names) or 'none'}); create one with "
            "`labelwise project create`"
        )
    return row


def list_visible(
    session: Session, user: UserRow, *, after: int = 0, limit: int = 100
) -> list[tuple[ProjectRow, str]]:
    """A keyset page of the projects ``user`` sees, with their role in each."""
    rows = session.scalars(visible_projects(session, user).where(ProjectRow.id > after)
                           .order_by(ProjectRow.id).limit(limit))
    return [(p, project_role(session, user, p.id)) for p in rows]


def create_project(
    session: Session,
    creator: UserRow,
    *,
    name: str,
    dataset: str | int,
    split: str | None = None,
    description: str = "",
    settings: dict[str, Any] | None = None,
    import_labels: bool = True,
) -> ProjectRow:
    """Create a project on ``dataset`` (or one ``split``) with a copy of its schema.

    The creator becomes the project's manager. Returns the new row (flushed, not committed).
    ``settings["prelabels"]`` (default: ``import_labels``) says whether later Auto-Label runs
    put their labels into the untouched tasks (``push_prelabels``): a project started without
    the dataset's labels gets no model labels later either.
    """
    if creator.role not in PROJECT_CREATORS:
        raise PermissionDeniedError(
            f"creating a project needs the workspace role manager, admin or owner; "
            f"{creator.username!r} is a {creator.role}"
        )
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError("a project name must have 1 to 200 characters")
    if session.scalar(select(ProjectRow.id).where(ProjectRow.name == name)) is not None:
        raise ConflictError(f"a project named {name!r} already exists; pick another name")
    ds = queries.get_dataset(session, dataset)
    split_row = queries.get_split(session, ds, split) if split else None
    schema = LabelSchemaRow(name=f"project {name}", multi_label=ds.schema.multi_label)
    session.add(schema)
    session.flush()
    for src in ds.schema.classes:
        session.add(_copy_class(src, schema.id))
    project = ProjectRow(
        name=name, description=description, dataset_id=ds.id,
        split_id=split_row.id if split_row else None, schema_id=schema.id,
        settings={"prelabels": import_labels, **(settings or {})}, created_by=creator.id,
    )
    session.add(project)
    try:
        session.flush()
    except IntegrityError as err:  # created by someone else since the check above
        raise ConflictError(f"a project named {name!r} already exists; pick another name"
                            ) from err
    session.add(ProjectMemberRow(project_id=project.id, user_id=creator.id, role="manager"))
    _create_tasks(session, project)
    if import_labels:
        _import_labels(session, project, ds.schema_id)
    session.flush()
    return project


def _copy_class(src: LabelClassRow, schema_id: int) -> LabelClassRow:
    return LabelClassRow(
        schema_id=schema_id, name=src.name, kind=src.kind, tool=src.tool, color=src.color,
        skeleton=src.skeleton, supercategory=src.supercategory, external_id=src.external_id,
        position=src.position,
    )


def _create_tasks(session: Session, project: ProjectRow) -> None:
    """One todo task per asset of the dataset or split, in one INSERT ... SELECT."""
    assets = select(
        literal(project.id), AssetRow.id, literal("todo"), literal(1), literal(0.0)
    ).where(AssetRow.dataset_id == project.dataset_id)
    if project.split_id is not None:
        assets = assets.join(SplitAssetRow, SplitAssetRow.asset_id == AssetRow.id).where(
            SplitAssetRow.split_id == project.split_id
        )
    cols = ["project_id", "asset_id", "status", "version", "pending_seconds"]
    session.execute(insert(TaskRow).from_select(cols, assets.order_by(AssetRow.id)))


def _import_labels(session: Session, project: ProjectRow, dataset_schema_id: int) -> None:
    """Copy the dataset's labels of the project's assets into its tasks, class by name."""
    _copy_labels(session, project, dataset_schema_id)
    refresh_uncertainty(session, project.id)


def _copy_labels(session: Session, project: ProjectRow, dataset_schema_id: int,
                 *where: Any) -> int:
    """Copy dataset labels (those matching ``where``) into the project's tasks of their
    images, class by kind and name; returns how many were copied."""
    pc = select(LabelClassRow).where(LabelClassRow.schema_id == project.schema_id).subquery()
    dc = LabelClassRow
    a = AnnotationRow
    q = (
        select(
            TaskRow.id, pc.c.id, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h, a.polygons, a.rle,
            a.keypoints, a.attributes, a.iscrowd, a.source, a.confidence, a.prelabel_run_id,
        )
        .join(TaskRow, (TaskRow.asset_id == a.asset_id) & (TaskRow.project_id == project.id))
        .join(dc, dc.id == a.class_id)
        .join(pc, (pc.c.kind == dc.kind) & (pc.c.name == dc.name))
        .where(a.dataset_id == project.dataset_id, dc.schema_id == dataset_schema_id, *where)
        .order_by(a.id)
    )
    batch: list[dict[str, Any]] = []
    copied = 0
    for row in session.execute(q).yield_per(10_000):
        values = {
            "task_id": row[0], "project_id": project.id, "class_id": row[1],
            "bbox_x": row[2], "bbox_y": row[3], "bbox_w": row[4], "bbox_h": row[5],
            "polygons": row[6], "rle": row[7], "keypoints": row[8], "attributes": row[9],
            "iscrowd": bool(row[10]), "source": row[11], "confidence": row[12],
            "prelabel_run_id": row[13],
        }
        fp = label_fingerprint(row[1], row_geometry(values))
        values["fingerprint"] = fp
        values["model_fingerprint"] = fp if row[11] == "model" else None
        batch.append(values)
        if len(batch) >= 10_000:
            session.execute(insert(TaskAnnotationRow), batch)
            copied += len(batch)
            batch.clear()
    if batch:
        session.execute(insert(TaskAnnotationRow), batch)
        copied += len(batch)
    return copied


def push_prelabels(session: Session, project: ProjectRow, *, run_id: int,
                   replaces: Sequence[int], asset_ids: Sequence[int]) -> int:
    """Give the project's untouched tasks of ``asset_ids`` the model labels of Auto-Label run
    ``run_id``; returns how many tasks changed.

    Untouched: status ``todo`` and every label as it was copied in (none drawn by a person,
    none deleted, every model label unchanged). Their labels from the runs ``replaces`` (the
    earlier runs of the same kind of model) give way to the run's; other labels stay, and a
    task someone started, labeled or finished keeps all of its labels. Each changed task's
    version goes up, as with any change, so a client that read it before is told to reload.
    A project whose ``settings["prelabels"]`` is false (made with ``--no-labels``) gets none.
    """
    if not (project.settings or {}).get("prelabels", True):
        return 0
    ta = TaskAnnotationRow
    dataset_schema_id = session.scalar(
        select(DatasetRow.schema_id).where(DatasetRow.id == project.dataset_id))
    touched = select(ta.id).where(
        ta.task_id == TaskRow.id,
        ta.created_by.is_not(None) | ta.deleted.is_(True)
        | (ta.model_fingerprint.is_not(None) & (ta.fingerprint != ta.model_fingerprint)),
    ).exists()
    tasks = TaskRow.__table__
    runs = [*replaces, run_id]
    changed = 0
    for start in range(0, len(asset_ids), PUSH_CHUNK):
        chunk = list(asset_ids[start:start + PUSH_CHUNK])
        # One statement picks, guards and bumps: a task started meanwhile is left alone.
        updated = session.execute(
            update(tasks).where(tasks.c.project_id == project.id,
                                queries.id_in(session, tasks.c.asset_id, chunk),
                                tasks.c.status == "todo", ~touched)
            .values(version=tasks.c.version + 1, updated_at=func.now())
            .returning(tasks.c.id, tasks.c.asset_id)).all()
        if not updated:
            continue
        ids = [task_id for task_id, _ in updated]
        session.execute(delete(ta).where(queries.id_in(session, ta.task_id, ids),
                                         ta.source == "model", ta.prelabel_run_id.in_(runs))
                        .execution_options(synchronize_session=False))
        # By asset, not task id: one task per image and project, and SQLite walks a list of
        # task ids once per annotation row (92 s for 20,000 tasks against 0.8 s).
        _copy_labels(session, project, dataset_schema_id,
                     AnnotationRow.prelabel_run_id == run_id,
                     queries.id_in(session, AnnotationRow.asset_id,
                                   [asset for _, asset in updated]))
        changed += len(ids)
    return changed


def refresh_uncertainty(session: Session, project_id: int) -> None:
    """Task uncertainty = 1 - the lowest confidence of its model labels (NULL without any)."""
    ta = TaskAnnotationRow
    lowest = (
        select(func.min(ta.confidence))
        .where(ta.task_id == TaskRow.id, ta.source == "model", ta.deleted.is_(False))
        .scalar_subquery()
    )
    session.execute(
        update(TaskRow).where(TaskRow.project_id == project_id).values(uncertainty=1.0 - lowest)
    )


def set_uncertainty(session: Session, project: ProjectRow, scores: dict[int, float]) -> int:
    """Set tasks' uncertainty by asset id (values in [0, 1]); returns how many changed.

    Asset ids without a task in the project are ignored. One executemany UPDATE for all of
    them: ``autolabel apply`` calls this for every project on the dataset with a score per
    pre-labeled image, so one statement per asset was 100,000 round trips for 100,000 images.
    """
    bad = {a: u for a, u in scores.items() if not 0.0 <= float(u) <= 1.0}
    if bad:
        raise ValidationError(
            f"uncertainty must be in [0, 1]; got {len(bad)} bad value(s)",
            problems=[f"asset {a}: {u}" for a, u in list(bad.items())[:20]],
        )
    # Ids beyond 64 bits name no task (and would overflow the driver's integer type).
    rows = [{"asset": int(a), "u": float(u)} for a, u in scores.items()
            if 1 <= int(a) <= queries.MAX_ID]
    if not rows:
        return 0
    # Core, not the ORM: its bulk UPDATE wants primary keys, and task objects already loaded
    # in this session keep their old uncertainty until they are expired (as after a commit).
    tasks = TaskRow.__table__
    result = session.execute(
        update(tasks)
        .where(tasks.c.project_id == project.id, tasks.c.asset_id == bindparam("asset"))
        .values(uncertainty=bindparam("u")),
        rows,
    )
    return result.rowcount


# -- members --------------------------------------------------------------------------------
def add_member(session: Session, project: ProjectRow, user: UserRow, role: str) -> None:
    """Give ``user`` a role in the project (or change it)."""
    if role not in PROJECT_ROLES:
        raise ValidationError(
            f"unknown project role {role!r}; choose one of {', '.join(PROJECT_ROLES)}"
        )
    if not user.is_active:
        raise ConflictError(f"user {user.username!r} is deactivated; reactivate them first")
    row = session.get(ProjectMemberRow, (project.id, user.id))
    if row is None:
        session.add(ProjectMemberRow(project_id=project.id, user_id=user.id, role=role))
    else:
        row.role = role
    try:
        session.flush()
    except IntegrityError as err:  # added at the same moment by another request
        raise ConflictError(f"{user.username!r} was just added to project {project.name!r} "
                            "by someone else; reload the members and retry") from err


def remove_member(session: Session, project: ProjectRow, user: UserRow) -> None:
    """Take ``user`` off the project; their unfinished tasks go back to the shared pool."""
    row = session.get(ProjectMemberRow, (project.id, user.id))
    if row is None:
        raise NotFoundError(f"{user.username!r} is not a member of project {project.name!r}")
    session.delete(row)
    session.execute(
        update(TaskRow)
        .where(TaskRow.project_id == project.id, TaskRow.assignee_id == user.id,
               TaskRow.status.in_(("todo", "in_progress")))
        .values(assignee_id=None, status="todo", version=TaskRow.version + 1)
    )
    session.execute(
        update(TaskRow)
        .where(TaskRow.project_id == project.id, TaskRow.reviewer_id == user.id,
               TaskRow.status == "submitted")
        .values(reviewer_id=None, version=TaskRow.version + 1)
    )
    session.flush()


def members(session: Session, project: ProjectRow) -> list[dict[str, Any]]:
    rows = session.execute(
        select(UserRow.id, UserRow.username, UserRow.display_name, ProjectMemberRow.role)
        .join(ProjectMemberRow, ProjectMemberRow.user_id == UserRow.id)
        .where(ProjectMemberRow.project_id == project.id)
        .order_by(UserRow.username)
    ).all()
    return [{"user_id": i, "username": u, "display_name": d, "role": r} for i, u, d, r in rows]


def member_role(session: Session, project: ProjectRow, user: UserRow) -> str | None:
    return session.scalar(
        select(ProjectMemberRow.role).where(
            ProjectMemberRow.project_id == project.id, ProjectMemberRow.user_id == user.id
        )
    )


# -- schema -----------------------------------------------------------------------------------
def project_classes(session: Session, project: ProjectRow) -> list[LabelClassRow]:
    return list(
        session.scalars(
            select(LabelClassRow)
            .where(LabelClassRow.schema_id == project.schema_id)
            .order_by(LabelClassRow.position, LabelClassRow.id)
        )
    )


def get_class(session: Session, project: ProjectRow, class_id: int) -> LabelClassRow:
    row = session.get(LabelClassRow, class_id)
    if row is None or row.schema_id != project.schema_id:
        names = [f"{c.name} ({c.id})" for c in project_classes(session, project)]
        raise NotFoundError(
            f"project {project.name!r} has no class with id {class_id} "
            f"(classes: {', '.join(names) or 'none'})"
        )
    return row


def add_class(session: Session, project: ProjectRow, cls: LabelClass) -> LabelClassRow:
    """Add a class to the project's schema; the same kind and name twice is a conflict."""
    existing = project_classes(session, project)
    for c in existing:
        if c.kind == cls.kind and c.name == cls.name:
            raise ConflictError(
                f"project {project.name!r} already has a {cls.kind} class {cls.name!r} "
                f"(id {c.id}); rename it or pick another name"
            )
    row = class_row(cls, position=max((c.position for c in existing), default=-1) + 1)
    row.schema_id = project.schema_id
    session.add(row)
    session.flush()
    return row


def update_class(
    session: Session, project: ProjectRow, class_id: int, *, name: str | None = None,
    color: str | None = None,
) -> LabelClassRow:
    """Rename or recolor a class; its id, and so every label using it, stays."""
    row = get_class(session, project, class_id)
    if name is not None and name != row.name:
        name = name.strip()
        if not name:
            raise ValidationError("a class name cannot be empty")
        clash = session.scalar(
            select(LabelClassRow.id).where(
                LabelClassRow.schema_id == project.schema_id, LabelClassRow.kind == row.kind,
                LabelClassRow.name == name,
            )
        )
        if clash is not None:
            raise ConflictError(
                f"project {project.name!r} already has a {row.kind} class {name!r} (id {clash})"
            )
        row.name = name
    if color is not None:
        row.color = color
    session.flush()
    return row


def remove_class(
    session: Session, project: ProjectRow, class_id: int, *, move_to: int | None = None,
    delete_labels: bool = False,
) -> int:
    """Remove a class. Labels using it move to ``move_to`` or, with ``delete_labels``, go.

    A class still in use without either is a ConflictError. Returns the labels moved/deleted.
    """
    row = get_class(session, project, class_id)
    ta = TaskAnnotationRow
    used = session.scalar(
        select(func.count()).where(ta.project_id == project.id, ta.class_id == class_id)
    ) or 0
    if move_to is not None and delete_labels:
        raise ValidationError("pass either a class to move the labels to or delete, not both")
    if used and move_to is None and not delete_labels:
        raise ConflictError(
            f"class {row.name!r} (id {class_id}) has {used} label(s) in project "
            f"{project.name!r}; pass a target class to move them to (move_to) or delete them "
            "explicitly (delete=true)"
        )
    if used and move_to is not None:
        target = get_class(session, project, move_to)
        if target.id == row.id or (target.kind, target.tool) != (row.kind, row.tool):
            raise ValidationError(
                f"labels of {row.name!r} ({row.kind}, {row.tool or 'no tool'}) can only move to "
                f"another class of the same kind and tool; {target.name!r} is "
                f"{target.kind}, {target.tool or 'no tool'}"
            )
        _move_labels(session, project, class_id, target.id)
    elif used:
        session.execute(delete(ta).where(ta.project_id == project.id, ta.class_id == class_id))
    session.delete(row)
    session.flush()
    return used


def _move_labels(session: Session, project: ProjectRow, old: int, new: int) -> None:
    ta = TaskAnnotationRow
    rows = session.scalars(select(ta).where(ta.project_id == project.id, ta.class_id == old))
    for label in rows:
        label.class_id = new
        label.fingerprint = label_fingerprint(new, row_geometry(label))
    session.flush()


def project_counts(
    session: Session, project_id: int, *, assignee_id: int | None = None
) -> dict[str, int]:
    """Tasks per status (every status present, zeros included); only one assignee's if set."""
    q = (select(TaskRow.status, func.count()).where(TaskRow.project_id == project_id)
         .group_by(TaskRow.status))
    if assignee_id is not None:
        q = q.where(TaskRow.assignee_id == assignee_id)
    counts = dict(session.execute(q).all())
    return {s: int(counts.get(s, 0)) for s in TASK_STATUSES}
