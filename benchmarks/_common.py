"""Helpers for the benchmark scripts: timing, peak memory, tables, JSON results."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Self

import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"
console = Console()


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": date.today().isoformat(),
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a snippet in a fresh interpreter so its time and peak memory are its own.

    The snippet must print one JSON object on its last stdout line.
    """
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(*columns, title=title)
    for r in rows:
        table.add_row(*(f"{v:,.3f}" if isinstance(v, float) else str(v) for v in r))
    console.print(table)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def write_sections(name: str, results: dict[str, Any], *, partial: bool) -> Path:
    """Write ``results``; a ``partial`` run (some sections only) keeps the stored others."""
    previous = RESULTS / f"{name}.json"
    if partial and previous.exists():
        kept = json.loads(previous.read_text())
        kept.pop("machine", None)
        results = {**kept, **results}
    return write_results(name, results)


class Timer:
    def __enter__(self) -> Self:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


# -- Fashion-MNIST embeddings, computed once and cached -------------------------------------------
DATA = Path(__file__).parent / "data"


def fashion_mnist_embeddings(
    split: str, n: int, *, size: int = 112, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` Fashion-MNIST images of ``split`` drawn with ``seed``, embedded at ``size`` px.

    Returns ``(X float32 (n, 1280), labels int64 (n,), images uint8 (n, 28, 28))``. The images
    go through the same resize as ``labelwise embed`` and the built-in ONNX model; the vectors
    are cached in benchmarks/data/ (the model is exported to the cache folder on first use).
    """
    from PIL import Image

    from labelwise.embeddings.backbones import (
        OnnxEmbedder,
        builtin_model,
        ensure_efficientnet_lite0,
    )
    from labelwise.embeddings.preprocess import resize_square
    from labelwise.samples import load_fashion_mnist

    images, labels = load_fashion_mnist(split)
    pick = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    cache = DATA / f"fmnist-{split}-{n}-seed{seed}-{size}px.npy"
    if cache.exists():
        X = np.load(cache)
    else:
        model = builtin_model(DATA / "models")
        ensure_efficientnet_lite0(model.onnx_path)
        embedder = OnnxEmbedder(model)
        parts = []
        for start in range(0, n, 256):
            batch = np.stack([resize_square(Image.fromarray(images[i]), size)
                              for i in pick[start:start + 256]])
            parts.append(embedder.embed(batch))
        X = np.concatenate(parts)
        DATA.mkdir(parents=True, exist_ok=True)
        np.save(cache, X)
    return X.astype(np.float32), labels[pick], images[pick]
