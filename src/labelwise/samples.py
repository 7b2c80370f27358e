"""Real sample data that ships with the machine, for the demo, tests and benchmarks.

Fashion-MNIST (70,000 28x28 grey images in 10 classes, MIT licence) comes from the Debian package
``dataset-fashion-mnist`` in /usr/share/datasets/fashion-mnist/. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from labelwise.errors import LabelwiseError

FASHION_MNIST_DIR = Path(
    os.environ.get("LABELWISE_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
)
FASHION_MNIST_CLASSES = (
    "tshirt-top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)


def _idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST container format), gzipped."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of the ``train`` or ``test`` split."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise LabelwiseError(f"Fashion-MNIST split {split!r} does not exist; use train or test")
    images = FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"
    labels = FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists():
        raise LabelwiseError(
            f"Fashion-MNIST is not installed ({images} is missing); install it with "
            "`apt-get install dataset-fashion-mnist` (the Makefile's setup does this)"
        )
    return _idx(images), _idx(labels).astype(np.int64)


def write_fashion_mnist_folders(
    dest: Path, *, n: int = 2000, split: str = "train", seed: int = 0
) -> Path:
    """Write ``n`` Fashion-MNIST images as PNGs in one subfolder per class; return ``dest``."""
    from PIL import Image

    images, labels = load_fashion_mnist(split)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(images), size=min(n, len(images)), replace=False))
    for idx in picked:
        folder = dest / FASHION_MNIST_CLASSES[labels[idx]]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{split}-{idx:05d}.png"
        if not target.exists():
            Image.fromarray(images[idx], mode="L").save(target)
    return dest
