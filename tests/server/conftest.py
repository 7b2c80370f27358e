"""Fixtures for the web server: an app over a small imported COCO dataset, signed-in clients.

``client`` is signed in as an owner; ``client_for("labeler")`` gives a client signed in as a
fresh user with that workspace role; ``anon`` is a client signed in as nobody.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import labelwise
from tests.server.helpers import FAST_HASHING, Imported, import_test_dataset, make_client, make_user


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch) -> None:
    """Cheap argon2 parameters: workspaces made in these tests read them from the env."""
    for name, value in FAST_HASHING.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def imported(workspace: labelwise.Workspace, tmp_path: Path) -> Imported:
    return import_test_dataset(workspace, tmp_path / "src")


@pytest.fixture
def client(workspace: labelwise.Workspace, imported: Imported) -> TestClient:
    """A client of the app over ``workspace`` (both backends) holding the test dataset,
    signed in as an owner."""
    return make_client(workspace)


@pytest.fixture
def anon(workspace: labelwise.Workspace, imported: Imported) -> TestClient:
    """A client of the same app setup, not signed in."""
    return make_client(workspace, user=None)


@pytest.fixture
def client_for(workspace: labelwise.Workspace, imported: Imported) -> Callable[..., TestClient]:
    """``client_for(role, username=None)``: a client signed in as a user with that workspace
    role (made on first use; named after the role unless ``username`` is given)."""

    def factory(role: str, username: str | None = None) -> TestClient:
        name = username or f"{role}-user"
        make_user(workspace, name, role)
        return make_client(workspace, user=name)

    return factory
