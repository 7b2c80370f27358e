"""Accounts: users and their workspace roles, passwords, web sessions, API tokens, throttling.

Secrets are never stored or logged in plain text: passwords become argon2id hashes, session,
CSRF and API tokens are kept as SHA-256 digests (they are long random strings, so a fast hash
is enough). A plaintext token exists once, in the value a ``create_*`` function returns.

Each function that writes commits its own work: one call, one transaction. Failed sign-ins are
rows in the database, so throttling holds across several server worker processes.

    user = create_user(session, "ana", "correct horse", role="labeler")
    new = login(session, "ana", "correct horse", address="10.0.0.7")
    user, web = resolve_session(session, new.token)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labelwise.config import Settings
from labelwise.db.account_models import ApiTokenRow, LoginAttemptRow, UserRow, WebSessionRow
from labelwise.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TooManyRequestsError,
    ValidationError,
)

log = logging.getLogger("labelwise.accounts")

#: Workspace roles, highest first: each may do everything the ones after it may.
ROLES = ("owner", "admin", "manager", "reviewer", "labeler")
ROLE_RANK = {role: len(ROLES) - i for i, role in enumerate(ROLES)}

TOKEN_PREFIX = "lw_"
#: Characters of a token kept in clear, so a list can tell tokens apart ("lw_AbC12xYz").
SHOWN_PREFIX = 10
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")  # use with fullmatch
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TOKEN_DAYS = 3650
#: Last-seen / last-used stamps are refreshed at most this often, to spare the database.
TOUCH_EVERY = timedelta(minutes=1)
WRONG_CREDENTIALS = "wrong username or password"


@dataclass(frozen=True)
class AuthPolicy:
    """The account settings in one place; ``AuthPolicy.from_settings(ws.settings)``."""

    session_hours: int = 168
    session_idle_hours: int = 24
    login_user_limit: int = 5
    login_address_limit: int = 20
    login_window_minutes: int = 15
    password_memory_kib: int = 65536
    password_time_cost: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthPolicy:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.login_window_minutes)


DEFAULT_POLICY = AuthPolicy()


@dataclass(frozen=True)
class NewSession:
    """A web session just made. ``token`` and ``csrf_token`` are plaintext, shown once."""

    id: int
    user: UserRow
    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewToken:
    """An API token just made. ``token`` is the plaintext, shown once and never again."""

    row: ApiTokenRow
    token: str


# -- small helpers -------------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def digest(secret: str) -> str:
    """SHA-256 hex of a random token: what the database keeps instead of the token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(presented: str | None, stored_digest: str) -> bool:
    """Whether ``presented`` hashes to ``stored_digest``, compared in constant time."""
    if not presented:
        return False
    return hmac.compare_digest(digest(presented), stored_digest)


def role_rank(role: str) -> int:
    """owner 5 > admin 4 > manager 3 > reviewer 2 > labeler 1."""
    return ROLE_RANK[check_role(role)]


def check_role(role: str) -> str:
    if role not in ROLE_RANK:
        raise ValidationError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def has_role(user: UserRow, minimum: str) -> bool:
    """Whether the user's workspace role ranks at least ``minimum``."""
    return role_rank(user.role) >= role_rank(minimum)


def clean_text(value: str, what: str) -> str:
    """``value`` stripped; control characters (NUL, newlines, ...) are refused."""
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise ValidationError(
            f"the {what} contains control characters (such as a newline); use plain text"
        )
    return value.strip()


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise ValidationError(
            f"username {username!r} is not allowed: use 1-64 letters, digits, '.', '_', '-' "
            "or '@', starting with a letter or digit"
        )
    return name


def check_password(password: str, *, username: str = "") -> None:
    """Refuse passwords that are too short, too long or equal to the username."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD}"
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"the password is longer than {MAX_PASSWORD} characters")
    if username and password.strip().lower() == username.lower():
        raise ValidationError("the password must not be the username; choose another one")


@lru_cache(maxsize=8)
def _hasher(memory_kib: int, time_cost: int) -> PasswordHasher:
    return PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=4)


def hasher(policy: AuthPolicy = DEFAULT_POLICY) -> PasswordHasher:
    """The argon2id hasher for the policy's parameters."""
    return _hasher(policy.password_memory_kib, policy.password_time_cost)


