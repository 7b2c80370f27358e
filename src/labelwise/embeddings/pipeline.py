"""Embed a dataset: find what is not cached yet, compute it with an engine, store it in shards.

``embed_dataset`` is the one entry point (the CLI's ``labelwise embed`` and ``ws.embed`` call
it). Work is keyed by content: assets with identical bytes are embedded once, and anything
already in the cache for (model, size) is skipped, so a second run computes nothing and an
interrupted run resumes where its last committed shard ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from labelwise.db import queries
from labelwise.db.models import AssetRow, SplitAssetRow
from labelwise.embeddings.backbones import BUILTIN, MAX_SIZE, MIN_SIZE, get_model
from labelwise.embeddings.engines import BatchResult, EmbedJob, get_engine
from labelwise.embeddings.objects import DEFAULT_MARGIN, dataset_objects
from labelwise.embeddings.store import Key, cached_keys, write_shard
from labelwise.errors import ValidationError
from labelwise.storage import image_key

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

#: ``progress(stage, done, total)``, as the importer's.
Progress = Callable[[str, int, int], None]

SHARD_SIZE = 4096
SHARD_SECONDS = 60.0  # commit at least this often, so an interruption loses little


@dataclass(frozen=True, slots=True)
class EmbedFailure:
    """An image (or object) that could not be embedded, and why."""

    asset_id: int
    path: str
    reason: str
    annotation_id: int | None = None


@dataclass(slots=True)
class EmbedReport:
    """What a run did. ``embedded`` were computed now; ``cached`` were already there."""

    dataset: str
    model: str
    size: int
    engine: str
    objects: bool
    total: int = 0  # images (or objects) in scope
    unique: int = 0  # distinct contents (or crops) among them
    cached: int = 0
    embedded: int = 0
    failed: list[EmbedFailure] = field(default_factory=list)
    seconds: float = 0.0
    compute_seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Throughput of the computing part of the run (decode, resize, inference, storing)."""
        return self.embedded / self.compute_seconds if self.compute_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_second"] = round(self.images_per_second, 1)
        return out


@dataclass(slots=True)
class _Work:
    job: EmbedJob
    refs: list[tuple[int, str, int | None]]  # (asset_id, path, annotation_id) sharing the job


def embed_dataset(
    ws: Workspace,
    dataset: str | int,
    *,
    model: str = BUILTIN,
    size: int | None = None,
    engine: str = "local",
    batch_size: int = 32,
    objects: bool = False,
    split: str | None = None,
    margin: float = DEFAULT_MARGIN,
    ray_address: str | None = None,
    shard_size: int = SHARD_SIZE,
    progress: Progress | None = None,
) -> EmbedReport:
    """Compute and cache the embeddings of a dataset's images (or, with ``objects``, its objects).

    ``size`` is the square input side in pixels (default: the model's, 224 for the built-in);
    ``engine`` is ``local`` or ``ray`` (``ray_address`` for a cluster). Unreadable images are
    skipped and listed in ``report.failed``. Load the results with ``load_embeddings`` or
    ``load_object_embeddings``. Example::

        report = embed_dataset(ws, "street", size=224, batch_size=32)
        report.embedded, report.cached, report.images_per_second
    """
    started = time.perf_counter()
    _check_counts(batch_size=batch_size, shard_size=shard_size)
    if ray_address is not None and engine != "ray":
        raise ValidationError("ray_address (--ray-address) needs engine='ray' (--engine ray)")
    runner = get_engine(engine, **({"address": ray_address} if engine == "ray" else {}))
    emb_model = get_model(ws, model)
    size = emb_model.input_size if size is None else size
    _check_size(size)
    work, skipped, name, cached = _plan(ws, dataset, model=emb_model.name, size=size,
                                        objects=objects, split=split, margin=margin)
    report = EmbedReport(dataset=name, model=emb_model.name, size=size, engine=runner.name,
                         objects=objects, total=sum(len(w.refs) for w in work) + len(skipped),
                         unique=len(work), failed=skipped)
    todo = [w for w in work if w.job.key not in cached]
    if objects:  # crops of one image side by side: it is decoded once for all of them
        todo.sort(key=lambda w: w.job.content_hash)
    report.cached = len(work) - len(todo)
    by_key = {w.job.key: w for w in todo}
    writer = _ShardWriter(ws, model=emb_model.name, size=size, shard_size=shard_size)
    if progress:
        progress("embed", 0, len(todo))
    compute_start = time.perf_counter()
    done = 0
    try:
        for result in runner.embed(ws, [w.job for w in todo], model=emb_model, size=size,
                                   batch_size=batch_size):
            writer.add([j.key for j in result.jobs], result.vectors)
            report.embedded += len(result.jobs)
            report.failed.extend(_failures(result, by_key))
            done += len(result.jobs) + len(result.failures)
            if progress:
                progress("embed", done, len(todo))
    finally:
        writer.flush()  # keep every finished vector, even when the run is interrupted
    report.compute_seconds = time.perf_counter() - compute_start
    report.seconds = time.perf_counter() - started
    return report


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValidationError(
            f"size {size!r} is not usable; pass a whole number of pixels between {MIN_SIZE} "
            f"and {MAX_SIZE} (224 is the model's native size, 112 is 4x faster)"
        )


