"""Pixel check of near-duplicate candidates: the second stage after embedding retrieval.

Embeddings find candidates (images whose cosine distance is small) but are semantic: two
different shirts photographed alike can be closer than a shirt and its own JPEG re-encode.
This check compares small grey thumbnails by normalised cross-correlation (NCC), which ignores
brightness and contrast changes, and tries the transforms an edited copy typically went
through: a horizontal flip and a 90% centre crop. A pair counts as a near-duplicate only when
both stages agree.

``signature(image)`` -> (4, S*S) float32 unit vectors: full, full flipped, 90%-crop, crop
flipped. ``pair_similarity(a, b)`` -> the best NCC in [-1, 1] between one image's full view
and the other's four views, either way round (higher = more alike).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from labelwise.errors import ValidationError

#: Thumbnail side in pixels. Small enough to forgive resampling and JPEG noise, large enough to
#: tell two different items of one kind apart.
THUMB = 32
#: Default NCC a pair needs. Measured on Fashion-MNIST with planted copies (docs/algorithms.md):
#: 97% of copies score >= 0.97 while most look-alike different items score lower.
DEFAULT_MIN_NCC = 0.97


def signature(image: Image.Image, *, size: int = THUMB) -> np.ndarray:
    """Four unit-norm, mean-centred grey thumbnails of ``image``: (4, size*size) float32."""
    g = image.convert("L")
    w, h = g.size
    dx, dy = w * 0.05, h * 0.05
    views = []
    for box in (None, (dx, dy, w - dx, h - dy)):
        t = np.asarray(g.resize((size, size), Image.BILINEAR, box=box), dtype=np.float32)
        for v in (t, t[:, ::-1]):
            v = v.ravel() - v.mean()
            views.append(v / (np.linalg.norm(v) + 1e-6))
    return np.stack(views).astype(np.float32)


def pair_similarity(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Best NCC of each pair of rows of ``signatures`` (n, 4, d) over ``pairs`` (m, 2) -> (m,).

    For a pair (a, b): max over a's full view against b's four views and b's full view
    against a's four views. Flat or blank thumbnails score 0 against everything.
    """
    sig = np.asarray(signatures, dtype=np.float32)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if sig.ndim != 3 or sig.shape[1] != 4:
        raise ValidationError(f"signatures must be (n, 4, d), got {sig.shape}")
    if len(p) and (p.min() < 0 or p.max() >= len(sig)):
        raise ValidationError(f"pairs refer to rows outside 0..{len(sig) - 1}")
    a, b = sig[p[:, 0]], sig[p[:, 1]]
    ab = np.einsum("md,mvd->mv", a[:, 0], b)
    ba = np.einsum("md,mvd->mv", b[:, 0], a)
    return np.maximum(ab.max(axis=1), ba.max(axis=1))
