"""Synthetic embeddings with planted structure for the curate kernels."""

from __future__ import annotations

import numpy as np
import pytest

#: Sizes of the planted modes; the last one is the tiny rare mode.
MODE_SIZES = (300, 200, 120, 60, 8)


def blobs(sizes=MODE_SIZES, *, d: int = 32, spread: float = 0.15, seed: int = 0):
    """Gaussian modes around orthogonal directions: (X float32 (n, d), mode (n,) int64)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d, dtype=np.float32)[: len(sizes)] * 3.0
    X = np.concatenate(
        [c + rng.normal(0, spread, (s, d)) for c, s in zip(centres, sizes, strict=True)]
    ).astype(np.float32)
    mode = np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)
    return X, mode


@pytest.fixture(scope="session")
def modes():
    return blobs()


# The service tests embed real images: share the exported model with the embedding tests.
from tests.embeddings.conftest import _shared_model_cache, model_cache  # noqa: F401
