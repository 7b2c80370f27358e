"""Build workflow API responses from service rows, and answer stale versions with 409."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelwise.db import queries
from labelwise.db.models import AssetRow, LabelClassRow, LabelSchemaRow
from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow, TaskRow
from labelwise.server.errors import error_response
from labelwise.server.schemas import AssetPublic, ClassPublic
from labelwise.server.workflow_schemas import (
    ProjectDetail,
    ProjectPublic,
    TaskDetail,
    TaskLabel,
    TaskPublic,
)
from labelwise.workflow import projects, review
from labelwise.workflow.lifecycle import StaleVersionError

TASK_FIELDS = ("id", "project_id", "asset_id", "status", "version", "assignee_id",
               "reviewer_id", "uncertainty", "created_at", "updated_at", "started_at",
               "submitted_at", "reviewed_at")


def project_public(project: ProjectRow, role: str) -> ProjectPublic:
    return ProjectPublic(
        id=project.id, name=project.name, description=project.description,
        dataset_id=project.dataset_id, split_id=project.split_id, schema_id=project.schema_id,
        settings=project.settings or {}, created_by=project.created_by,
        created_at=project.created_at, role=role,
    )


def project_detail(session: Session, project: ProjectRow, role: str,
                   tasks: dict[str, int]) -> ProjectDetail:
    schema = session.get(LabelSchemaRow, project.schema_id)
    classes = [ClassPublic.model_validate(queries.class_public(c))
               for c in projects.project_classes(session, project)]
    return ProjectDetail(**project_public(project, role).model_dump(),
                         multi_label=schema.multi_label, classes=classes, tasks=tasks)


def task_public(task: TaskRow) -> TaskPublic:
    return TaskPublic(**{f: getattr(task, f) for f in TASK_FIELDS})


def task_detail(session: Session, task: TaskRow) -> TaskDetail:
    asset = session.get(AssetRow, task.asset_id)
    tags = queries.tags_for(session, [asset.id]).get(asset.id, [])
    labels = []
    ta = TaskAnnotationRow
    rows = session.execute(
        select(ta, LabelClassRow.name).join(LabelClassRow, LabelClassRow.id == ta.class_id)
        .where(ta.task_id == task.id, ta.deleted.is_(False)).order_by(ta.id))
    for row, name in rows:
        bbox = None if row.bbox_x is None else [row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h]
        labels.append(TaskLabel(
            id=row.id, class_id=row.class_id, label=name, bbox=bbox,
            polygons=row.polygons, rle=row.rle, keypoints=row.keypoints,
            attributes=row.attributes, iscrowd=row.iscrowd, source=row.source,
            confidence=row.confidence,
        ))
    return TaskDetail(
        **task_public(task).model_dump(),
        asset=AssetPublic.model_validate(queries.asset_public(asset, tags)),
        labels=labels, issues=review.task_issues(session, task.id),
    )


async def _stale_version(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StaleVersionError)
    response = error_response(409, type(exc).__name__, exc.message, exc.problems)
    body: dict[str, Any] = json.loads(response.body)
    body["error"]["current_version"] = exc.current_version
    body["error"]["current_status"] = exc.current_status
    return JSONResponse(body, status_code=409)


def install_workflow_errors(app: FastAPI) -> None:
    """A stale task version answers 409 with ``current_version`` in the error body."""
    app.add_exception_handler(StaleVersionError, _stale_version)
