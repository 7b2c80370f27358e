"""The Python API for users and projects: every ``labelwise user`` / ``labelwise project``
action reachable from a Workspace, with the same rules and errors, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

import labelwise
from labelwise.db.account_models import ApiTokenRow, UserRow
from labelwise.db.workflow_models import ProjectRow, TaskRow
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.workflow import accounts
from tests.server.helpers import FAST_HASHING, Imported, import_test_dataset

PASSWORD = "a-Long-pass-123"


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch) -> None:
    for name, value in FAST_HASHING.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def data(workspace: labelwise.Workspace, tmp_path: Path) -> Imported:
    return import_test_dataset(workspace, tmp_path / "src")


def _count(ws: labelwise.Workspace, model) -> int:
    with ws.session() as s:
        return s.scalar(select(func.count()).select_from(model))


# -- users and tokens -----------------------------------------------------------------------
def test_users_roles_and_passwords(workspace: labelwise.Workspace):
    ws = workspace
    owner = ws.add_user("Olga", role="owner", password=PASSWORD, display_name="Olga K.")
    assert owner["username"] == "olga" and owner["role"] == "owner"
    assert "password_hash" not in owner and owner["display_name"] == "Olga K."
    ws.add_user("lena", role="labeler", password=PASSWORD)
    assert [u["username"] for u in ws.users()] == ["olga", "lena"]

    assert ws.set_role("lena", "reviewer")["role"] == "reviewer"
    with pytest.raises(ConflictError, match="last owner"):
        ws.set_role("olga", "admin")
    assert ws.deactivate_user("lena")["is_active"] is False
    assert ws.activate_user("lena")["is_active"] is True

    ws.set_password("lena", "another-Pass-456")
    with ws.session() as s:
        assert accounts.authenticate(s, "lena", "another-Pass-456", address="127.0.0.1",
                                     policy=accounts.AuthPolicy.from_settings(ws.settings))


def test_bad_user_input_is_refused_and_writes_nothing(workspace: labelwise.Workspace):
    ws = workspace
    ws.add_user("olga", role="owner", password=PASSWORD)
    with pytest.raises(ValidationError, match="role"):
        ws.add_user("ben", role="boss", password=PASSWORD)
    with pytest.raises(ValidationError, match="password"):
        ws.add_user("ben", role="labeler", password="short")
    with pytest.raises(ConflictError, match="taken"):
        ws.add_user("OLGA", role="labeler", password=PASSWORD)
    with pytest.raises(NotFoundError, match="nobody"):
        ws.set_role("nobody", "labeler")
    assert [u["username"] for u in ws.users()] == ["olga"]


def test_api_tokens(workspace: labelwise.Workspace):
    ws = workspace
    ws.add_user("olga", role="owner", password=PASSWORD)
    made = ws.create_token("olga", "ci", expires_days=30)
    assert made["token"].startswith("lw_") and made["active"] and made["expires_at"]
    with ws.session() as s:
        user, _ = accounts.resolve_token(s, made["token"])
        assert user.username == "olga"
        stored = s.scalar(select(ApiTokenRow.token_hash))
    assert made["token"] not in stored  # only its digest is kept
    listed = ws.tokens("olga")
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]

    revoked = ws.revoke_token("olga", made["id"])
    assert revoked["active"] is False and revoked["revoked_at"] is not None
    with ws.session() as s:
        assert accounts.resolve_token(s, made["token"]) is None
    with pytest.raises(ValidationError, match="expires_days"):
        ws.create_token("olga", "forever", expires_days=0)
    with pytest.raises(NotFoundError, match="no API token with id 999"):
        ws.revoke_token("olga", 999)


# -- projects ---------------------------------------------------------------------------------
def test_projects_end_to_end(workspace: labelwise.Workspace, data: Imported, tmp_path: Path):
    ws = workspace
    with pytest.raises(NotFoundError, match="no owner yet"):
        ws.create_project("p1", data.name)  # nobody to record it under
    ws.add_user("olga", role="owner", password=PASSWORD)
    for name in ("lena", "leo"):
        ws.add_user(name, role="labeler", password=PASSWORD)

    made = ws.create_project("p1", data.name, description="boxes")
    assert made["name"] == "p1" and made["tasks"]["todo"] == len(data.files)
    assert [p["name"] for p in ws.projects()] == ["p1"]
    on_split = ws.create_project("val-only", data.dataset_id, split="val", import_labels=False)
    assert on_split["tasks"]["todo"] == len(data.val)

    assert ws.add_member("p1", "lena", role="labeler")["role"] == "labeler"
    ws.add_member(made["id"], "leo", role="labeler")
    summary = ws.project_summary("p1")
    assert {m["username"]: m["role"] for m in summary["members"]} == {
        "olga": "manager", "lena": "labeler", "leo": "labeler"}
    assert [c["name"] for c in summary["classes"]] == ["cat", "dog"]

    assert ws.assign("p1", ["lena", "leo"], spread=2) == {"lena": 2, "leo": 2}
    with ws.session() as s:
        free = s.scalar(select(TaskRow.asset_id).where(
            TaskRow.project_id == made["id"], TaskRow.assignee_id.is_(None))
            .order_by(TaskRow.asset_id))
    assert ws.assign("p1", "lena", asset_ids=[free]) == {"lena": 1}
    counts = ws.project_summary("p1")["tasks"]
    assert sum(counts.values()) == len(data.files)

    out = tmp_path / "out"
    export = ws.project_export("p1", "coco", out)
    assert export["num_assets"] == len(data.files) and export["dest"] == str(out)
    written = json.loads((out / "annotations.json").read_text())
    assert len(written["images"]) == len(data.files)
    assert len(list((out / "images").iterdir())) == len(data.files)
    snapshot = ws.project_export("p1", "coco", approved_only=True)  # snapshot only
    assert snapshot["num_assets"] == 0 and snapshot["dest"] is None
    assert [e["id"] for e in ws.project_exports("p1")] == [export["id"], snapshot["id"]]


def test_project_actions_recorded_under_by(workspace: labelwise.Workspace, data: Imported):
    ws = workspace
    ws.add_user("olga", role="owner", password=PASSWORD)
    ws.add_user("max", role="manager", password=PASSWORD)
    ws.add_user("lena", role="labeler", password=PASSWORD)
    made = ws.create_project("p1", data.name, by="max")
    assert made["created_by"] == ws.users()[1]["id"]
    assert {m["username"] for m in ws.project_summary("p1")["members"]} == {"max"}
    with pytest.raises(labelwise.errors.PermissionDeniedError, match="lena"):
        ws.create_project("p2", data.name, by="lena")  # labelers cannot create projects


def test_bad_project_input_is_refused_and_writes_nothing(workspace: labelwise.Workspace,
                                                         data: Imported):
    ws = workspace
    ws.add_user("olga", role="owner", password=PASSWORD)
    ws.add_user("lena", role="labeler", password=PASSWORD)
    ws.create_project("p1", data.name)
    tasks_before = _count(ws, TaskRow)
    with pytest.raises(ConflictError, match="already exists"):
        ws.create_project("p1", data.name)
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        ws.create_project("p2", "nope")
    with pytest.raises(NotFoundError, match="no dataset"):
        ws.create_project("p3", str(2**70))  # digits beyond any id: a name that is not there
    with pytest.raises(NotFoundError, match="projects: p1"):
        ws.project_summary("nope")
    with pytest.raises(NotFoundError, match="no user"):
        ws.add_member("p1", str(2**70), role="labeler")
    with pytest.raises(ValidationError, match="project role"):
        ws.add_member("p1", "lena", role="boss")
    with pytest.raises(ValidationError, match="either asset_ids"):
        ws.assign("p1", ["lena"])
    with pytest.raises(ValidationError, match="either asset_ids"):
        ws.assign("p1", ["lena"], asset_ids=[1], spread=2)
    with pytest.raises(ValidationError, match="exactly one user"):
        ws.assign("p1", ["lena", "olga"], asset_ids=[1])
    with pytest.raises(ValidationError, match="member"):
        ws.assign("p1", ["lena"], spread=1)  # lena is not a member of p1
    assert _count(ws, ProjectRow) == 1 and _count(ws, TaskRow) == tasks_before
    with ws.session() as s:
        assert s.scalar(select(func.count()).select_from(TaskRow)
                        .where(TaskRow.assignee_id.is_not(None))) == 0
        assert s.scalar(select(func.count()).select_from(UserRow)) == 2
