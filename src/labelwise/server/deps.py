"""What routes need, as named ``Annotated`` aliases, so a signature reads as a list of needs.

    @router.get("/api/assets/{asset_id}")
    def read_asset(asset_id: AssetId, session: SessionDep) -> AssetDetail: ...

The workspace is opened once per app (``app.state.workspace``); each request gets its own
database session on one pooled connection, closed when the route returns.

Dependencies that only read app state are ``async def``: FastAPI runs a plain ``def`` in a
worker thread, and a hop there and back costs more than these do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from labelwise.db.queries import MAX_PAGE
from labelwise.storage import BlobStore
from labelwise.workspace import Workspace

#: Largest id a path may name: ids are 64-bit, and bigger numbers overflow SQLite's binding.
MAX_ID = 2**63 - 1


async def get_workspace(request: Request) -> Workspace:
    """The workspace the app serves."""
    return request.app.state.workspace


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]


def get_session(ws: WorkspaceDep) -> Iterator[Session]:
    """A database session for one request, on one connection held until the route returns.

    The sign-in and access dependencies each end their read transaction before the route
    opens its own; on one connection those are a COMMIT and a BEGIN, not a trip through the
    pool with a liveness ping each time.
    """
    with ExitStack() as stack:
        try:
            session = stack.enter_context(ws.session(pinned=True))
        except OperationalError:
            # The database does not answer: a plain session, whose first query fails again in
            # the route, which answers in its own way (503 JSON, or the landing page's 503).
            session = stack.enter_context(ws.session())
        yield session


# "function" scope: the session closes when the route returns, before the body is sent, so a
# slow client downloading an image does not hold a database connection.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_store(ws: WorkspaceDep) -> BlobStore:
    """The blob store holding image bytes and thumbnails."""
    return ws.store


StoreDep = Annotated[BlobStore, Depends(get_store)]

# -- parameters shared by several routes ----------------------------------------------------
DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="Dataset id.")]
AssetId = Annotated[int, Path(ge=1, le=MAX_ID, description="Asset id.")]
PageLimit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, 1..{MAX_PAGE}.")
]
PageCursor = Annotated[
    str | None,
    Query(max_length=200, description="The previous page's next_cursor; omit for page 1."),
]
