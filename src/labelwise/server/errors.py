"""Every failure as one JSON envelope, with a status code that fits.

    {"error": {"type": "NotFoundError", "message": "no asset with id 7", "problems": []}}

``LabelwiseError`` answers with its class's ``http_status``; request validation with 422; an
unreachable database with 503; routing errors (unknown path, wrong method) with their own
status. Messages never carry a password: URLs in them are redacted on the way out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from labelwise.errors import LabelwiseError
from labelwise.server.schemas import ErrorResponse

log = logging.getLogger("labelwise.server")

# user:password@ in any URL-like string ("postgresql+psycopg://u:pw@host/db").
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*):[^@\s]*@")


def redact(text: str) -> str:
    """Hide passwords in URLs: ``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


def error_response(
    status_code: int,
    type_: str,
    message: str,
    problems: Iterable[str] = (),
    *,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON envelope for one error, with every text redacted."""
    body = {
        "error": {
            "type": type_,
            "message": redact(message),
            "problems": [redact(p) for p in problems],
        }
    }
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


async def _labelwise_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LabelwiseError)
    if exc.http_status >= 500:
        cause = f" (from {type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        log.error("%s: %s%s", type(exc).__name__, redact(str(exc)), redact(cause))
    return error_response(
        exc.http_status, type(exc).__name__, exc.message, exc.problems,
        headers=getattr(exc, "headers", None),
    )


def _field(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    return error_response(
        422,
        "RequestValidationError",
        "the request has invalid parameters; fix the ones listed in 'problems'",
        problems,
    )


#: FastAPI's detail for a body it cannot decode at all (e.g. bytes that are not UTF-8).
UNREADABLE_BODY = "There was an error parsing the body"


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = "no such page or API route; the API lives under /api (see /api/openapi.json)"
    elif exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
        message = ("cannot read the request body: send JSON encoded as UTF-8 with "
                   "Content-Type: application/json")
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, "HTTPError", message, headers=exc.headers)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    log.error("database unavailable: %s", redact(reason))
    return error_response(
        503,
        "DatabaseUnavailableError",
        f"the database is unavailable ({reason}); check that the database server runs and "
        "LABELWISE_DATABASE_URL is right, then retry",
        headers={"Retry-After": "5"},
    )


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server log (the server re-raises after answering); the client
    # learns nothing about the internals. This answer is made outside every middleware, so
    # it adds the security headers itself.
    from labelwise.server.security import BASE_HEADERS

    return error_response(
        500,
        "InternalServerError",
        "internal server error; the server log has the details",
        headers=BASE_HEADERS,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error ``app`` raises with the envelope."""
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(LabelwiseError, _labelwise_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries saying these status codes answer with the envelope."""
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]} for code in codes}


_DESCRIPTIONS = {
    400: "Bad request: an invalid cursor, a body that is not UTF-8 JSON, or a Host this "
    "server does not answer to.",
    401: "Not signed in: no valid session cookie or Bearer token.",
    403: "Signed in, but the role does not allow this, or the X-CSRF-Token header is "
    "missing.",
    404: "No such dataset, split or asset.",
    409: "Conflicts with the current state (a name already taken, a stale version).",
    422: "Invalid parameters.",
    429: "Too many failed sign-ins; retry after Retry-After seconds.",
    500: "The blob store cannot read the file.",
    503: "The database is unavailable.",
}