@lru_cache(maxsize=8)
def _dummy_hash(memory_kib: int, time_cost: int) -> str:
    return _hasher(memory_kib, time_cost).hash(secrets.token_urlsafe(16))


def hash_password(password: str, policy: AuthPolicy = DEFAULT_POLICY) -> str:
    return hasher(policy).hash(password)


def _verify(stored: str, password: str, policy: AuthPolicy) -> bool:
    try:
        return hasher(policy).verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# -- users ---------------------------------------------------------------------------------
def user_public(user: UserRow) -> dict[str, Any]:
    """What clients may see of a user: never the password hash."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": as_utc(user.created_at),
        "password_changed_at": as_utc(user.password_changed_at),
    }


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(UserRow)) or 0


def get_user(session: Session, ref: int | str) -> UserRow:
    """A user by id or by username (case-insensitive)."""
    if isinstance(ref, int):
        user = session.get(UserRow, ref)
    elif USERNAME.fullmatch(ref.strip().lower()):
        user = session.scalar(select(UserRow).where(UserRow.username == ref.strip().lower()))
    else:
        user = None  # no account can have this name
    if user is None:
        what = f"id {ref}" if isinstance(ref, int) else f"username {ref!r}"
        raise NotFoundError(
            f"no user with {what}; list users with `labelwise user list` or GET /api/users"
        )
    return user


def list_users(session: Session, *, include_inactive: bool = True) -> list[UserRow]:
    q = select(UserRow).order_by(UserRow.id)
    if not include_inactive:
        q = q.where(UserRow.is_active.is_(True))
    return list(session.scalars(q))


def create_user(
    session: Session,
    username: str,
    password: str,
    *,
    role: str,
    display_name: str = "",
    actor: UserRow | None = None,
    policy: AuthPolicy = DEFAULT_POLICY,
) -> UserRow:
    """Add a user. ``actor`` (None: the local operator) must be admin+, and owner to make an
    owner."""
    name = normalize_username(username)
    check_role(role)
    check_password(password, username=name)
    _check_actor(actor, target=None, new_role=role)
    if session.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise ConflictError(f"username {name!r} is taken; choose another one")
    now = utcnow()
    user = UserRow(
        username=name,
        display_name=clean_text(display_name, "display name")[:200] or name,
        password_hash=hash_password(password, policy),
        role=role,
        is_active=True,
        created_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.commit()
    log.info("user %r created with role %s", name, role)
    return user


def set_role(
    session: Session, ref: int | str, role: str, *, actor: UserRow | None = None
) -> UserRow:
    """Change a user's workspace role; the last active owner keeps theirs."""
    check_role(role)
    user = get_user(session, ref)
    _check_actor(actor, target=user, new_role=role)
    if user.role == "owner" and role != "owner":
        _keep_an_owner(session, user, f"change the role of {user.username!r}")
    user.role = role
    session.commit()
    log.info("user %r now has role %s", user.username, role)
    return user


def set_display_name(
    session: Session, ref: int | str, display_name: str, *, actor: UserRow | None = None
) -> UserRow:
    user = get_user(session, ref)
    if actor is None or actor.id != user.id:
        _check_actor(actor, target=user)
    cleaned = clean_text(display_name, "display name")
    if not cleaned:
        raise ValidationError("the display name is empty; give one or leave it unchanged")
    user.display_name = cleaned[:200]
    session.commit()
    return user


def deactivate(session: Session, ref: int | str, *, actor: UserRow | None = None) -> UserRow:
    """Stop a user from signing in: their sessions end and their tokens stop working.

    Their labels, reviews and history stay. ``reactivate`` undoes it.
    """
    user = get_user(session, ref)
    _check_actor(actor, target=user)
    if user.role == "owner":
        _keep_an_owner(session, user, f"deactivate {user.username!r}")
    user.is_active = False
    session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user.id))
    session.commit()
    log.info("user %r deactivated", user.username)
    return user


