"""Settings: every field is documented, URLs are checked, secrets stay out of files."""

from __future__ import annotations

from pathlib import Path

import pytest

import labelwise
from labelwise.config import Settings
from labelwise.errors import ConfigError, WorkspaceError

DOCS = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented():
    text = DOCS.read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in text, f"setting {name} is missing from docs/configuration.md"
        assert f"`LABELWISE_{name.upper()}`" in text


def test_env_switches_database(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELWISE_DATABASE_URL", "postgresql://u@h/db")
    s = Settings(workspace=tmp_path)
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert not s.is_sqlite


def test_default_database_is_sqlite_in_workspace(tmp_path):
    s = Settings(workspace=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/labelwise.db"
    assert s.resolved_storage_url == str((tmp_path / "blobs").resolve())


def test_unsupported_database_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not supported"):
        Settings(workspace=tmp_path, database_url="mysql://x@y/z")


def test_password_never_written_to_workspace_file(tmp_path):
    with pytest.raises(ConfigError, match="password"):
        labelwise.init(tmp_path / "w", database_url="postgresql+psycopg://u:secret@127.0.0.1/x")
    marker = tmp_path / "w" / "labelwise.json"
    assert not marker.exists() or "secret" not in marker.read_text()


def test_open_missing_workspace_says_how_to_create(tmp_path):
    with pytest.raises(WorkspaceError, match="labelwise init"):
        labelwise.open_workspace(tmp_path / "nothing-here")


def test_init_then_open_round_trip(tmp_path):
    labelwise.init(tmp_path / "w").close()
    with labelwise.open_workspace(tmp_path / "w") as ws:
        assert ws.datasets() == []


def test_unreachable_postgres_gives_advice(tmp_path):
    with pytest.raises(WorkspaceError, match="cannot connect to the database"):
        labelwise.init(tmp_path / "w", database_url="postgresql+psycopg://u@127.0.0.1:1/x")
