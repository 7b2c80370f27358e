"""Pixel check of near-duplicate candidates: the second stage after embedding retrieval.

Embeddings find candidates (images whose cosine distance is small) but are semantic: two
different shirts photographed alike can be closer than a shirt and its own JPEG re-encode.
This check compares small grey thumbnails by normalised cross-correlation (NCC), which ignores
brightness and contrast changes, and tries the transforms an edited copy typically went
through: a horizontal flip and a centre crop (to 95% or 90% of each side). A pair counts as a near-duplicate only when
both stages agree.

``signature(image)`` -> (6, S*S) float32 unit vectors: the full image and its two centre
crops, each also flipped. ``pair_similarity`` -> the best NCC in [-1, 1] between one image's
full view and the other's views, either way round (higher = more alike).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from labelwise.errors import ValidationError

#: Thumbnail side in pixels. Small enough to forgive resampling and JPEG noise, large enough to
#: tell two different items of one kind apart.
THUMB = 32
#: Cosine distance up to which embedding neighbours become candidates for the pixel check:
#: loose enough for heavy edits (a JPEG re-encode of a 28 px image moves up to ~0.16).
VERIFIED_THRESHOLD = 0.16
#: Default NCC a pair needs. Measured on 2,000 Fashion-MNIST images with 200 planted edited
#: copies (benchmarks/embeddings.py): at 0.98 recall 0.975 and precision 0.961; at 0.97 recall
#: 0.99 but precision 0.88, as near-identical catalogue items start to pair up.
DEFAULT_MIN_NCC = 0.98


#: Centre crops tried, as the fraction of each side kept.
CROPS = (1.0, 0.95, 0.9)
VIEWS = 2 * len(CROPS)


def signature(image: Image.Image, *, size: int = THUMB) -> np.ndarray:
    """Unit-norm, mean-centred grey thumbnails of ``image`` and of its centre crops, each also
    flipped: (VIEWS, size*size) float32, the full view first."""
    g = image.convert("L")
    w, h = g.size
    views = []
    for keep in CROPS:
        dx, dy = w * (1 - keep) / 2, h * (1 - keep) / 2
        box = None if keep == 1.0 else (dx, dy, w - dx, h - dy)
        t = np.asarray(g.resize((size, size), Image.BILINEAR, box=box), dtype=np.float32)
        for v in (t, t[:, ::-1]):
            v = v.ravel() - v.mean()
            views.append(v / (np.linalg.norm(v) + 1e-6))
    return np.stack(views).astype(np.float32)


def pair_similarity(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Best NCC of each pair of rows of ``signatures`` (n, VIEWS, d) over ``pairs`` (m, 2) -> (m,).

    For a pair (a, b): max over a's full view against b's views and b's full view against
    a's views. Flat or blank thumbnails score 0 against everything.
    """
    sig = np.asarray(signatures, dtype=np.float32)
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if sig.ndim != 3 or sig.shape[1] != VIEWS:
        raise ValidationError(f"signatures must be (n, {VIEWS}, d), got {sig.shape}")
    if len(p) and (p.min() < 0 or p.max() >= len(sig)):
        raise ValidationError(f"pairs refer to rows outside 0..{len(sig) - 1}")
    a, b = sig[p[:, 0]], sig[p[:, 1]]
    ab = np.einsum("md,mvd->mv", a[:, 0], b)
    ba = np.einsum("md,mvd->mv", b[:, 0], a)
    return np.maximum(ab.max(axis=1), ba.max(axis=1))
