"""Box overlap and non-maximum suppression in numpy (torchvision is not a dependency)."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), both ``x0, y0, x1, y1``.

    Returns (N, M); boxes of no area have IoU 0 with everything.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
                0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold``.
    ``boxes`` (N, 4) ``x0, y0, x1, y1``; ``scores`` (N,). Equal scores keep the lower index.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"nms: {len(boxes)} boxes but {len(scores)} scores; give one per box")
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        overlap = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, *,
                iou_threshold: float = 0.5) -> np.ndarray:
    """NMS within each class only; indices of the kept boxes, highest score first."""
    classes = np.asarray(classes).reshape(-1)
    kept = [np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c],
                                             iou_threshold=iou_threshold)]
            for c in np.unique(classes)]
    if not kept:
        return np.zeros(0, np.int64)
    idx = np.concatenate(kept)
    return idx[np.argsort(-np.asarray(scores)[idx], kind="stable")]