def _check_counts(*, batch_size: int, shard_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(
            f"batch size {batch_size!r} must be a positive whole number (e.g. 32)")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValidationError(f"shard size {shard_size!r} must be a positive whole number")


def _plan(
    ws: Workspace, dataset: str | int, *, model: str, size: int, objects: bool,
    split: str | None, margin: float,
) -> tuple[list[_Work], list[EmbedFailure], str, set[Key]]:
    """Group the dataset's images (or crops) by cache key; find which keys are cached."""
    work: dict[Key, _Work] = {}
    skipped: list[EmbedFailure] = []
    if objects:
        crops, skipped_objects = dataset_objects(ws, dataset, split=split, margin=margin)
        skipped = [EmbedFailure(o.asset_id, o.path, o.reason, o.annotation_id)
                   for o in skipped_objects]
        for c in crops:
            job = EmbedJob(c.content_hash, image_key(c.content_hash, c.format), c.path, c.box)
            work.setdefault(job.key, _Work(job, [])).refs.append(
                (c.asset_id, c.path, c.annotation_id))
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        if not objects:
            stmt = (select(AssetRow.id, AssetRow.path, AssetRow.content_hash, AssetRow.format)
                    .where(AssetRow.dataset_id == ds.id).order_by(AssetRow.id))
            if split is not None:
                sp = queries.get_split(s, ds, split)
                stmt = stmt.where(AssetRow.id.in_(
                    select(SplitAssetRow.asset_id).where(SplitAssetRow.split_id == sp.id)))
            for asset_id, path, content_hash, fmt in s.execute(stmt):
                job = EmbedJob(content_hash, image_key(content_hash, fmt), path)
                work.setdefault(job.key, _Work(job, [])).refs.append((asset_id, path, None))
        cached = cached_keys(s, dataset_id=ds.id, model=model, size=size, objects=objects)
        name = ds.name
    return list(work.values()), skipped, name, cached


def _failures(result: BatchResult, by_key: dict[Key, _Work]) -> list[EmbedFailure]:
    return [
        EmbedFailure(asset_id, path, reason, annotation_id)
        for job, reason in result.failures
        for asset_id, path, annotation_id in by_key[job.key].refs
    ]


class _ShardWriter:
    """Buffers vectors and commits them as shards of ``shard_size`` (or every minute)."""

    def __init__(self, ws: Workspace, *, model: str, size: int, shard_size: int) -> None:
        self.ws, self.model, self.size, self.shard_size = ws, model, size, shard_size
        self.keys: list[Key] = []
        self.parts: list[np.ndarray] = []
        self.last = time.monotonic()

    def add(self, keys: Sequence[Key], vectors: np.ndarray) -> None:
        if not keys:
            return
        self.keys.extend(keys)
        self.parts.append(vectors)
        if len(self.keys) >= self.shard_size:
            self._write(full_only=True)
        elif time.monotonic() - self.last > SHARD_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Commit everything buffered."""
        self._write(full_only=False)

    def _write(self, *, full_only: bool) -> None:
        if not self.keys:
            return
        X = np.concatenate(self.parts)
        n = len(self.keys) - len(self.keys) % self.shard_size if full_only else len(self.keys)
        for start in range(0, n, self.shard_size):
            stop = min(start + self.shard_size, n)
            write_shard(self.ws, model=self.model, size=self.size,
                        keys=self.keys[start:stop], X=X[start:stop])
        self.keys, self.parts = self.keys[n:], [X[n:]] if n < len(X) else []
        self.last = time.monotonic()
