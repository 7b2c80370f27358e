"""Fixtures for the embedding tests: one exported model for the whole run, small real datasets.

The built-in model is exported once per test run into a folder shared by every test worker
(``LABELWISE_MODEL_CACHE``); the exporter's file lock makes concurrent workers wait for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from PIL import Image

from labelwise.samples import write_fashion_mnist_folders


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
def fmnist_dir(tmp_path_factory) -> Path:
    """24 real Fashion-MNIST images (28x28 grey PNGs), one folder per class."""
    return write_fashion_mnist_folders(tmp_path_factory.mktemp("fmnist"), n=24, seed=3)


def tiny_onnx(
    path: Path,
    *,
    input_shape: list = ("N", 3, "H", "W"),  # type: ignore[assignment]
    extra_outputs: bool = False,
) -> Path:
    """A real ONNX model: ``feat`` = per-channel mean of the input, (N, C).

    With ``extra_outputs`` it also has ``spatial`` (the input itself, rank 4).
    """
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))
    rank4 = len(input_shape) == 4
    nodes, outputs = [], []
    if rank4:
        nodes += [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
                  helper.make_node("Flatten", ["pooled"], ["feat"], axis=1)]
        outputs.append(
            helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", input_shape[1]]))
    else:
        nodes.append(helper.make_node("Identity", ["x"], ["feat"]))
        outputs.append(helper.make_tensor_value_info("feat", TensorProto.FLOAT, list(input_shape)))
    if extra_outputs:
        nodes.append(helper.make_node("Identity", ["x"], ["spatial"]))
        outputs.append(
            helper.make_tensor_value_info("spatial", TensorProto.FLOAT, list(input_shape)))
    graph = helper.make_graph(nodes, "tiny", [x], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path.write_bytes(model.SerializeToString())
    return path


def channel_means(images: np.ndarray, *, scale: float, mean, std) -> np.ndarray:
    """What ``tiny_onnx``'s ``feat`` must be for uint8 (N, H, W, 3) images: the planted answer."""
    x = images.astype(np.float64) * scale
    return ((x - np.asarray(mean)) / np.asarray(std)).mean(axis=(1, 2))


def write_cat_coco(folder: Path) -> Path:
    """A COCO file over one real photo (scikit-image's cat, 451x300): a box, a polygon,
    keypoints without a box, keypoints with none labelled, and an image-level category."""
    import skimage.data

    (folder / "images").mkdir(parents=True)
    Image.fromarray(skimage.data.chelsea()).save(folder / "images" / "cat.jpg", quality=90)
    names = ["nose", "left_eye", "right_eye"]
    coco = {
        "images": [{"id": 1, "file_name": "cat.jpg", "width": 451, "height": 300,
                    "category_ids": [3]}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "face", "keypoints": names,
                                                   "skeleton": [[1, 2], [1, 3]]},
                       {"id": 3, "name": "indoor"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [120, 20, 300, 270],
             "area": 81000, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1,
             "segmentation": [[140, 60, 260, 50, 250, 180, 150, 170]], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 2,
             "keypoints": [200, 120, 2, 170, 90, 2, 240, 95, 1], "num_keypoints": 3,
             "iscrowd": 0},
            {"id": 4, "image_id": 1, "category_id": 2, "keypoints": [0, 0, 0] * 3,
             "num_keypoints": 0, "iscrowd": 0},
        ],
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(coco))
    return path
