"""Compute engines, by name: where the images are decoded and the model runs.

- ``local``: in this process. A thread pool reads, decodes and resizes the next batches while
  ONNX Runtime (using every core) runs the current one.
- ``ray``: a Ray cluster (``ray.init()`` locally, or ``address=``). ``ray.data`` feeds batches to
  a pool of actors that each hold an ONNX Runtime session; the model file travels through Ray's
  object store, and the workers read images from the workspace's storage URL (a shared folder
  or an object store such as ``s3://``).

Both yield ``BatchResult``s; the pipeline writes them through the same cache, so their
embeddings are interchangeable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from labelwise.embeddings.backbones import EmbeddingModel, OnnxEmbedder
from labelwise.embeddings.preprocess import Box, box_key, decode_image, resize_square
from labelwise.errors import ImageError, LabelwiseError, StorageError, ValidationError

if TYPE_CHECKING:
    from PIL import Image

    from labelwise.workspace import Workspace


@dataclass(frozen=True, slots=True)
class EmbedJob:
    """One vector to compute: an image (by blob key), whole or cropped to ``box``."""

    content_hash: str
    blob_key: str
    name: str  # the image's path, for messages
    box: Box | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.content_hash, "" if self.box is None else box_key(self.box)


@dataclass(slots=True)
class BatchResult:
    """Embedded ``jobs`` with their ``vectors`` (len(jobs), d), and the jobs that failed."""

    jobs: list[EmbedJob]
    vectors: np.ndarray
    failures: list[tuple[EmbedJob, str]] = field(default_factory=list)


class Engine(Protocol):
    name: str

    def embed(
        self, ws: Workspace, jobs: Sequence[EmbedJob], *, model: EmbeddingModel, size: int,
        batch_size: int,
    ) -> Iterator[BatchResult]: ...


# -- decoding, shared by every engine -------------------------------------------------------------
def decode_jobs(
    read: Callable[[str], bytes], jobs: Sequence[EmbedJob], *, size: int, max_pixels: int
) -> tuple[list[EmbedJob], np.ndarray, list[tuple[EmbedJob, str]]]:
    """Read and decode ``jobs`` into (ok jobs, uint8 (n, size, size, 3), failures with reasons).

    Consecutive crops of one image decode it once. Never raises for a bad image: an unreadable
    one becomes a failure with its reason.
    """
    ok: list[EmbedJob] = []
    images: list[np.ndarray] = []
    failures: list[tuple[EmbedJob, str]] = []
    last: tuple[str, Image.Image] | None = None
    for job in jobs:
        try:
            if job.box is None:
                data = _read(read, job)
                images.append(resize_square(
                    decode_image(data, name=job.name, max_pixels=max_pixels, draft=size), size))
            else:
                if last is None or last[0] != job.content_hash:
                    data = _read(read, job)
                    last = (job.content_hash,
                            decode_image(data, name=job.name, max_pixels=max_pixels))
                images.append(resize_square(last[1], size, box=job.box))
            ok.append(job)
        except ImageError as err:
            failures.append((job, str(err).removeprefix(f"{job.name}: ")))
        except Exception as err:  # noqa: BLE001 - one bad image must never stop the run
            failures.append((job, f"cannot decode it ({type(err).__name__}: {err})"))
    batch = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return ok, batch, failures


def _read(read: Callable[[str], bytes], job: EmbedJob) -> bytes:
    try:
        return read(job.blob_key)
    except (StorageError, OSError) as err:
        raise ImageError(
            f"{job.name}: the stored image cannot be read ({err}); import the image again"
        ) from err


# -- local ---------------------------------------------------------------------------------------
class LocalEngine:
    """Decode in a thread pool, ``prefetch`` batches ahead, while ONNX Runtime runs."""

    name = "local"

    def __init__(
        self, *, threads: int | None = None, workers: int | None = None, prefetch: int | None = None
    ) -> None:
        cores = os.cpu_count() or 1
        self.threads = threads or cores
        self.workers = workers or max(1, min(4, cores))  # low priority: they only fill gaps
        self.prefetch = prefetch or self.workers + 1

    def embed(
        self, ws: Workspace, jobs: Sequence[EmbedJob], *, model: EmbeddingModel, size: int,
        batch_size: int,
    ) -> Iterator[BatchResult]:
        if not jobs:
            return
        embedder = OnnxEmbedder(model, threads=self.threads)
        read = ws.store.get_bytes
        max_pixels = ws.settings.max_image_pixels

        def prepare(batch: Sequence[EmbedJob]):
            ok, images, failures = decode_jobs(read, batch, size=size, max_pixels=max_pixels)
            return ok, embedder.preprocess(images), failures

        batches = (jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size))
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="labelwise-decode",
                                  initializer=_lower_priority)
        pending: deque[Future] = deque()
        try:
            for batch in batches:
                pending.append(pool.submit(prepare, batch))
                if len(pending) > self.prefetch:
                    yield self._infer(embedder, *pending.popleft().result())
            while pending:
                yield self._infer(embedder, *pending.popleft().result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _infer(embedder: OnnxEmbedder, ok, x, failures) -> BatchResult:
        vectors = embedder.embed_tensor(x) if ok else np.zeros((0, embedder.model.dim), np.float32)
        return BatchResult(ok, vectors, failures)


def _lower_priority() -> None:
    """Make the calling thread yield to ONNX Runtime's: it only fills the gaps between ops.

    ORT splits every operator across its threads and waits for the slowest; a decode thread
    at equal priority preempts one of them and stalls the whole batch.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux: leave the priority alone
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