def reactivate(session: Session, ref: int | str, *, actor: UserRow | None = None) -> UserRow:
    user = get_user(session, ref)
    _check_actor(actor, target=user)
    user.is_active = True
    session.commit()
    log.info("user %r reactivated", user.username)
    return user


def _check_actor(actor: UserRow | None, *, target: UserRow | None, new_role: str = "") -> None:
    """Admins manage users; only an owner may grant the owner role or touch an owner."""
    if actor is None:
        return
    if not has_role(actor, "admin"):
        raise PermissionDeniedError(
            f"managing users needs the admin role; {actor.username!r} is a {actor.role}"
        )
    if actor.role == "owner":
        return
    if new_role == "owner":
        raise PermissionDeniedError(
            "only an owner can grant the owner role; ask an owner to do it"
        )
    if target is not None and target.role == "owner":
        raise PermissionDeniedError(
            f"{target.username!r} is an owner; only an owner can change an owner's account"
        )


def _keep_an_owner(session: Session, user: UserRow, action: str) -> None:
    if not user.is_active:
        return
    owners = session.scalar(
        select(func.count())
        .select_from(UserRow)
        .where(UserRow.role == "owner", UserRow.is_active.is_(True))
    )
    if owners <= 1:
        raise ConflictError(
            f"cannot {action}: they are the last owner of the workspace. Make another user "
            "owner first (`labelwise user set-role NAME owner`)"
        )


# -- passwords -----------------------------------------------------------------------------
def set_password(
    session: Session,
    ref: int | str,
    new_password: str,
    *,
    actor: UserRow | None = None,
    policy: AuthPolicy = DEFAULT_POLICY,
) -> UserRow:
    """Reset a user's password (an admin, or the local operator): all their sessions end."""
    user = get_user(session, ref)
    _check_actor(actor, target=user)
    check_password(new_password, username=user.username)
    _store_password(session, user, new_password, policy, keep_session_id=None)
    log.info("password of user %r reset", user.username)
    return user


def change_password(
    session: Session,
    user: UserRow,
    old_password: str,
    new_password: str,
    *,
    keep_session_id: int | None = None,
    policy: AuthPolicy = DEFAULT_POLICY,
) -> UserRow:
    """A user changes their own password; every other session of theirs ends."""
    if not _verify(user.password_hash, old_password, policy):
        raise AuthenticationError("the current password is wrong; the password was not changed")
    check_password(new_password, username=user.username)
    if new_password == old_password:
        raise ValidationError("the new password is the current one; choose a different one")
    _store_password(session, user, new_password, policy, keep_session_id=keep_session_id)
    log.info("user %r changed their password", user.username)
    return user


def _store_password(
    session: Session,
    user: UserRow,
    password: str,
    policy: AuthPolicy,
    *,
    keep_session_id: int | None,
) -> None:
    user.password_hash = hash_password(password, policy)
    user.password_changed_at = utcnow()
    others = delete(WebSessionRow).where(WebSessionRow.user_id == user.id)
    if keep_session_id is not None:
        others = others.where(WebSessionRow.id != keep_session_id)
    session.execute(others)
    session.commit()


# -- signing in and throttling -------------------------------------------------------------
def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    address: str | None = None,
    policy: AuthPolicy = DEFAULT_POLICY,
) -> UserRow:
    """The user these credentials belong to, or AuthenticationError (401) that never says
    whether the username exists. Too many recent failures for the username or the client
    address answer TooManyRequestsError (429) before the password is even checked."""
    now = utcnow()
    name = username.strip().lower()
    # Failures are counted under a digest of the name: people type passwords into the
    # username field, and those must not land in the database.
    key = digest(name)
    _check_throttle(session, key, address, policy, now)
    # A name no account can have (and one PostgreSQL cannot even compare, with a NUL in it)
    # is simply unknown.
    known = USERNAME.fullmatch(name) is not None
    user = session.scalar(select(UserRow).where(UserRow.username == name)) if known else None
    if user is None:
        # Spend the same time as a real check, so timing does not reveal unknown usernames.
        _verify(_dummy_hash(policy.password_memory_kib, policy.password_time_cost), password,
                policy)
        ok = False
    else:
        ok = _verify(user.password_hash, password, policy)
    if not ok:
        _record_failure(session, key, address, policy, now)
        who = f"user {user.username!r}" if user is not None else "an unknown username"
        log.info("failed sign-in for %s from %s", who, address or "an unknown address")
        raise AuthenticationError(WRONG_CREDENTIALS + "; check both and try again")
    if not user.is_active:
        raise AuthenticationError(
            f"the account {user.username!r} is deactivated; ask an admin to reactivate it"
        )
    if hasher(policy).check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password, policy)
    session.execute(
        delete(LoginAttemptRow).where(
            LoginAttemptRow.scope == "username", LoginAttemptRow.key == key
        )
    )
    session.commit()
    return user


