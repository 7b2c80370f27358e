"""``labelwise user``: accounts, roles, passwords and tokens from the command line; the demo's
first owner."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

import labelwise
from labelwise.cli.main import app
from labelwise.workflow import accounts

runner = CliRunner()
FAST = {"LABELWISE_PASSWORD_MEMORY_KIB": "1024", "LABELWISE_PASSWORD_TIME_COST": "1"}


@pytest.fixture
def ws_path(tmp_path, monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    labelwise.init(tmp_path / "ws").close()
    return tmp_path / "ws"


def run(ws, *args, stdin: str | None = None):
    return runner.invoke(app, ["user", *map(str, args)], input=stdin,
                         env={"LABELWISE_WORKSPACE": str(ws), **FAST})


def check_login(ws, username: str, password: str) -> accounts.UserRow:
    with labelwise.open_workspace(ws) as w, w.session() as s:
        return accounts.authenticate(s, username, password,
                                     policy=accounts.AuthPolicy.from_settings(w.settings))


def test_first_owner_from_stdin_then_list(ws_path):
    empty = run(ws_path, "list")
    assert empty.exit_code == 0 and "labelwise user add NAME --role owner" in empty.output
    r = run(ws_path, "add", "Ana", "--role", "owner", "--password-stdin", stdin="pw-Secret-1\n")
    assert r.exit_code == 0, r.output
    assert "user ana added with role owner" in r.output and "pw-Secret-1" not in r.output
    assert check_login(ws_path, "ANA", "pw-Secret-1").role == "owner"
    listed = run(ws_path, "list")
    assert re.search(r"ana\s.*owner\s.*yes", listed.output)


def test_add_prompts_for_the_password_twice(ws_path):
    r = run(ws_path, "add", "bob", "--role", "labeler", stdin="pw-Prompted\npw-Prompted\n")
    assert r.exit_code == 0, r.output
    assert check_login(ws_path, "bob", "pw-Prompted").role == "labeler"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--role", "boss", "--password", "long-enough"], 65, "unknown role 'boss'"),
        (["--role", "labeler", "--password", "short"], 65, "at least 8"),
        (["--role", "labeler", "--password", "x-long-enough", "--password-stdin"], 65, "not both"),
    ],
)
def test_add_refuses_bad_input_with_advice(ws_path, args, code, message):
    r = run(ws_path, "add", "carl", *args)
    assert r.exit_code == code
    assert message in r.output and "Traceback" not in r.output


def test_duplicate_username_is_a_conflict(ws_path):
    made = run(ws_path, "add", "dora", "--role", "manager", "--password", "pw-long-1")
    assert made.exit_code == 0
    r = run(ws_path, "add", "DORA", "--role", "labeler", "--password", "pw-long-2")
    assert r.exit_code == 4 and "taken" in r.output


def test_roles_deactivation_and_the_last_owner(ws_path):
    run(ws_path, "add", "ana", "--role", "owner", "--password", "pw-long-1")
    run(ws_path, "add", "bob", "--role", "labeler", "--password", "pw-long-2")
    demote = run(ws_path, "set-role", "ana", "admin")
    assert demote.exit_code == 4 and "last owner" in demote.output
    assert run(ws_path, "deactivate", "ana").exit_code == 4
    assert run(ws_path, "set-role", "bob", "owner").exit_code == 0
    assert run(ws_path, "set-role", "ana", "admin").exit_code == 0
    r = run(ws_path, "deactivate", "bob")
    assert r.exit_code == 4  # bob is the last owner now
    assert run(ws_path, "deactivate", "ana").exit_code == 0
    with pytest.raises(labelwise.errors.AuthenticationError, match="deactivated"):
        check_login(ws_path, "ana", "pw-long-1")
    assert run(ws_path, "activate", "ana").exit_code == 0
    assert check_login(ws_path, "ana", "pw-long-1").role == "admin"
    missing = run(ws_path, "set-role", "zed", "admin")
    assert missing.exit_code == 3 and "no user with username 'zed'" in missing.output


def test_passwd_sets_a_new_password(ws_path):
    run(ws_path, "add", "ana", "--role", "owner", "--password", "pw-long-1")
    r = run(ws_path, "passwd", "ana", "--password-stdin", stdin="pw-changed-2\n")
    assert r.exit_code == 0, r.output
    assert check_login(ws_path, "ana", "pw-changed-2")
    with pytest.raises(labelwise.errors.AuthenticationError):
        check_login(ws_path, "ana", "pw-long-1")


def test_tokens_create_list_revoke(ws_path):
    run(ws_path, "add", "ana", "--role", "owner", "--password", "pw-long-1")
    made = run(ws_path, "token", "create", "ci", "--user", "ana", "--expires-days", "30")
    assert made.exit_code == 0, made.output
    [token] = [ln for ln in made.output.splitlines() if ln.startswith("lw_")]
    with labelwise.open_workspace(ws_path) as w, w.session() as s:
        user, row = accounts.resolve_token(s, token)
        assert user.username == "ana" and row.name == "ci" and row.expires_at is not None
    listed = run(ws_path, "token", "list", "--user", "ana")
    assert "ci" in listed.output and "active" in listed.output
    assert token not in listed.output and token[:10] in listed.output
    assert run(ws_path, "token", "revoke", str(row.id), "--user", "ana").exit_code == 0
    assert "revoked" in run(ws_path, "token", "list", "--user", "ana").output
    with labelwise.open_workspace(ws_path) as w, w.session() as s:
        assert accounts.resolve_token(s, token) is None
    wrong = run(ws_path, "token", "revoke", "99", "--user", "ana")
    assert wrong.exit_code == 3 and "no API token with id 99" in wrong.output
    bad = run(ws_path, "token", "create", "ci", "--user", "ana", "--expires-days", "0")
    assert bad.exit_code == 65 and "out of range" in bad.output


def test_demo_prints_a_first_owner_once(tmp_path, monkeypatch):
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    args = ["demo", str(tmp_path / "demo"), "--images", "10", "--no-serve"]
    first = runner.invoke(app, args, env=FAST)
    assert first.exit_code == 0, first.output
    found = re.search(r"sign in as admin with password (\S+)", first.output)
    assert found, first.output
    assert check_login(tmp_path / "demo", "admin", found.group(1)).role == "owner"
    again = runner.invoke(app, args, env=FAST)
    assert again.exit_code == 0 and found.group(1) not in again.output
    assert "existing account" in again.output
