"""Fixtures for the Auto-Label tests: one exported backbone for the whole run.

The built-in model is exported once per test run into a folder shared by every test worker
(``LABELWISE_MODEL_CACHE``); the exporter's file lock makes concurrent workers wait for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.embeddings.backbones import EmbeddingModel, builtin_model, ensure_efficientnet_lite0


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory, worker_id: str) -> Path:
    """A model folder shared by all test workers of this run."""
    base = tmp_path_factory.getbasetemp()
    root = base if worker_id == "main" else base.parent  # xdist: one folder for all workers
    return root / "labelwise-model-cache"


@pytest.fixture(autouse=True)
def _shared_model_cache(model_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("LABELWISE_MODEL_CACHE", str(model_cache))


@pytest.fixture(scope="session")
def backbone(model_cache: Path) -> EmbeddingModel:
    """The built-in EfficientNet-Lite0, exported to ONNX once for the run."""
    model = builtin_model(model_cache)
    ensure_efficientnet_lite0(model.onnx_path)
    return model
