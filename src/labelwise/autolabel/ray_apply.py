"""Run a stored categorization model over embeddings with ``ray.data``, for large datasets.

The embeddings go into Ray's object store once; ``ray.data.range(n)`` is cut into batches,
each run by an actor holding one ONNX Runtime session of the model. Rows are put back in
order by their index, so the probabilities equal the local engine's (same ONNX graph, same
float32 input).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.errors import LabelwiseError

BATCH = 8192


def ray_probabilities(
    onnx_path: Path, X: np.ndarray, *, address: str | None = None, batch_size: int = BATCH,
    actors: int | None = None,
) -> np.ndarray:
    """Calibrated probabilities (n, k) float32 of embeddings ``X`` (n, d) on Ray.

    Uses the Ray instance already started in this process, else connects to ``address``
    (or starts a local one, shut down afterwards), as the embedding engine does.
    """
    from labelwise.embeddings.engines import _import_ray

    ray = _import_ray()
    started = _connect(ray, address)
    try:
        return _run(ray, onnx_path, np.ascontiguousarray(X, dtype=np.float32),
                    batch_size=batch_size, actors=actors)
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, address: str | None) -> bool:
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ...
        raise LabelwiseError(
            f"cannot start or reach Ray at {address or 'a new local instance'}: {err}; check "
            "--ray-address (e.g. ray://head:10001) or use --engine local"
        ) from err
    return True


def _run(ray: Any, onnx_path: Path, X: np.ndarray, *, batch_size: int,
         actors: int | None) -> np.ndarray:
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False
    n = len(X)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # Leave a CPU for ray.data's read tasks: a pool holding every CPU can deadlock.
    pool = max(1, min(actors or cpus - 1, -(-n // batch_size)))
    results = ray.data.range(n).map_batches(
        _ApplyActor,
        fn_constructor_kwargs={"model_ref": ray.put(Path(onnx_path).read_bytes()),
                               "x_ref": ray.put(X)},
        batch_size=batch_size, batch_format="numpy",
        compute=ActorPoolStrategy(size=pool), num_cpus=1,
    )
    out: np.ndarray | None = None
    for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
        probs = np.asarray(batch["p"], dtype=np.float32)
        if out is None:
            out = np.empty((n, probs.shape[1]), np.float32)
        out[np.asarray(batch["id"], np.int64)] = probs
    return out if out is not None else np.zeros((0, 0), np.float32)


class _ApplyActor:
    """A Ray actor: one ONNX Runtime session; maps row indices to probabilities."""

    def __init__(self, *, model_ref: Any, x_ref: Any) -> None:
        import onnxruntime as ort
        import ray

        from labelwise.autolabel.store import INPUT, OUTPUT

        data = ray.get(model_ref) if isinstance(model_ref, ray.ObjectRef) else model_ref
        self.X = ray.get(x_ref) if isinstance(x_ref, ray.ObjectRef) else x_ref
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.io = (INPUT, OUTPUT)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(batch["id"], np.int64)
        probs = self.session.run([self.io[1]], {self.io[0]: self.X[ids]})[0]
        return {"id": ids, "p": probs}
