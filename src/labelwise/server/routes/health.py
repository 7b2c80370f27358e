"""``GET /api/health``: is the server up and does the database answer.

Public (monitors and load balancers call it without credentials), so it tells only "ok" and
the version: nothing about the database or the datasets.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.orm import Session

from labelwise import __version__
from labelwise.server.deps import SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import Health

router = APIRouter(prefix="/api", tags=["health"], responses=error_responses(503))


def health_status(session: Session) -> Health:
    """"ok" and the version; raises if the database does not answer."""
    session.execute(text("SELECT 1"))
    return Health(version=__version__)


@router.head("/health", include_in_schema=False)  # monitors probe with HEAD
@router.get(
    "/health",
    summary="Server and database health",
    description="Runs one query against the database. 503 with the error envelope when the "
    "database is unreachable, so load balancers and scripts can poll it.",
)
def read_health(session: SessionDep) -> Health:
    return health_status(session)
