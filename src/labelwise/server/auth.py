"""Who is asking: session cookies, Bearer tokens, CSRF and role checks, as FastAPI dependencies.

    @router.get("/api/things")
    def list_things(user: CurrentUser, session: SessionDep) -> ...: ...

    @router.post("/api/things", dependencies=[Depends(require_role("manager"))])

A request is signed in by the ``labelwise_session`` cookie (browsers) or an
``Authorization: Bearer lw_...`` header (scripts, the CLI). A request that changes data (POST,
PUT, PATCH, DELETE) and is signed in by cookie must carry ``X-CSRF-Token`` equal to its
session's CSRF token, or it is refused with 403: another site can make a browser send the
cookie, but cannot read the token. Bearer requests need no CSRF token (browsers never add the
header on their own).

The resolver commits the request's database session before the route runs (it may refresh a
last-seen stamp), so routes start with no transaction open and may use ``session.begin()``.

Signing in is one query per request (``accounts.resolve_token`` / ``resolve_session`` join
the token or web session to its user). Dependencies that touch no database are ``async
def``, so FastAPI does not hop to a worker thread for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Literal

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie, HTTPBearer
from sqlalchemy.orm import Session

from labelwise.db.account_models import ApiTokenRow, UserRow, WebSessionRow
from labelwise.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from labelwise.server.deps import AssetId, SessionDep
from labelwise.workflow import accounts
from labelwise.workflow.accounts import AuthPolicy, NewSession

SESSION_COOKIE = "labelwise_session"
CSRF_COOKIE = "labelwise_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SIGN_IN_ADVICE = (
    "sign in with POST /api/auth/login, or send 'Authorization: Bearer lw_...' with a token "
    "from `labelwise user token create NAME`"
)

# Declared for the OpenAPI schema (its security schemes); the header and cookie are read below.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="An API token (lw_...) from `labelwise user token create` or "
    "POST /api/auth/tokens.",
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="SessionCookie",
    description="Set by POST /api/auth/login. Requests that change data also need the "
    "X-CSRF-Token header.",
)


@dataclass(frozen=True)
class RequestAuth:
    """How the request is signed in: by a web session or by an API token."""

    user: UserRow
    via: Literal["session", "token"]
    web_session: WebSessionRow | None = None
    token: ApiTokenRow | None = None


def get_policy(request: Request) -> AuthPolicy:
    """The account policy of the app's settings."""
    state = request.app.state
    if getattr(state, "auth_policy", None) is None:
        state.auth_policy = AuthPolicy.from_settings(state.settings)
    return state.auth_policy


async def policy_dependency(request: Request) -> AuthPolicy:
    return get_policy(request)


PolicyDep = Annotated[AuthPolicy, Depends(policy_dependency)]


def resolve_request(
    request: Request,
    session: SessionDep,
    policy: PolicyDep,
    _bearer_doc: Annotated[object, Depends(_bearer)],
    _cookie_doc: Annotated[object, Depends(_cookie)],
) -> RequestAuth | None:
    """The request's credentials checked: None when it carries none (or an ended session)."""
    auth = authenticate_request(request, session, policy)
    session.commit()
    request.state.auth = auth
    return auth