# -- ray ---------------------------------------------------------------------------------------
class RayEngine:
    """``ray.data`` over a pool of actors holding ONNX Runtime sessions.

    ``address`` is a cluster address (``ray://host:10001``, ``auto``) or None for the Ray
    instance already initialised in this process, else a new local one (shut down after).
    ``actors`` defaults to the cluster's CPUs divided by ``threads`` per actor.
    """

    name = "ray"

    def __init__(
        self, *, address: str | None = None, actors: int | None = None, threads: int = 1
    ) -> None:
        self.address = address
        self.actors = actors
        self.threads = threads

    def embed(
        self, ws: Workspace, jobs: Sequence[EmbedJob], *, model: EmbeddingModel, size: int,
        batch_size: int,
    ) -> Iterator[BatchResult]:
        if not jobs:
            return
        ray = _import_ray()
        started = self._connect(ray)
        try:
            yield from self._run(ray, ws, jobs, model=model, size=size, batch_size=batch_size)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        except Exception as err:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
            where = self.address or "a new local instance"
            raise LabelwiseError(
                f"cannot start or reach Ray at {where}: {err}; check --ray-address "
                "(e.g. ray://head:10001) or run without it for a local instance"
            ) from err
        return True

    def _run(
        self, ray: Any, ws: Workspace, jobs: Sequence[EmbedJob], *, model: EmbeddingModel,
        size: int, batch_size: int,
    ) -> Iterator[BatchResult]:
        from ray.data import ActorPoolStrategy, DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = self.actors or max(1, cpus // self.threads)
        items = [
            {"i": i, "blob": j.blob_key, "hash": j.content_hash, "name": j.name,
             "box": list(j.box) if j.box else [-1, -1, -1, -1]}
            for i, j in enumerate(jobs)
        ]
        model_ref = ray.put(model.onnx_path.read_bytes())
        results = ray.data.from_items(items).map_batches(
            RayEmbedActor,
            fn_constructor_kwargs={
                "model": model, "model_ref": model_ref, "size": size, "threads": self.threads,
                "storage_url": ws.store.url, "max_pixels": ws.settings.max_image_pixels,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=min(actors, max(1, -(-len(jobs) // batch_size)))),
            num_cpus=self.threads,
        )
        for out in results.iter_batches(batch_size=None, batch_format="numpy"):
            idx = out["i"].tolist()
            errors = out["error"].tolist()
            vectors = np.asarray(out["vector"], dtype=np.float32).reshape(len(idx), -1)
            keep = [k for k, e in enumerate(errors) if not e]
            yield BatchResult(
                jobs=[jobs[idx[k]] for k in keep],
                vectors=vectors[keep],
                failures=[(jobs[i], e) for i, e in zip(idx, errors, strict=True) if e],
            )


class RayEmbedActor:
    """A Ray actor: one ONNX Runtime session; decodes and embeds the batches it is given."""

    def __init__(
        self, *, model: EmbeddingModel, model_ref: Any, size: int, threads: int,
        storage_url: str, max_pixels: int,
    ) -> None:
        import ray

        from labelwise.storage import open_store

        data = ray.get(model_ref) if isinstance(model_ref, ray.ObjectRef) else model_ref
        self.embedder = OnnxEmbedder(model, threads=threads, model_bytes=data)
        self.store = open_store(storage_url)
        self.size = size
        self.max_pixels = max_pixels

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs = [
            EmbedJob(content_hash=str(h), blob_key=str(b), name=str(n),
                     box=None if int(box[0]) < 0 else tuple(int(v) for v in box))
            for h, b, n, box in zip(batch["hash"], batch["blob"], batch["name"], batch["box"],
                                    strict=True)
        ]
        ok, images, failures = decode_jobs(
            self.store.get_bytes, jobs, size=self.size, max_pixels=self.max_pixels
        )
        dim = self.embedder.model.dim
        vectors = np.zeros((len(jobs), dim), np.float32)
        errors = [""] * len(jobs)
        where = {id(j): k for k, j in enumerate(jobs)}
        if ok:
            vectors[[where[id(j)] for j in ok]] = self.embedder.embed(images)
        for job, reason in failures:
            errors[where[id(job)]] = reason
        return {"i": np.asarray(batch["i"]), "vector": vectors,
                "error": np.array(errors, dtype=object)}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the engine needs ray.data, not just the core
    except ImportError as err:
        raise LabelwiseError(
            "the ray engine needs Ray: pip install 'ray[data]' (or use --engine local)"
        ) from err
    return ray


#: Engines by name; ``get_engine`` picks one.
ENGINES: dict[str, Callable[..., Engine]] = {"local": LocalEngine, "ray": RayEngine}


def get_engine(name: str, **options: Any) -> Engine:
    """The engine called ``name``; unknown names list the choices."""
    factory = ENGINES.get(name)
    if factory is None:
        raise ValidationError(
            f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}"
        )
    return factory(**options)
