"""``GET /api/health``: is the server up and does the database answer."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from labelwise import __version__
from labelwise.db import queries
from labelwise.server.deps import SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import Health

router = APIRouter(prefix="/api", tags=["health"], responses=error_responses(503))


def health_status(session: Session) -> Health:
    """Version, database kind and dataset count; raises if the database does not answer."""
    return Health(
        version=__version__,
        database=session.get_bind().dialect.name,
        datasets=queries.count_datasets(session),
    )


@router.head("/health", include_in_schema=False)  # monitors probe with HEAD
@router.get(
    "/health",
    summary="Server and database health",
    description="Runs one query against the database. 503 with the error envelope when the "
    "database is unreachable, so load balancers and scripts can poll it.",
)
def read_health(session: SessionDep) -> Health:
    return health_status(session)
