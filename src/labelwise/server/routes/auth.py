"""``/api/auth``: sign in and out, who am I, change my password."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from labelwise.server.account_schemas import LoginRequest, LoginResponse, Me, PasswordChange
from labelwise.server.auth import (
    SESSION_COOKIE,
    PolicyDep,
    RequestAuthDep,
    clear_session_cookies,
    client_address,
    set_session_cookies,
)
from labelwise.server.deps import SessionDep
from labelwise.server.errors import error_responses
from labelwise.workflow import accounts

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=error_responses(503))


@router.post(
    "/login",
    summary="Sign in",
    description="Checks the username and password and starts a session: the HttpOnly cookie "
    "`labelwise_session` and the CSRF token (in the answer and the `labelwise_csrf` cookie). "
    "A wrong username or password answers 401 without saying which; too many failures for "
    "the username or the client address answer 429 with Retry-After. JSON body only.",
    responses=error_responses(401, 422, 429),
)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    policy: PolicyDep,
) -> LoginResponse:
    # A fresh session token on every sign-in: a token planted before sign-in is worthless.
    accounts.logout(session, request.cookies.get(SESSION_COOKIE))
    new = accounts.login(
        session, body.username, body.password, address=client_address(request), policy=policy
    )
    set_session_cookies(response, request, new)
    response.headers["Cache-Control"] = "no-store"  # the answer holds a secret
    return LoginResponse(
        user=accounts.user_public(new.user), csrf_token=new.csrf_token, expires_at=new.expires_at
    )


@router.post(
    "/logout",
    summary="Sign out",
    description="Ends the cookie's session and clears the cookies. With a Bearer token there "
    "is no session to end (revoke the token with DELETE /api/auth/tokens/{id}).",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403),
)
def logout(auth: RequestAuthDep, request: Request, session: SessionDep) -> Response:
    response = Response(status_code=204)
    if auth.via == "session":
        accounts.logout(session, request.cookies.get(SESSION_COOKIE))
        clear_session_cookies(response, request)
    return response


@router.get(
    "/me",
    summary="The signed-in user",
    responses=error_responses(401),
)
def me(auth: RequestAuthDep) -> Me:
    return Me.model_validate({**accounts.user_public(auth.user), "auth": auth.via})


@router.post(
    "/password",
    summary="Change my password",
    description="Needs the current password. Every other session of the user ends; the one "
    "making the request stays signed in. API tokens keep working.",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 422),
)
def change_password(
    body: PasswordChange, auth: RequestAuthDep, session: SessionDep, policy: PolicyDep
) -> Response:
    keep = auth.web_session.id if auth.web_session is not None else None
    accounts.change_password(
        session, auth.user, body.current_password, body.new_password,
        keep_session_id=keep, policy=policy,
    )
    return Response(status_code=204)
