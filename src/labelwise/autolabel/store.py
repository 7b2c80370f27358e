"""Versioned categorization models on disk, run with ONNX Runtime.

A model's folder (the workspace keeps them in ``models/autolabel/NAME/``) holds one
subfolder per version, ``v1``, ``v2``, ..., each written once and never changed:

- ``model.onnx``: the whole model, embedding in, calibrated probabilities out. Input
  ``embedding`` float32 (N, d); output ``probabilities`` float32 (N, k). Anyone can run it
  with onnxruntime alone; the class names, thresholds and head are in its metadata.
- ``card.json``: the model card (``labelwise.autolabel.card.ModelCard``).
- ``model.json``: what applying the model needs besides the ONNX file (classes, multi-label
  thresholds, difficulty buckets, calibration) and what trained it (parameters, data digest).

A version is written to a temporary folder and renamed into place, so a reader never sees
half a model. Example::

    saved = save_classifier(ws.path / "models/autolabel/shoes", trained,
                            embedding={"model": "efficientnet-lite0", "size": 224})
    model = load_classifier(ws.path / "models/autolabel/shoes")      # latest version
    result = model.apply(X)          # probabilities, labels, uncertainty, buckets
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.autolabel.calibration import Calibrator
from labelwise.autolabel.card import ModelCard
from labelwise.autolabel.classify import TrainedClassifier
from labelwise.autolabel.smoothing import neighbours_within, smooth_probabilities
from labelwise.autolabel.uncertainty import DifficultyBuckets, expected_error, uncertainty
from labelwise.embeddings.index import validate_vectors
from labelwise.errors import LabelwiseError, NotFoundError, ValidationError

FORMAT_VERSION = 1
OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "embedding", "probabilities"
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")
#: Rows per ONNX Runtime call when applying: bounds memory, keeps calls few.
APPLY_BATCH = 65_536


# -- ONNX export ------------------------------------------------------------------------------
def export_onnx(model: TrainedClassifier, path: str | Path | None = None) -> bytes:
    """The model as an ONNX graph (embedding -> calibrated probabilities); also written to
    ``path`` when given. Computes exactly what ``model.predict_proba`` does, in float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    head = model.head
    inits: list = []
    nodes: list = []

    def const(name: str, value: np.ndarray, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    # 1. unit-length rows, 2. standardise
    norm = node("ReduceL2", [INPUT], "norm", axes=[1], keepdims=1)
    norm = node("Max", [norm, const("eps", np.array(1e-12))], "norm_safe")
    h = node("Div", [INPUT, norm], "unit")
    h = node("Sub", [h, const("mean", head.mean)], "centred")
    h = node("Div", [h, const("scale", head.scale)], "features")
    # 3. affine layers with ReLU between
    for i, (W, b) in enumerate(head.layers):
        h = node("MatMul", [h, const(f"W{i}", W)], f"mm{i}")
        h = node("Add", [h, const(f"b{i}", b)], f"layer{i}")
        if i < len(head.layers) - 1:
            h = node("Relu", [h], f"relu{i}")
    # 4. calibration
    if not model.multi_label:
        h = node("Div", [h, const("temperature", np.array(model.calibrator.temperature))],
                 "scaled")
        node("Softmax", [h], OUTPUT, axis=1)
    else:
        _isotonic_nodes(model.calibrator, h, node, const)
    k = head.num_classes
    graph = helper.make_graph(
        nodes, "labelwise_categorization",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", head.dim])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", k])],
        initializer=inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="labelwise")
    onnx_model.ir_version = IR_VERSION  # what opset 17 needs; older runtimes load it too
    meta = {"labelwise_format": str(FORMAT_VERSION), "classes": json.dumps(model.classes),
            "multi_label": json.dumps(model.multi_label),
            "thresholds": json.dumps(None if model.thresholds is None
                                     else [float(t) for t in model.thresholds]),
            "head": head.kind}
    helper.set_model_props(onnx_model, meta)
    onnx.checker.check_model(onnx_model)
    data = onnx_model.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _isotonic_nodes(cal: Calibrator, logits: str, node, const) -> None:
    """Per-class piecewise-linear maps as sums of clipped ramps:
    p = p0 + sum_j slope_j * min(max(s - x_j, 0), width_j), s = sigmoid(logit)."""
    segments = max(1, max(len(x) - 1 for x, _ in cal.knots))
    k = len(cal.knots)
    start = np.zeros((k, segments))
    width = np.zeros((k, segments))
    slope = np.zeros((k, segments))
    base = np.zeros(k)
    for c, (x, p) in enumerate(cal.knots):
        base[c] = p[0]
        m = len(x) - 1
        start[c, :m] = x[:-1]
        width[c, :m] = np.diff(x)
        slope[c, :m] = np.diff(p) / np.diff(x) if m else 0.0
    s = node("Sigmoid", [logits], "sigmoid")
    s = node("Unsqueeze", [s, const("axis2", np.array([2]), np.int64)], "sigmoid3")
    r = node("Sub", [s, const("knot_start", start)], "ramp")
    r = node("Max", [r, const("zero", np.array(0.0))], "ramp_pos")
    r = node("Min", [r, const("knot_width", width)], "ramp_clip")
    r = node("Mul", [r, const("knot_slope", slope)], "ramp_rise")
    r = node("ReduceSum", [r, const("axes2", np.array([2]), np.int64)], "rise", keepdims=0)
    node("Add", [r, const("knot_base", base)], OUTPUT)


