"""The accounts service on both backends: roles, hashing, throttling, sessions and tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

import labelwise
from labelwise.db.account_models import LoginAttemptRow, UserRow, WebSessionRow
from labelwise.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    TooManyRequestsError,
    ValidationError,
)
from labelwise.workflow import accounts
from labelwise.workflow.accounts import AuthPolicy

FAST = AuthPolicy(password_memory_kib=1024, password_time_cost=1)
PW = "pw-Secret-123"


@pytest.fixture
def session(workspace: labelwise.Workspace):
    with workspace.session() as s:
        yield s


def add(session, name: str, role: str = "labeler", password: str = PW) -> UserRow:
    return accounts.create_user(session, name, password, role=role, policy=FAST)


def test_roles_rank_from_owner_down():
    assert accounts.ROLES == ("owner", "admin", "manager", "reviewer", "labeler")
    ranks = [accounts.role_rank(r) for r in accounts.ROLES]
    assert ranks == sorted(ranks, reverse=True)
    with pytest.raises(ValidationError, match="use one of owner, admin"):
        accounts.role_rank("superuser")


def test_require_role_refuses_an_unknown_role_at_once():
    from labelwise.server.auth import require_role

    with pytest.raises(ValidationError, match="unknown role 'boss'"):
        require_role("boss")


@pytest.mark.parametrize("name", ["", " ", "-ana", "a b", "x" * 65, "ana;drop"])
def test_bad_usernames_are_refused(name):
    with pytest.raises(ValidationError, match="not allowed"):
        accounts.normalize_username(name)


def test_usernames_are_case_insensitive(session):
    add(session, "Ana.Smith@lab")
    assert accounts.get_user(session, "ANA.SMITH@LAB").username == "ana.smith@lab"
    with pytest.raises(ConflictError, match="taken"):
        add(session, "ana.smith@LAB")
    assert accounts.authenticate(session, " Ana.Smith@Lab ", PW, policy=FAST)


def test_passwords_are_argon2id_hashes_never_the_password(session):
    user = add(session, "ana")
    assert user.password_hash.startswith("$argon2id$") and PW not in user.password_hash
    with pytest.raises(ValidationError, match="must not be the username"):
        add(session, "bobbybob", password="BobbyBob")


def test_hashes_are_upgraded_when_the_parameters_change(session):
    user = add(session, "ana")
    old = user.password_hash
    assert "m=1024,t=1" in old
    stronger = AuthPolicy(password_memory_kib=2048, password_time_cost=2)
    accounts.authenticate(session, "ana", PW, policy=stronger)
    session.refresh(user)
    assert user.password_hash != old and "m=2048,t=2" in user.password_hash
    assert accounts.authenticate(session, "ana", PW, policy=stronger).id == user.id


def test_wrong_and_unknown_give_the_same_answer(session):
    add(session, "ana")
    with pytest.raises(AuthenticationError) as wrong:
        accounts.authenticate(session, "ana", "not-it!", policy=FAST)
    with pytest.raises(AuthenticationError) as unknown:
        accounts.authenticate(session, "nobody", "not-it!", policy=FAST)
    assert str(wrong.value) == str(unknown.value)


def test_throttle_counts_failures_in_the_window_and_says_how_long_to_wait(session):
    add(session, "ana")
    policy = AuthPolicy(password_memory_kib=1024, password_time_cost=1, login_user_limit=3,
                        login_window_minutes=10)
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            accounts.authenticate(session, "ana", "bad!", address="10.0.0.1", policy=policy)
    with pytest.raises(TooManyRequestsError) as throttled:
        accounts.authenticate(session, "ana", PW, address="10.0.0.2", policy=policy)
    assert 590 <= throttled.value.retry_after <= 601
    assert throttled.value.headers["Retry-After"] == str(throttled.value.retry_after)
    # Age the failures: the oldest one leaving the window frees one attempt.
    rows = session.scalars(select(LoginAttemptRow).order_by(LoginAttemptRow.id)).all()
    rows[0].attempted_at = accounts.utcnow() - timedelta(minutes=11)
    session.commit()
    assert accounts.authenticate(session, "ana", PW, address="10.0.0.2", policy=policy)
    # A success clears the username's failures; the address's stay counted.
    left = session.scalars(select(LoginAttemptRow.scope)).all()
    assert set(left) == {"address"}


def test_sessions_keep_only_digests_and_end_on_logout(session):
    user = add(session, "ana")
    new = accounts.create_session(session, user, policy=FAST)
    row = session.get(WebSessionRow, new.id)
    assert new.token not in (row.token_hash, row.csrf_hash)
    assert row.token_hash == accounts.digest(new.token)
    found_user, web = accounts.resolve_session(session, new.token, policy=FAST)
    assert found_user.id == user.id and accounts.csrf_matches(web, new.csrf_token)
    assert not accounts.csrf_matches(web, None) and not accounts.csrf_matches(web, "x")
    assert accounts.logout(session, new.token) is True
    assert accounts.resolve_session(session, new.token, policy=FAST) is None
    assert accounts.logout(session, new.token) is False


def test_change_password_keeps_the_current_session_only(session):
    user = add(session, "ana")
    keep = accounts.create_session(session, user, policy=FAST)
    other = accounts.create_session(session, user, policy=FAST)
    with pytest.raises(ValidationError, match="is the current one"):
        accounts.change_password(session, user, PW, PW, policy=FAST)
    accounts.change_password(session, user, PW, "pw-New-4567", keep_session_id=keep.id,
                             policy=FAST)
    assert accounts.resolve_session(session, keep.token, policy=FAST) is not None
    assert accounts.resolve_session(session, other.token, policy=FAST) is None


def test_expire_sessions_sweeps_old_ones(session):
    user = add(session, "ana")
    old = accounts.create_session(session, user, policy=FAST)
    fresh = accounts.create_session(session, user, policy=FAST)
    session.get(WebSessionRow, old.id).expires_at = accounts.utcnow() - timedelta(minutes=1)
    session.commit()
    assert accounts.expire_sessions(session, policy=FAST) == 1
    assert session.scalar(select(func.count()).select_from(WebSessionRow)) == 1
    assert accounts.resolve_session(session, fresh.token, policy=FAST) is not None


def test_tokens_resolve_until_revoked(session):
    user = add(session, "ana")
    new = accounts.create_token(session, user, "ci")
    assert new.token.startswith("lw_") and len(new.token) > 40
    assert new.row.token_hash == accounts.digest(new.token) and new.row.prefix == new.token[:10]
    found_user, row = accounts.resolve_token(session, new.token)
    assert found_user.id == user.id and row.last_used_at is not None
    assert accounts.resolve_token(session, new.token[:-1] + "x") is None
    assert accounts.resolve_token(session, "not-a-token") is None
    accounts.revoke_token(session, user, row.id)
    first_revoked = row.revoked_at
    accounts.revoke_token(session, user, row.id)  # twice is harmless
    assert row.revoked_at == first_revoked
    assert accounts.resolve_token(session, new.token) is None


def test_tokens_belong_to_their_user(session):
    ana, bob = add(session, "ana"), add(session, "bob")
    row = accounts.create_token(session, ana, "ci").row
    with pytest.raises(labelwise.errors.NotFoundError, match="no API token"):
        accounts.revoke_token(session, bob, row.id)
    assert [t.id for t in accounts.list_tokens(session, bob)] == []


def test_actor_rules(session):
    owner, admin = add(session, "olga", "owner"), add(session, "adam", "admin")
    manager = add(session, "mia", "manager")
    with pytest.raises(PermissionDeniedError, match="admin role"):
        accounts.create_user(session, "x1", PW, role="labeler", actor=manager, policy=FAST)
    with pytest.raises(PermissionDeniedError, match="only an owner can grant"):
        accounts.set_role(session, "mia", "owner", actor=admin)
    with pytest.raises(PermissionDeniedError, match="only an owner can change"):
        accounts.set_password(session, "olga", "pw-Hijack-1", actor=admin, policy=FAST)
    assert accounts.set_role(session, "mia", "admin", actor=admin).role == "admin"
    assert accounts.set_role(session, "mia", "owner", actor=owner).role == "owner"
    # Two owners now: one may step down.
    assert accounts.set_role(session, "olga", "admin", actor=owner).role == "admin"
    with pytest.raises(ConflictError, match="last owner"):
        accounts.deactivate(session, "mia")