def _check_throttle(
    session: Session, key: str, address: str | None, policy: AuthPolicy, now: datetime
) -> None:
    limits = [("username", key, policy.login_user_limit, "this username")]
    if address:
        limits.append(("address", address, policy.login_address_limit, "your address"))
    for scope, value, limit, who in limits:
        recent = session.scalars(
            select(LoginAttemptRow.attempted_at)
            .where(
                LoginAttemptRow.scope == scope,
                LoginAttemptRow.key == value,
                LoginAttemptRow.attempted_at > now - policy.window,
            )
            .order_by(LoginAttemptRow.attempted_at.desc())
            .limit(limit)
        ).all()
        if len(recent) >= limit:
            # When the limit-th latest failure leaves the window, one attempt is free again.
            wait = (as_utc(recent[-1]) + policy.window - now).total_seconds()
            raise TooManyRequestsError(
                f"too many failed sign-ins for {who} ({limit} in {policy.login_window_minutes} "
                f"minutes); wait {max(1, round(wait))} seconds and try again",
                retry_after=round(wait) + 1,
            )


def _record_failure(
    session: Session, key: str, address: str | None, policy: AuthPolicy, now: datetime
) -> None:
    stale = delete(LoginAttemptRow).where(LoginAttemptRow.attempted_at <= now - policy.window)
    session.execute(stale)
    session.add(LoginAttemptRow(scope="username", key=key, attempted_at=now))
    if address:
        session.add(LoginAttemptRow(scope="address", key=address[:255], attempted_at=now))
    session.commit()


# -- web sessions --------------------------------------------------------------------------
def login(
    session: Session,
    username: str,
    password: str,
    *,
    address: str | None = None,
    policy: AuthPolicy = DEFAULT_POLICY,
) -> NewSession:
    """Check the credentials and open a web session."""
    user = authenticate(session, username, password, address=address, policy=policy)
    return create_session(session, user, policy=policy)


def create_session(
    session: Session, user: UserRow, *, policy: AuthPolicy = DEFAULT_POLICY
) -> NewSession:
    now = utcnow()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    # Sign-in is a good moment to sweep sessions that ended on their own.
    expire_sessions(session, policy=policy, commit=False)
    row = WebSessionRow(
        token_hash=digest(token),
        user_id=user.id,
        csrf_hash=digest(csrf),
        created_at=now,
        expires_at=now + timedelta(hours=policy.session_hours),
        last_seen_at=now,
    )
    session.add(row)
    session.commit()
    return NewSession(id=row.id, user=user, token=token, csrf_token=csrf,
                      expires_at=row.expires_at)


