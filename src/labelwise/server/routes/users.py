"""``/api/users`` (managers read, admins write) and ``/api/auth/tokens`` (everyone, their own).

Only an owner grants the owner role or changes an owner's account; the last active owner can
be neither demoted nor deactivated.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from labelwise.db.account_models import UserRow
from labelwise.server.account_schemas import (
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from labelwise.server.auth import AdminUser, CurrentUser, PolicyDep, require_role
from labelwise.server.deps import MAX_ID, SessionDep
from labelwise.server.errors import error_responses
from labelwise.server.schemas import Page
from labelwise.workflow import accounts

router = APIRouter(tags=["users"], responses=error_responses(401, 403, 503))

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="User id.")]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="API token id.")]


def _public(user: UserRow) -> UserPublic:
    return UserPublic.model_validate(accounts.user_public(user))


@router.get(
    "/api/users",
    summary="List users",
    description="Every user of the workspace with their role, active ones and deactivated "
    "ones, in creation order. Managers and above.",
    dependencies=[Depends(require_role("manager"))],
)
def list_users(session: SessionDep) -> Page[UserPublic]:
    return Page[UserPublic](items=[_public(u) for u in accounts.list_users(session)])


@router.post(
    "/api/users",
    summary="Add a user",
    description="Admins and above; only an owner may create an owner.",
    status_code=201,
    responses=error_responses(409, 422),
)
def create_user(
    body: UserCreate, actor: AdminUser, session: SessionDep, policy: PolicyDep
) -> UserPublic:
    user = accounts.create_user(
        session, body.username, body.password, role=body.role,
        display_name=body.display_name, actor=actor, policy=policy,
    )
    return _public(user)


@router.get(
    "/api/users/{user_id}",
    summary="One user",
    description="Managers and above.",
    dependencies=[Depends(require_role("manager"))],
    responses=error_responses(404, 422),
)
def read_user(user_id: UserId, session: SessionDep) -> UserPublic:
    return _public(accounts.get_user(session, user_id))


@router.patch(
    "/api/users/{user_id}",
    summary="Change a user",
    description="Change the display name, the role, whether the account is active, or reset "
    "the password (the user's sessions end). Admins and above; only an owner may grant the "
    "owner role or change an owner. The last active owner cannot be demoted or deactivated "
    "(409).",
    responses=error_responses(404, 409, 422),
)
def update_user(
    user_id: UserId, body: UserUpdate, actor: AdminUser, session: SessionDep, policy: PolicyDep
) -> UserPublic:
    user = accounts.get_user(session, user_id)
    if body.password is not None:  # refuse a bad password before anything changes
        accounts.check_password(body.password, username=user.username)
    if body.role is not None and body.role != user.role:
        accounts.set_role(session, user.id, body.role, actor=actor)
    if body.is_active is False and user.is_active:
        accounts.deactivate(session, user.id, actor=actor)
    elif body.is_active is True and not user.is_active:
        accounts.reactivate(session, user.id, actor=actor)
    if body.display_name is not None:
        accounts.set_display_name(session, user.id, body.display_name, actor=actor)
    if body.password is not None:
        accounts.set_password(session, user.id, body.password, actor=actor, policy=policy)
    return _public(user)


# -- API tokens of the signed-in user --------------------------------------------------------
@router.get(
    "/api/auth/tokens",
    tags=["auth"],
    summary="List my API tokens",
    description="Names, first characters and dates; never the tokens themselves.",
)
def list_tokens(user: CurrentUser, session: SessionDep) -> Page[TokenPublic]:
    rows = accounts.list_tokens(session, user)
    return Page[TokenPublic](items=[TokenPublic(**accounts.token_public(r)) for r in rows])


@router.post(
    "/api/auth/tokens",
    tags=["auth"],
    summary="Create an API token",
    description="Send it as `Authorization: Bearer <token>`. The token is in this answer only: "
    "the server keeps just its hash.",
    status_code=201,
    responses=error_responses(422),
)
def create_token(
    body: TokenCreate, user: CurrentUser, session: SessionDep, response: Response
) -> TokenCreated:
    new = accounts.create_token(session, user, body.name, expires_days=body.expires_days)
    response.headers["Cache-Control"] = "no-store"  # the answer holds the token
    return TokenCreated(**accounts.token_public(new.row), token=new.token)


@router.delete(
    "/api/auth/tokens/{token_id}",
    tags=["auth"],
    summary="Revoke one of my API tokens",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 422),
)
def revoke_token(token_id: TokenId, user: CurrentUser, session: SessionDep) -> Response:
    accounts.revoke_token(session, user, token_id)
    return Response(status_code=204)
