"""Small real datasets for the Auto-Label service, CLI and API tests.

Fashion-MNIST images of three classes that look nothing alike (trouser, bag, sneaker): a
labeled part (class folders, or a multi-label CSV) and an unlabeled pool of the same classes
(a plain folder), embedded at 64 px. The pool's true classes are known from the file names,
so tests can check the pre-labels against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import labelwise
from labelwise.embeddings.pipeline import embed_dataset
from labelwise.samples import FASHION_MNIST_CLASSES, load_fashion_mnist

CLASSES = ("trouser", "bag", "sneaker")
#: Multi-label tags per class: every class gets its own tag, two share a second one.
TAGS = {"trouser": ["trouser", "clothing"], "bag": ["bag"], "sneaker": ["sneaker", "clothing"]}
SIZE = 64


def _pick(per_class: int, *, offset: int) -> list[tuple[str, np.ndarray, int]]:
    images, labels = load_fashion_mnist("train")
    out = []
    for name in CLASSES:
        idx = np.flatnonzero(labels == FASHION_MNIST_CLASSES.index(name))
        out += [(name, images[i], int(i)) for i in idx[offset:offset + per_class]]
    return out


def write_sources(root: Path, *, labeled: int = 15, pool: int = 20) -> dict[str, Path]:
    """Class folders (``labeled`` per class), the same as a multi-label CSV, and a pool
    folder of ``pool`` unlabeled images per class named ``<class>-<index>.png``."""
    folders, multi, unlabeled = root / "classes", root / "multi", root / "pool"
    rows = []
    for name, img, i in _pick(labeled, offset=0):
        (folders / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(folders / name / f"{i:05d}.png")
        (multi / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(multi / "images" / f"{i:05d}.png")
        rows.append(",".join([f"{i:05d}.png", *TAGS[name]]))
    (multi / "labels.csv").write_text("\n".join(rows) + "\n")
    unlabeled.mkdir(parents=True, exist_ok=True)
    for name, img, i in _pick(pool, offset=labeled):
        Image.fromarray(img, mode="L").save(unlabeled / f"{name}-{i:05d}.png")
    return {"classes": folders, "multi": multi, "pool": unlabeled}


def build(ws: labelwise.Workspace, sources: dict[str, Path], *, dataset: str = "fm",
          multi: bool = False) -> labelwise.Workspace:
    """Import the labeled part and the pool into ``dataset``, make split ``seed`` of the
    labeled images, and embed everything."""
    if multi:
        ws.import_dataset("csv", sources["multi"] / "labels.csv", dataset=dataset)
    else:
        ws.import_dataset("classfolders", sources["classes"], dataset=dataset)
    labeled_paths = [a["path"] for a in ws.list_assets(dataset, limit=1000)["items"]]
    ws.import_dataset("folder", sources["pool"], dataset=dataset)
    ws.create_split(dataset, "seed", paths=labeled_paths)
    embed_dataset(ws, dataset, size=SIZE)
    return ws


def true_class(path: str) -> str:
    """The class a pool image really is (from its file name)."""
    return Path(path).name.split("-")[0]
