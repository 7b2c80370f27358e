"""Planted categorization data: Gaussian blobs with known classes, for the Auto-Label tests."""

from __future__ import annotations

import numpy as np


def blobs(
    n_per_class: int, k: int = 3, *, d: int = 16, spread: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` classes, ``n_per_class`` rows each: X (n, d) float32, y (n,) int64.

    Centres are 4 apart in random directions; ``spread`` scales the noise (1 = separable,
    4 = heavily overlapping).
    """
    centres = np.random.default_rng(1234).normal(size=(k, d))  # the same classes every call
    rng = np.random.default_rng(seed)
    centres *= 4.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), n_per_class)
    X = centres[y] + spread * rng.normal(size=(len(y), d)) / np.sqrt(d) * 2
    return (X + 10.0).astype(np.float32), y  # offset: rows must not sit around the origin


def multilabel_blobs(n: int, k: int = 4, *, d: int = 16, seed: int = 0):
    """Rows with any subset of ``k`` tags; each tag adds its own direction. Y (n, k) 0/1."""
    dirs = np.random.default_rng(1234).normal(size=(k, d)) * 1.5  # the same tags every call
    rng = np.random.default_rng(seed)
    Y = (rng.uniform(size=(n, k)) < 0.4).astype(np.int64)
    X = Y @ dirs + rng.normal(size=(n, d)) * 0.7 + 10.0
    return X.astype(np.float32), Y