# -- versions on disk -------------------------------------------------------------------------
def list_versions(folder: str | Path) -> list[int]:
    """Version numbers stored in a model's ``folder``, ascending (empty if none)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir()
                  if p.is_dir() and (m := _VERSION_DIR.match(p.name)))


def save_classifier(
    folder: str | Path,
    model: TrainedClassifier,
    *,
    name: str | None = None,
    embedding: dict[str, Any] | None = None,
) -> Path:
    """Store ``model`` as the next version in ``folder``; return the version's path.

    ``name`` defaults to the folder's name; ``embedding`` records which embeddings the model
    expects (e.g. ``{"model": "efficientnet-lite0", "size": 224}``).
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    card = model.card
    card.name = name or root.name
    card.embedding = dict(embedding or {})
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        export_onnx(model, tmp / "model.onnx")
        info = {
            "format": FORMAT_VERSION, "classes": model.classes, "multi_label": model.multi_label,
            "thresholds": None if model.thresholds is None else model.thresholds.tolist(),
            "calibration": model.calibrator.to_dict(), "buckets": model.buckets.to_dict(),
            "uncertainty": card.uncertainty, "params": model.params, "dim": model.head.dim,
            "data_digest": card.data_digest, "embedding": card.embedding,
            "smoothing": model.smoothing,
        }
        while True:  # another writer may take a number first: try the next one
            version = (list_versions(root) or [0])[-1] + 1
            card.version = version
            (tmp / "card.json").write_text(json.dumps(card.to_dict(), indent=2) + "\n")
            (tmp / "model.json").write_text(json.dumps({**info, "version": version},
                                                       indent=2) + "\n")
            dest = root / f"v{version}"
            try:
                os.rename(tmp, dest)  # fails if dest exists (a non-empty folder)
                return dest
            except OSError:
                if not dest.exists():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- loading and applying ---------------------------------------------------------------------