def authenticate_request(
    request: Request, session: Session, policy: AuthPolicy
) -> RequestAuth | None:
    """``resolve_request`` without FastAPI, for routes that resolve the user themselves."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "the Authorization header must be 'Bearer lw_...'; create a token with "
                "`labelwise user token create NAME`"
            )
        found = accounts.resolve_token(session, value.strip())
        if found is None:
            raise AuthenticationError(
                "the API token is unknown, revoked or expired, or its user is deactivated; "
                "create a new one with `labelwise user token create NAME`"
            )
        return RequestAuth(user=found[0], via="token", token=found[1])
    found_session = accounts.resolve_session(session, request.cookies.get(SESSION_COOKIE),
                                             policy=policy)
    if found_session is None:
        return None
    user, web = found_session
    if request.method not in SAFE_METHODS and not accounts.csrf_matches(
        web, request.headers.get(CSRF_HEADER)
    ):
        raise PermissionDeniedError(
            f"this request changes data and is signed in by cookie, but its {CSRF_HEADER} "
            "header is missing or wrong; send the csrf_token POST /api/auth/login answered "
            f"(the {CSRF_COOKIE} cookie holds it too)"
        )
    return RequestAuth(user=user, via="session", web_session=web)


MaybeAuth = Annotated[RequestAuth | None, Depends(resolve_request)]


async def require_auth(auth: MaybeAuth) -> RequestAuth:
    if auth is None:
        raise AuthenticationError(f"not signed in; {SIGN_IN_ADVICE}")
    return auth


RequestAuthDep = Annotated[RequestAuth, Depends(require_auth)]


async def current_user(auth: RequestAuthDep) -> UserRow:
    return auth.user


async def optional_user(auth: MaybeAuth) -> UserRow | None:
    return auth.user if auth is not None else None


#: The signed-in user; 401 with the error envelope when there is none.
CurrentUser = Annotated[UserRow, Depends(current_user)]
#: The signed-in user or None, for pages that also greet visitors.
MaybeUser = Annotated[UserRow | None, Depends(optional_user)]


@cache
def require_role(minimum: str):
    """A dependency returning the signed-in user, or 403 when their workspace role ranks below
    ``minimum`` (owner > admin > manager > reviewer > labeler).

        @router.get("/api/x", dependencies=[Depends(require_role("manager"))])
        def x(user: Annotated[UserRow, Depends(require_role("admin"))]): ...
    """
    accounts.check_role(minimum)

    async def role_at_least(user: CurrentUser) -> UserRow:
        if not accounts.has_role(user, minimum):
            raise PermissionDeniedError(
                f"this needs the {minimum} role or higher; {user.username!r} is a {user.role}. "
                "Ask an admin to change your role if you need it"
            )
        return user

    role_at_least.__name__ = f"require_{minimum}"
    return role_at_least


ManagerUser = Annotated[UserRow, Depends(require_role("manager"))]
AdminUser = Annotated[UserRow, Depends(require_role("admin"))]


def can_view_asset(session: Session, user: UserRow, asset_id: int) -> bool:
    """Managers and above see every asset; others those a project gives them."""
    if accounts.has_role(user, "manager"):
        return True
    try:
        from labelwise.workflow.access import can_view_asset as via_projects
    except ImportError:  # projects not installed: nothing is shared below manager
        return False
    return bool(via_projects(session, user, asset_id))


def asset_viewer(asset_id: AssetId, user: CurrentUser, session: SessionDep) -> UserRow:
    """The user, when they may see this asset; otherwise 404 as if it did not exist, so ids
    cannot be probed."""
    if not can_view_asset(session, user, asset_id):
        raise NotFoundError(f"no asset with id {asset_id}")
    session.commit()  # end the read transaction, as resolve_request does
    return user


#: The signed-in user, allowed to see the path's ``asset_id`` (404 otherwise).
AssetViewer = Annotated[UserRow, Depends(asset_viewer)]


# -- cookies -------------------------------------------------------------------------------
def client_address(request: Request) -> str | None:
    """The client's address (behind a proxy, run uvicorn with --proxy-headers)."""
    return request.client.host if request.client else None


def _secure(request: Request) -> bool:
    configured = request.app.state.settings.secure_cookies
    return configured if configured is not None else request.url.scheme == "https"


def set_session_cookies(response: Response, request: Request, new: NewSession) -> None:
    """The HttpOnly session cookie, and the CSRF token in a cookie the browser app can read."""
    policy = get_policy(request)
    common = {"max_age": policy.session_hours * 3600, "path": "/", "samesite": "lax",
              "secure": _secure(request)}
    response.set_cookie(SESSION_COOKIE, new.token, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, new.csrf_token, httponly=False, **common)


def clear_session_cookies(response: Response, request: Request) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(
            name, path="/", samesite="lax", secure=_secure(request), httponly=name == SESSION_COOKIE
        )
