"""Project analytics for managers: progress, throughput, time per label, rejections, review
turnaround, auto-label acceptance. Each answer is one or two indexed SQL aggregates."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from labelwise.server.deps import SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import Page
from labelwise.server.workflow_schemas import (
    Acceptance,
    Progress,
    RejectionRow,
    ThroughputRow,
    TimePerLabelRow,
    Turnaround,
)
from labelwise.server.workflow_deps import ProjectManager
from labelwise.workflow import analytics

router = APIRouter(
    prefix="/api/projects/{project_id}/analytics", tags=["analytics"],
    responses=error_responses(401, 403, 404, 422, 503),
)



@router.get("/progress", summary="Tasks per status")
def progress(access: ProjectManager, session: SessionDep) -> Progress:
    return Progress(**analytics.progress(session, access.project.id))


@router.get("/throughput", summary="Tasks and labels submitted per labeler per day (UTC)")
def throughput(
    access: ProjectManager,
    session: SessionDep,
    since: Annotated[date | None, Query(description="First day, YYYY-MM-DD.")] = None,
    until: Annotated[date | None, Query(description="Last day, YYYY-MM-DD.")] = None,
) -> Page[ThroughputRow]:
    rows = analytics.throughput(session, access.project.id, since=since,
                                until=until)
    return Page[ThroughputRow](items=[ThroughputRow(**r) for r in rows])


@router.get("/time-per-label", summary="Median active seconds per label, per tool")
def time_per_label(
    access: ProjectManager, session: SessionDep
) -> Page[TimePerLabelRow]:
    rows = analytics.time_per_label(session, access.project.id)
    return Page[TimePerLabelRow](items=[TimePerLabelRow(**r) for r in rows])


@router.get("/rejections", summary="Rejection rate per labeler")
def rejections(
    access: ProjectManager, session: SessionDep
) -> Page[RejectionRow]:
    rows = analytics.rejection_rate(session, access.project.id)
    return Page[RejectionRow](items=[RejectionRow(**r) for r in rows])


@router.get("/review-turnaround", summary="Seconds from submit to review")
def review_turnaround(access: ProjectManager, session: SessionDep) -> Turnaround:
    return Turnaround(**analytics.review_turnaround(session,
                                                    access.project.id))


@router.get("/auto-label", summary="Model pre-labels accepted as is, edited or rejected")
def auto_label(access: ProjectManager, session: SessionDep) -> Acceptance:
    return Acceptance(**analytics.auto_label_acceptance(session,
                                                        access.project.id))