@dataclass
class Prelabels:
    """What a model says about n images.

    ``labels``: (n,) class indices, or (n, k) 0/1 for multi-label; ``confidence``: (n,)
    probability of the top class (multi-label: of the least sure decision); ``uncertainty``
    and ``expected_error``: (n,); ``buckets``: (n,) 'easy' / 'medium' / 'hard'.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    uncertainty: np.ndarray
    expected_error: np.ndarray
    buckets: np.ndarray
    summary: dict[str, dict[str, Any]]


class StoredClassifier:
    """A stored model version, ready to apply with ONNX Runtime."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = path
        try:
            info = json.loads((path / "model.json").read_text())
            self.card = ModelCard.from_dict(json.loads((path / "card.json").read_text()))
        except (OSError, ValueError, KeyError) as err:
            raise LabelwiseError(
                f"{path}: the stored model cannot be read ({err}); retrain it or delete the "
                "folder"
            ) from err
        if info.get("format") != FORMAT_VERSION:
            raise ValidationError(
                f"{path}: model format {info.get('format')!r} is not supported (expected "
                f"{FORMAT_VERSION}); retrain the model with this labelwise"
            )
        self.info = info
        self.version = int(info["version"])
        self.classes: list[str] = list(info["classes"])
        self.multi_label = bool(info["multi_label"])
        self.dim = int(info["dim"])
        t = info["thresholds"]
        self.thresholds = None if t is None else np.asarray(t, dtype=np.float64)
        self.buckets = DifficultyBuckets.from_dict(info["buckets"])
        self.uncertainty_method = info["uncertainty"]
        self.smoothing: dict[str, Any] | None = info.get("smoothing")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path / "model.onnx"), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise LabelwiseError(
                f"{path / 'model.onnx'}: ONNX Runtime cannot load the model ({err}); retrain it"
            ) from err

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, k) float32 for embeddings ``X`` (n, d)."""
        arr = np.ascontiguousarray(validate_vectors(X, name="embeddings"))
        if arr.shape[1] != self.dim:
            emb = self.card.embedding
            raise ValidationError(
                f"the embeddings have {arr.shape[1]} dimensions but model "
                f"{self.card.name!r} v{self.version} takes {self.dim} "
                f"({emb.get('model', 'its embedding model')} at {emb.get('size', '?')} px); "
                "embed the dataset with that model and size"
            )
        parts = [self.session.run([OUTPUT], {INPUT: arr[s:s + APPLY_BATCH]})[0]
                 for s in range(0, len(arr), APPLY_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes)), np.float32)

    def apply(self, X: np.ndarray, *, smooth: bool = True) -> Prelabels:
        """Pre-labels of embeddings ``X`` (n, d) with uncertainty and difficulty buckets.

        A model that smooths (``smoothing`` in model.json) mixes each image's probabilities
        with those of its nearest neighbours among ``X``, as its card and buckets were
        measured: pass every image being pre-labeled in one call. ``smooth=False`` gives the
        model's own per-image probabilities.
        """
        P = self.predict_proba(X).astype(np.float64)
        return self.prelabels(P, X if smooth else None)

    def prelabels(self, P: np.ndarray, X: np.ndarray | None = None) -> Prelabels:
        """Pre-labels from calibrated probabilities ``P`` (n, k) (computed by
        ``predict_proba``, possibly in batches elsewhere); smoothed over the neighbours
        among ``X`` (the same n embeddings) when given and the model smooths."""
        # float32 isotonic maps can land a hair above 1; the scores need probabilities.
        P = np.clip(np.asarray(P, dtype=np.float64), 0.0, 1.0)
        if X is not None and self.smoothing and len(P) > 1:
            nbrs = neighbours_within(np.asarray(X, dtype=np.float32), k=self.smoothing["k"])
            P = smooth_probabilities(P, P, nbrs, weight=self.smoothing["weight"])
        if self.multi_label:
            labels = (P >= self.thresholds).astype(np.int64)
            confidence = np.where(labels == 1, P, 1.0 - P).min(axis=1)
        else:
            labels = P.argmax(axis=1)
            confidence = P.max(axis=1)
        u = uncertainty(P, method=self.uncertainty_method, multi_label=self.multi_label,
                        thresholds=self.thresholds)
        err = expected_error(P, multi_label=self.multi_label, thresholds=self.thresholds)
        return Prelabels(probabilities=P, labels=labels, confidence=confidence, uncertainty=u,
                         expected_error=err, buckets=self.buckets.assign(u),
                         summary=self.buckets.summary(u, err))


def load_classifier(
    folder: str | Path, *, version: int | None = None, threads: int | None = None
) -> StoredClassifier:
    """The stored model in ``folder``: ``version`` N, or the latest one."""
    root = Path(folder)
    versions = list_versions(root)
    if not versions:
        raise NotFoundError(
            f"{root}: no stored model versions; train one with `labelwise autolabel train`"
        )
    v = versions[-1] if version is None else version
    if v not in versions:
        raise NotFoundError(
            f"{root.name}: there is no version {v} (versions: "
            f"{', '.join(f'v{x}' for x in versions)})"
        )
    return StoredClassifier(root / f"v{v}", threads=threads)

