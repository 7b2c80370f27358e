"""Server-rendered HTML pages (Jinja2 templates in ``labelwise/web/templates``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import OperationalError

from labelwise import __version__
from labelwise.db import queries
from labelwise.server.auth import PolicyDep, authenticate_request
from labelwise.server.deps import SessionDep
from labelwise.server.errors import redact
from labelwise.server.routes.health import health_status
from labelwise.web import TEMPLATES_DIR
from labelwise.workflow import accounts

router = APIRouter(tags=["pages"])

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["version"] = __version__

DATABASE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@router.head("/", include_in_schema=False)  # monitors probe with HEAD
@router.get(
    "/",
    summary="Landing page: health and datasets",
    description="A small HTML page: version, database, and each dataset with links to its "
    "JSON (datasets for managers and above). 401 with sign-in advice when not signed in; 503 "
    "when the database is unreachable.",
    response_class=HTMLResponse,
    responses={401: {"description": "Not signed in: the page says how to sign in."}},
)
def index(request: Request, session: SessionDep, policy: PolicyDep) -> HTMLResponse:
    dialect = session.get_bind().dialect.name
    context = {"database": DATABASE_NAMES.get(dialect, dialect), "datasets": [], "error": None,
               "user": None, "sees_datasets": False}
    try:
        context["health"] = health_status(session)
        auth = authenticate_request(request, session, policy)
        session.commit()
        if auth is None:
            return templates.TemplateResponse(request, "signin.html", {}, status_code=401)
        context["user"] = auth.user
        context["sees_datasets"] = accounts.has_role(auth.user, "manager")
        if context["sees_datasets"]:
            context["datasets"] = queries.list_datasets(session)
        status = 200
    except OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
        context["error"] = redact(f"the database is unavailable ({reason})")
        status = 503
    return templates.TemplateResponse(request, "index.html", context, status_code=status)
