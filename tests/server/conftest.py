"""Fixtures for the web server: an app over a small imported COCO dataset, and a client."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import labelwise
from tests.server.helpers import Imported, import_test_dataset, make_client


@pytest.fixture
def imported(workspace: labelwise.Workspace, tmp_path: Path) -> Imported:
    return import_test_dataset(workspace, tmp_path / "src")


@pytest.fixture
def client(workspace: labelwise.Workspace, imported: Imported) -> TestClient:
    """A client of the app over ``workspace`` (both backends) holding the test dataset."""
    return make_client(workspace)
