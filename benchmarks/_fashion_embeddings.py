"""Fashion-MNIST embedded at 112 px by EfficientNet-Lite0, computed once and cached.

The pool (10,000 train images) and the test set (2,000 test images) are drawn with seed 0.
Images are resized 28 -> 112 px (bilinear, grey copied to RGB, as the embedding pipeline does)
and run through the same ONNX export that ``labelwise embed`` uses. The arrays are cached in
``benchmarks/.cache/fashion-112.npz``; delete the file to recompute.

    python benchmarks/_fashion_embeddings.py     # compute (about 2-4 minutes on 2 cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _common import console  # noqa: E402

from labelwise.embeddings.backbones import (  # noqa: E402
    OnnxEmbedder,
    builtin_model,
    ensure_efficientnet_lite0,
)
from labelwise.samples import load_fashion_mnist  # noqa: E402

CACHE = Path(__file__).parent / ".cache"
SIZE = 112
POOL, TEST = 10_000, 2_000


def _resize(images: np.ndarray) -> np.ndarray:
    out = np.empty((len(images), SIZE, SIZE, 3), np.uint8)
    for i, img in enumerate(images):
        im = Image.fromarray(img, mode="L").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        out[i] = np.asarray(im.convert("RGB"))
    return out


def _embed(embedder: OnnxEmbedder, images: np.ndarray, batch: int = 64) -> np.ndarray:
    parts = [embedder.embed(_resize(images[s : s + batch])) for s in range(0, len(images), batch)]
    return np.concatenate(parts).astype(np.float32)


def fashion_embeddings() -> dict[str, np.ndarray]:
    """``X_pool`` (10000, 1280), ``y_pool``, ``X_test`` (2000, 1280), ``y_test``."""
    path = CACHE / f"fashion-{SIZE}.npz"
    if path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    model = builtin_model(CACHE)
    ensure_efficientnet_lite0(model.onnx_path)
    embedder = OnnxEmbedder(model)
    rng = np.random.default_rng(0)
    tr_x, tr_y = load_fashion_mnist("train")
    te_x, te_y = load_fashion_mnist("test")
    pool = rng.choice(len(tr_x), POOL, replace=False)
    test = rng.choice(len(te_x), TEST, replace=False)
    t = time.perf_counter()
    out = {
        "X_pool": _embed(embedder, tr_x[pool]), "y_pool": tr_y[pool],
        "X_test": _embed(embedder, te_x[test]), "y_test": te_y[test],
    }
    console.print(f"embedded {POOL + TEST:,} images at {SIZE} px in "
                  f"{time.perf_counter() - t:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


if __name__ == "__main__":
    data = fashion_embeddings()
    console.print({k: v.shape for k, v in data.items()})
