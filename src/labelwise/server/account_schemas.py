"""Request and response models of the account routes: sign-in, users, API tokens.

Request models forbid unknown keys, so a typo ("pasword") is a 422 rather than silently
ignored. No response model has a field for a password hash or a token digest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.server.schemas import Schema
from labelwise.workflow.accounts import MAX_PASSWORD, MAX_TOKEN_DAYS

Role = Literal["owner", "admin", "manager", "reviewer", "labeler"]
Username = Field(min_length=1, max_length=64, description="Case-insensitive user name.")
Password = Field(min_length=1, max_length=MAX_PASSWORD)


class Request(BaseModel):
    # Not RequestBody's NUL check: the account services refuse control characters themselves,
    # and a sign-in must answer 401 without saying which part was wrong.
    model_config = ConfigDict(extra="forbid")


class UserPublic(Schema):
    id: int
    username: str
    display_name: str
    role: Role = Field(description="Workspace role: owner > admin > manager > reviewer > labeler.")
    is_active: bool
    created_at: datetime
    password_changed_at: datetime


class Me(UserPublic):
    auth: Literal["session", "token"] = Field(description="How this request is signed in.")


class LoginRequest(Request):
    username: str = Username
    password: str = Password


class LoginResponse(Schema):
    user: UserPublic
    csrf_token: str = Field(
        description="Send it as the X-CSRF-Token header on every POST, PUT, PATCH and DELETE "
        "signed in by the session cookie (the labelwise_csrf cookie holds it too)."
    )
    expires_at: datetime = Field(description="When the session ends at the latest.")


class PasswordChange(Request):
    current_password: str = Password
    new_password: str = Password


class UserCreate(Request):
    username: str = Username
    password: str = Password
    role: Role
    display_name: str = Field(default="", max_length=200)


class UserUpdate(Request):
    """Only the fields given change."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    is_active: bool | None = Field(
        default=None, description="false ends the user's sessions and stops their tokens."
    )
    password: str | None = Field(
        default=None, min_length=1, max_length=MAX_PASSWORD,
        description="A new password (an admin's reset); the user's sessions end.",
    )


class TokenCreate(Request):
    name: str = Field(min_length=1, max_length=100, description="What uses the token.")
    expires_days: int | None = Field(
        default=None, ge=1, le=MAX_TOKEN_DAYS, description="Lifetime; null: until revoked."
    )


class TokenPublic(Schema):
    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself. Shown this once: store it now.")
