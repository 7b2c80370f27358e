"""``/api/docs``: the interactive API documentation (Swagger UI), served from local files.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script: unusable
offline, and both are outside the page CSP. This page uses the copy vendored in
``web/static/vendor/swagger-ui`` and starts it from ``web/static/api-docs.js``. Like the
schema at /api/openapi.json it is public; "Try it out" calls answer as the signed-in user.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from labelwise.server.routes.pages import templates

router = APIRouter()


@router.get("/api/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "api_docs.html",
                                      {"openapi_url": request.app.openapi_url})
