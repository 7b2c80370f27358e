"""Accounts: users, API tokens, web sessions, login throttling.

Secrets never reach the database in plain text: passwords are argon2 hashes, API tokens,
session tokens and CSRF tokens are SHA-256 hex digests. Timestamps are UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from labelwise.db.models import Base, BigId

ROLE_CHECK = "role IN ('owner', 'admin', 'manager', 'reviewer', 'labeler')"


def _stamp(*, nullable: bool = False, index: bool = False) -> Mapped[datetime]:
    if nullable:
        return mapped_column(DateTime(timezone=True), nullable=True, index=index)
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False, index=index
    )


class UserRow(Base):
    """A person who signs in. ``username`` is stored lower-cased, so it is case-insensitive."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # workspace role, see workflow.accounts.ROLES
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _stamp()
    password_changed_at: Mapped[datetime] = _stamp()


class ApiTokenRow(Base):
    """A named Bearer token for scripts and the CLI; only its hash and first characters stay."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _stamp()
    last_used_at: Mapped[datetime | None] = _stamp(nullable=True)
    expires_at: Mapped[datetime | None] = _stamp(nullable=True)
    revoked_at: Mapped[datetime | None] = _stamp(nullable=True)


class WebSessionRow(Base):
    """A browser session behind the ``labelwise_session`` cookie."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    csrf_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _stamp()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_seen_at: Mapped[datetime] = _stamp()


class LoginAttemptRow(Base):
    """A failed sign-in, counted per username and per client address within a time window.

    Kept in the database so every server worker process sees the same counts.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_scope_key_attempted_at", "scope", "key", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # username (its SHA-256) | address
    key: Mapped[str] = mapped_column(String(255))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