def resolve_session(
    session: Session, token: str | None, *, policy: AuthPolicy = DEFAULT_POLICY
) -> tuple[UserRow, WebSessionRow] | None:
    """The active user and session a session cookie names, or None (unknown, ended or idle:
    those are deleted; deactivated user). One query: every request signs in through here."""
    if not token:
        return None
    found = session.execute(
        select(WebSessionRow, UserRow).join(UserRow, UserRow.id == WebSessionRow.user_id)
        .where(WebSessionRow.token_hash == digest(token))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    idle_until = as_utc(row.last_seen_at) + timedelta(hours=policy.session_idle_hours)
    if as_utc(row.expires_at) <= now or idle_until <= now:
        session.delete(row)
        session.commit()
        return None
    if not user.is_active:
        return None
    if now - as_utc(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return user, row


def csrf_matches(web: WebSessionRow, presented: str | None) -> bool:
    """Whether the X-CSRF-Token header value belongs to this session."""
    return same_secret(presented, web.csrf_hash)


def logout(session: Session, token: str | None) -> bool:
    """End the session a cookie names; True when there was one."""
    if not token:
        return False
    result = session.execute(
        delete(WebSessionRow).where(WebSessionRow.token_hash == digest(token))
    )
    session.commit()
    return bool(result.rowcount)


def expire_sessions(
    session: Session, *, policy: AuthPolicy = DEFAULT_POLICY, commit: bool = True
) -> int:
    """Delete sessions past their lifetime or idle limit; returns how many."""
    now = utcnow()
    result = session.execute(
        delete(WebSessionRow).where(
            (WebSessionRow.expires_at <= now)
            | (WebSessionRow.last_seen_at <= now - timedelta(hours=policy.session_idle_hours))
        )
    )
    if commit:
        session.commit()
    return result.rowcount or 0


# -- API tokens ----------------------------------------------------------------------------
def create_token(
    session: Session, user: UserRow, name: str, *, expires_days: int | None = None
) -> NewToken:
    """A new Bearer token for ``user``; the plaintext is in the result and nowhere else."""
    label = clean_text(name, "token name")
    if not label or len(label) > 100:
        raise ValidationError(
            f"token name {name!r} must have 1-100 characters; name it after the script or "
            "machine that uses it"
        )
    if expires_days is not None and not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise ValidationError(
            f"expires_days={expires_days} is out of range; use 1..{MAX_TOKEN_DAYS} days, or "
            "none for a token that lasts until revoked"
        )
    if not user.is_active:
        raise PermissionDeniedError(f"the account {user.username!r} is deactivated")
    now = utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        user_id=user.id,
        name=label,
        token_hash=digest(token),
        prefix=token[:SHOWN_PREFIX],
        created_at=now,
        expires_at=None if expires_days is None else now + timedelta(days=expires_days),
    )
    session.add(row)
    session.commit()
    log.info("API token %r (%s...) created for user %r", label, row.prefix, user.username)
    return NewToken(row=row, token=token)


def token_public(row: ApiTokenRow) -> dict[str, Any]:
    now = utcnow()
    expired = row.expires_at is not None and as_utc(row.expires_at) <= now
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": as_utc(row.created_at),
        "last_used_at": _maybe_utc(row.last_used_at),
        "expires_at": _maybe_utc(row.expires_at),
        "revoked_at": _maybe_utc(row.revoked_at),
        "active": row.revoked_at is None and not expired,
    }


def list_tokens(session: Session, user: UserRow) -> list[ApiTokenRow]:
    """The user's tokens, oldest first, revoked ones included (they show as inactive)."""
    return list(
        session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.user_id == user.id).order_by(ApiTokenRow.id)
        )
    )


def resolve_token(session: Session, token: str | None) -> tuple[UserRow, ApiTokenRow] | None:
    """The active user and token a Bearer value names, or None (unknown, revoked, expired, or
    the user is deactivated). One query: every scripted request signs in through here."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    found = session.execute(
        select(ApiTokenRow, UserRow).join(UserRow, UserRow.id == ApiTokenRow.user_id)
        .where(ApiTokenRow.token_hash == digest(token))
    ).first()
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if row.revoked_at is not None or not user.is_active:
        return None
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return None
    if row.last_used_at is None or now - as_utc(row.last_used_at) >= TOUCH_EVERY:
        row.last_used_at = now
        session.commit()
    return user, row


def revoke_token(session: Session, user: UserRow, token_id: int) -> ApiTokenRow:
    """Revoke one of the user's tokens; revoking twice is harmless."""
    row = session.get(ApiTokenRow, token_id)
    if row is None or row.user_id != user.id:
        raise NotFoundError(
            f"{user.username!r} has no API token with id {token_id}; list them with "
            "`labelwise user token list` or GET /api/auth/tokens"
        )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
        log.info("API token %r (%s...) revoked", row.name, row.prefix)
    return row
