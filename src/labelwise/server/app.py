"""The FastAPI application: ``create_app(workspace)`` for code and tests, ``app_from_env`` for
uvicorn (``uvicorn --factory labelwise.server.app:app_from_env``, settings from LABELWISE_*).

The JSON API lives under ``/api`` (schema at ``/api/openapi.json``); HTML pages at ``/`` and
static files under ``/static``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from labelwise import __version__
from labelwise.config import Settings
from labelwise.server.errors import error_responses, install_error_handlers
from labelwise.server.workflow_views import install_workflow_errors
from labelwise.server.routes import ROUTERS
from labelwise.server.security import SecurityMiddleware, default_allowed_hosts
from labelwise.web import STATIC_DIR
from labelwise.workspace import Workspace, open_workspace

OPENAPI_TAGS = [
    {"name": "health", "description": "Is the server up and does the database answer."},
    {"name": "datasets", "description": "Datasets, their classes and splits."},
    {"name": "assets", "description": "Images: pages of them, their labels, bytes, thumbnails."},
    {"name": "pages", "description": "Server-rendered HTML pages."},
    {"name": "curation", "description": "Auto-Curate: scores, curated splits, validation sets, "
     "likely mislabels."},
    {"name": "auth", "description": "Sign in and out, the signed-in user, API tokens."},
    {"name": "users", "description": "Users and their workspace roles (admins)."},
    {"name": "projects", "description": "Projects: schema, members, assignment, exports."},
    {"name": "tasks", "description": "Tasks: next task, labels, the label lifecycle."},
    {"name": "review", "description": "Review queue, approve/reject, issue threads."},
    {"name": "analytics", "description": "Project progress, throughput, timing, quality."},
    {"name": "autolabel", "description": "Custom Auto-Label: models and cards, training, "
     "pre-labels, the next batch to label, the review queue of pre-labels."},
]


def open_from_settings(settings: Settings) -> Workspace:
    """Open the workspace ``settings`` names (its marker file fills in unset URLs)."""
    return open_workspace(None, **settings.model_dump())


def create_app(workspace: Workspace | None = None, *, settings: Settings | None = None) -> FastAPI:
    """The labelwise web app serving ``workspace``.

    Without ``workspace`` it opens the one ``settings`` (default: LABELWISE_* environment)
    names, and closes it on shutdown; a workspace passed in stays the caller's to close.
    A server bound to a loopback address (the default 127.0.0.1) answers only to loopback
    Host names; see ``labelwise.server.security``.

        from fastapi.testclient import TestClient
        client = TestClient(create_app(ws), base_url="http://localhost")
        client.get("/api/datasets").json()["items"]
    """
    owned = workspace is None
    if settings is None:
        settings = workspace.settings if workspace is not None else Settings()
    ws = workspace if workspace is not None else open_from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                ws.close()

    app = FastAPI(
        title="labelwise",
        version=__version__,
        summary="A self-hosted data engine for computer vision.",
        description="JSON API of a labelwise workspace. Lists are pages: pass `next_cursor` "
        "back as `cursor`. Every error answers `{\"error\": {\"type\", \"message\", "
        "\"problems\"}}`.",
        openapi_tags=OPENAPI_TAGS,
        openapi_url="/api/openapi.json",
        # FastAPI's Swagger UI and ReDoc pages load scripts from a CDN: unusable offline and
        # outside the page CSP. /api/docs serves a vendored Swagger UI instead (routes/docs.py).
        docs_url=None,
        redoc_url=None,
        # Any request may be refused before its route runs: an unreadable body, a bad Host.
        responses=error_responses(400),
        lifespan=lifespan,
    )
    app.state.workspace = ws
    app.state.settings = settings
    install_error_handlers(app)
    install_workflow_errors(app)
    app.add_middleware(SecurityMiddleware, allowed_hosts=default_allowed_hosts(settings.host))
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn: settings from the LABELWISE_* environment."""
    return create_app(settings=Settings())
