"""Similarity search, near-duplicates and the 2-D map of a dataset: load, compute, store.

The service behind ``labelwise similar | duplicates | embed-map``, the ``ws.similar`` family
and the ``/api/.../similar|duplicates|map`` routes. It loads a dataset's cached embeddings
(``store.load_embeddings``), hands them to the pure kernels (``index``, ``duplicates``,
``projection``) and keeps what is worth keeping in the blob store:

- a trained (IVF) index under ``indexes/<dataset id>/<model>_<size>.npz``, stamped with the
  digest of the embeddings it was built from; when the dataset's embeddings change (images
  added, re-embedded) the digest differs and the index is rebuilt. Exact indexes are not
  stored: building one is a copy of the vectors, as cheap as reading it back.
- the map under ``maps/<dataset id>/<model>_<size>.npy`` (points, float32 (n, 2) in [0, 1]),
  ``..._<size>.ids.npy`` (asset ids, int64 (n,)) and ``..._<size>.json`` (method, digest).

Distances are cosine distances ``1 - cos`` in [0, 2]: 0 = same direction, lower = more similar.
A dataset without embeddings raises NotFoundError saying to run ``labelwise embed DATASET``.

    ws.similar(42, k=5)                       # the 5 images most like asset 42
    ws.near_duplicates("street").groups        # groups of near-identical images
    ws.embedding_map("street").points          # (n, 2) for the map
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from labelwise.db import queries
from labelwise.db.models import AssetRow
from labelwise.embeddings.backbones import BUILTIN, EmbeddingModel, get_model, list_models
from labelwise.embeddings.duplicates import (
    DEFAULT_K,
    DEFAULT_THRESHOLD,
    check_threshold,
    find_near_duplicates,
)
from labelwise.embeddings.index import (
    VectorIndex,
    build_index,
    check_backend,
    load_index,
    save_index,
)
from labelwise.embeddings.projection import MapOptions, check_method, project_2d
from labelwise.embeddings.store import load_embeddings
from labelwise.embeddings.verify import (
    DEFAULT_MIN_NCC,
    THUMB,
    VERIFIED_THRESHOLD,
    VIEWS,
    pair_similarity,
    signature,
)
from labelwise.errors import NotFoundError, StorageError, ValidationError

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

#: Neighbours returned by default, and the most one request may ask for.
DEFAULT_NEIGHBOURS, MAX_NEIGHBOURS = 10, 1000
#: Backends whose index is trained and worth storing (an exact index is just the vectors).
_STORED_BACKENDS = {"ivf"}


# -- loading a dataset's embeddings and its index ---------------------------------------------
@dataclass
class IndexedDataset:
    """A dataset's image embeddings and an index over them.

    ``ids`` (n,) int64 asset ids, ascending; ``X`` (n, d) float32 raw embeddings, row i of
    asset ``ids[i]``; ``digest`` identifies this exact set of vectors.
    """

    dataset_id: int
    dataset: str
    model: str
    size: int
    ids: np.ndarray
    X: np.ndarray
    digest: str
    index: VectorIndex

    def position(self, asset_id: int) -> int | None:
        """Row of ``asset_id`` in ``X``, or None if it has no embedding."""
        i = int(np.searchsorted(self.ids, asset_id))
        return i if i < len(self.ids) and self.ids[i] == asset_id else None


def resolve_size(
    ws: Workspace, model: str, size: int | None, *, dataset: str | int | None = None
) -> int:
    """``size``, or when None: the model's own input size, unless ``dataset`` has embeddings
    of this model only at other sizes, then the largest of those (so `labelwise embed --size
    112` followed by `labelwise similar` just works)."""
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValidationError(f"size must be a positive number of pixels, got {size!r}")
        return size
    default = None
    for entry in list_models(ws):
        if entry["name"] == model:
            default = int(entry["input_size"])
    if default is None:
        choices = ", ".join(m["name"] for m in list_models(ws))
        raise NotFoundError(f"no embedding model {model!r} (models: {choices})")
    if dataset is None:
        return default
    sizes = _embedded_sizes(ws, dataset, model)
    return default if default in sizes or not sizes else max(sizes)


def _embedded_sizes(ws: Workspace, dataset: str | int, model: str) -> list[int]:
    """Sizes at which some image of ``dataset`` has an embedding of ``model``."""
    from sqlalchemy import exists

    from labelwise.db.models import EmbeddingRow, EmbeddingShardRow

    ds_id, _ = _dataset_ref(ws, dataset)
    with ws.session() as s:
        candidates = s.scalars(
            select(EmbeddingShardRow.size).where(EmbeddingShardRow.model == model).distinct()
        ).all()
        found = []
        for sz in candidates:  # a handful of sizes; each check stops at the first match
            hit = s.scalar(
                select(
                    exists().where(
                        AssetRow.dataset_id == ds_id,
                        EmbeddingRow.content_hash == AssetRow.content_hash,
                        EmbeddingRow.model == model,
                        EmbeddingRow.size == sz,
                        EmbeddingRow.object_key == "",
                    )
                )
            )
            if hit:
                found.append(int(sz))
        return found


def _dataset_ref(ws: Workspace, dataset: str | int) -> tuple[int, str]:
    """(id, name) of a dataset given by name or id; unknown ones list the datasets."""
    with ws.session() as s:
        ds = queries.get_dataset(s, dataset)
        return ds.id, ds.name


def embeddings_digest(ids: np.ndarray, X: np.ndarray) -> str:
    """A short hash of (ids, vectors): equal digests mean the same set of embeddings."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(ids, dtype=np.int64).view(np.uint8).reshape(-1))
    h.update(np.ascontiguousarray(X, dtype=np.float32).view(np.uint8).reshape(-1))
    return h.hexdigest()


def index_key(dataset_id: int, model: str, size: int) -> str:
    return f"indexes/{dataset_id}/{model}_{size}.npz"


def load_indexed(
    ws: Workspace,
    dataset: str | int,
    *,
    model: str = BUILTIN,
    size: int | None = None,
    index: str = "auto",
) -> IndexedDataset:
    """Load a dataset's embeddings and index them (reusing a stored trained index).

    ``index`` is a backend name from ``labelwise.embeddings.index.BACKENDS``. Raises
    NotFoundError (``labelwise embed DATASET``) when the dataset has no embeddings.
    """
    check_backend(index)
    size = resolve_size(ws, model, size, dataset=dataset)
    ds_id, ds_name = _dataset_ref(ws, dataset)
    ids, X = load_embeddings(ws, ds_id, model=model, size=size)
    digest = embeddings_digest(ids, X)
    key = index_key(ds_id, model, size)
    vindex = _stored_index(ws, key, digest=digest, backend=index)
    if vindex is None:
        vindex = build_index(X, ids=ids, backend=index)
        if vindex.backend in _STORED_BACKENDS:
            data = save_index(vindex, meta={"digest": digest, "requested": index})
            ws.store.put_bytes(key, data)
    return IndexedDataset(ds_id, ds_name, model, size, ids, X, digest, vindex)


def _stored_index(ws: Workspace, key: str, *, digest: str, backend: str) -> VectorIndex | None:
    """The index stored at ``key`` if it was built from ``digest`` with ``backend``."""
    if not ws.store.exists(key):
        return None
    try:
        vindex, meta = load_index(ws.store.get_bytes(key))
    except (ValidationError, StorageError):
        return None  # damaged or unreadable: rebuilt and overwritten by the caller
    if meta.get("digest") != digest or meta.get("requested") != backend:
        return None
    return vindex


# -- assets as the API shows them -------------------------------------------------------------
def assets_public(ws: Workspace, asset_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``queries.asset_public`` dicts (with tags) of the given assets, by id."""
    out: dict[int, dict[str, Any]] = {}
    unique = sorted(set(int(a) for a in asset_ids))
    with ws.session() as s:
        for start in range(0, len(unique), 1000):
            chunk = unique[start : start + 1000]
            rows = s.scalars(select(AssetRow).where(AssetRow.id.in_(chunk))).all()
            tags = queries.tags_for(s, [r.id for r in rows])
            out.update({r.id: queries.asset_public(r, tags.get(r.id, [])) for r in rows})
    return out


def _matches(ws: Workspace, ids: np.ndarray, dist: np.ndarray) -> list[dict[str, Any]]:
    found = [(int(i), float(d)) for i, d in zip(ids, dist, strict=True) if i >= 0]
    public = assets_public(ws, [i for i, _ in found])
    # An asset deleted since its embedding was cached is left out.
    return [{"distance": d, "asset": public[i]} for i, d in found if i in public]


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_NEIGHBOURS:
        raise ValidationError(f"k must be between 1 and {MAX_NEIGHBOURS}, got {k!r}")
    return k


# -- similar to an asset / to an image -------------------------------------------------------
def similar_to_asset(
    ws: Workspace,
    asset_id: int,
    *,
    k: int = DEFAULT_NEIGHBOURS,
    model: str = BUILTIN,
    size: int | None = None,
    index: str = "auto",
) -> list[dict[str, Any]]:
    """The ``k`` images of the asset's dataset most similar to it, nearest first.

    Returns ``[{"distance": cosine distance, "asset": asset dict}, ...]``; the asset itself is
    left out (an identical copy elsewhere in the dataset is kept, at distance 0).
    """
    _check_k(k)
    with ws.session() as s:
        row = queries.get_asset(s, asset_id)
        dataset_id, path = row.dataset_id, row.path
        dataset_name = queries.get_dataset(s, dataset_id).name
    data = load_indexed(ws, dataset_id, model=model, size=size, index=index)
    pos = data.position(asset_id)
    if pos is None:
        raise NotFoundError(
            f"asset {asset_id} ({path}) has no embedding for model {model!r} at {data.size} "
            f"px; run `labelwise embed {dataset_name} --model {model} --size {data.size}` "
            "(images it reports as unreadable stay without one)"
        )
    dist, ids = data.index.search(data.X[pos : pos + 1], k + 1)
    keep = ids[0] != asset_id
    return _matches(ws, ids[0][keep][:k], dist[0][keep][:k])


@functools.lru_cache(maxsize=2)
def _embedder(model: EmbeddingModel):  # noqa: ANN202 - OnnxEmbedder, imported lazily
    """One ONNX Runtime session per model, kept for later queries (a session costs ~0.3 s)."""
    from labelwise.embeddings.backbones import OnnxEmbedder

    return OnnxEmbedder(model)


def embed_image(
    ws: Workspace, image_bytes: bytes, *, model: str = BUILTIN, size: int | None = None,
    name: str = "uploaded image",
) -> np.ndarray:
    """The raw embedding (d,) float32 of one image's bytes, prepared as the pipeline does.

    A file that is not a readable image (or too large) raises ImageError naming ``name``.
    """
    from labelwise.embeddings.preprocess import decode_image, resize_square

    size = resolve_size(ws, model, size)
    emb_model = get_model(ws, model)
    im = decode_image(image_bytes, name=name, max_pixels=ws.settings.max_image_pixels, draft=size)
    return _embedder(emb_model).embed(resize_square(im, size)[None])[0]


def similar_to_image(
    ws: Workspace,
    dataset: str | int,
    image_bytes: bytes,
    *,
    k: int = DEFAULT_NEIGHBOURS,
    model: str = BUILTIN,
    size: int | None = None,
    index: str = "auto",
) -> list[dict[str, Any]]:
    """The ``k`` images of ``dataset`` most similar to an image given as bytes, nearest first.

    Returns ``[{"distance": cosine distance, "asset": asset dict}, ...]``. Bytes that are not
    a readable image raise ImageError; a dataset without embeddings raises NotFoundError.
    """
    _check_k(k)
    data = load_indexed(ws, dataset, model=model, size=size, index=index)
    query = embed_image(ws, image_bytes, model=model, size=data.size)
    dist, ids = data.index.search(query[None], k)
    return _matches(ws, ids[0], dist[0])


# -- near-duplicates ----------------------------------------------------------------------------
@dataclass
class DuplicateReport:
    """Near-duplicate groups of a dataset at ``threshold`` (cosine distance).

    ``groups``: ``{"representative": asset id, "members": [{"asset_id", "distance", "asset"},
    ...]}`` with members in id order, ``distance`` to the representative; largest group first.
    ``num_embedded``: images looked at; ``num_duplicates``: images in some group that are not
    its representative (what removing the copies would drop).
    """

    dataset: str
    model: str
    size: int
    threshold: float
    num_embedded: int
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_duplicates(self) -> int:
        return sum(len(g["members"]) - 1 for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "model": self.model, "size": self.size,
            "threshold": self.threshold, "num_embedded": self.num_embedded,
            "num_groups": len(self.groups), "num_duplicates": self.num_duplicates,
            "groups": self.groups,
        }


def near_duplicates(
    ws: Workspace,
    dataset: str | int,
    *,
    threshold: float | None = None,
    verify: bool = True,
    min_ncc: float = DEFAULT_MIN_NCC,
    k: int = DEFAULT_K,
    model: str = BUILTIN,
    size: int | None = None,
    index: str = "auto",
) -> DuplicateReport:
    """Groups of near-identical images in ``dataset``, joined transitively.

    Two stages: pairs of the k-NN graph at cosine distance <= ``threshold`` are candidates;
    with ``verify`` (the default) each candidate further than ``DEFAULT_THRESHOLD`` must also
    pass the pixel check of ``labelwise.embeddings.verify`` (thumbnail correlation >=
    ``min_ncc``, allowing a flip and a centre crop). Default ``threshold``: ``VERIFIED_THRESHOLD`` with the pixel check,
    ``DEFAULT_THRESHOLD`` (embeddings alone) without it.
    """
    if threshold is None:
        threshold = VERIFIED_THRESHOLD if verify else DEFAULT_THRESHOLD
    threshold = check_threshold(threshold)
    if not -1.0 <= min_ncc <= 1.0:
        raise ValidationError(f"min_ncc is a correlation in [-1, 1], got {min_ncc}")
    _check_k(k)
    data = load_indexed(ws, dataset, model=model, size=size, index=index)
    pair_filter = pixel_check(ws, data.ids, min_ncc=min_ncc) if verify else None
    found = find_near_duplicates(
        data.X, threshold=threshold, k=k, index=data.index, pair_filter=pair_filter
    )
    groups = [g.relabel(data.ids) for g in found]
    public = assets_public(ws, [int(m) for g in groups for m in g.members])
    out = []
    for g in groups:
        members = [
            {"asset_id": int(m), "distance": float(d), "asset": public[int(m)]}
            for m, d in zip(g.members, g.distances, strict=True) if int(m) in public
        ]
        if len(members) > 1:
            out.append({"representative": g.representative, "members": members})
    return DuplicateReport(data.dataset, model, data.size, threshold, len(data.ids), out)


def pixel_check(ws: Workspace, asset_ids: np.ndarray, *, min_ncc: float = DEFAULT_MIN_NCC):
    """A ``pair_filter`` for ``find_near_duplicates`` over rows that are ``asset_ids``.

    Pairs close enough in embedding space to be copies on their own (<= ``DEFAULT_THRESHOLD``)
    need no pixel check (it can miss a crop of a tiny image); the rest must pass it.
    """

    def keep_pairs(pairs: np.ndarray, dist: np.ndarray) -> np.ndarray:
        keep = dist <= DEFAULT_THRESHOLD
        todo = np.flatnonzero(~keep)
        if len(todo):
            rows = np.unique(pairs[todo])
            sig = _signatures(ws, asset_ids[rows])
            keep[todo] = pair_similarity(sig, np.searchsorted(rows, pairs[todo])) >= min_ncc
        return keep

    return keep_pairs


def _signatures(ws: Workspace, asset_ids: np.ndarray) -> np.ndarray:
    """Pixel signatures (n, 4, d) of assets, read from the blob store; unreadable -> zeros."""
    from PIL import Image

    from labelwise.storage import image_key

    with ws.session() as s:
        rows = dict(
            (int(i), (h, f)) for i, h, f in s.execute(
                select(AssetRow.id, AssetRow.content_hash, AssetRow.format).where(
                    AssetRow.id.in_([int(a) for a in asset_ids])
                )
            )
        )
    out = np.zeros((len(asset_ids), VIEWS, THUMB * THUMB), np.float32)
    for i, aid in enumerate(asset_ids):
        try:
            chash, fmt = rows[int(aid)]
            with Image.open(io.BytesIO(ws.store.get_bytes(image_key(chash, fmt)))) as im:
                out[i] = signature(im)
        except (KeyError, OSError, StorageError, ValueError):
            continue  # an unreadable image matches nothing
    return out


# -- the 2-D map --------------------------------------------------------------------------------
@dataclass
class EmbeddingMap:
    """A dataset's 2-D map: ``points`` (n, 2) float32 in [0, 1] for assets ``ids`` (n,)."""

    dataset_id: int
    model: str
    size: int
    method: str
    ids: np.ndarray
    points: np.ndarray
    digest: str = ""

    def as_rows(self) -> list[list[float]]:
        """``[[asset_id, x, y], ...]`` as the API sends it (coordinates rounded to 1e-5)."""
        xy = np.round(self.points.astype(np.float64), 5)
        return [[int(i), float(x), float(y)] for i, (x, y) in zip(self.ids, xy, strict=True)]


def map_keys(dataset_id: int, model: str, size: int) -> tuple[str, str, str]:
    """Blob keys of a map: (points .npy, ids .npy, header .json)."""
    base = f"maps/{dataset_id}/{model}_{size}"
    return f"{base}.npy", f"{base}.ids.npy", f"{base}.json"


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def compute_map(
    ws: Workspace,
    dataset: str | int,
    *,
    method: str = "umap",
    model: str = BUILTIN,
    size: int | None = None,
    seed: int = 0,
) -> EmbeddingMap:
    """Compute the 2-D map of a dataset's embeddings and store it (replacing an older one).

    ``method`` is ``umap`` or ``pca`` (``umap`` falls back to ``pca`` for tiny sets); the map
    is the same for the same embeddings and ``seed``.
    """
    check_method(method)
    size = resolve_size(ws, model, size, dataset=dataset)
    ds_id, _ = _dataset_ref(ws, dataset)
    ids, X = load_embeddings(ws, ds_id, model=model, size=size)
    proj = project_2d(X, method=method, options=MapOptions(seed=seed))
    result = EmbeddingMap(ds_id, model, size, proj.method, ids, proj.points,
                          embeddings_digest(ids, X))
    points_key, ids_key, header_key = map_keys(ds_id, model, size)
    ws.store.put_bytes(points_key, _npy(result.points))
    ws.store.put_bytes(ids_key, _npy(result.ids))
    header = {"method": result.method, "digest": result.digest, "count": len(ids), "seed": seed}
    ws.store.put_bytes(header_key, json.dumps(header).encode())  # last: marks the map complete
    return result


def _read_map(ws: Workspace, dataset_id: int, model: str, size: int) -> EmbeddingMap | None:
    """The stored map, or None if there is none (or only part of one: an interrupted run)."""
    points_key, ids_key, header_key = map_keys(dataset_id, model, size)
    if not ws.store.exists(header_key):
        return None
    try:
        header = json.loads(ws.store.get_bytes(header_key))
        points = np.load(io.BytesIO(ws.store.get_bytes(points_key)), allow_pickle=False)
        ids = np.load(io.BytesIO(ws.store.get_bytes(ids_key)), allow_pickle=False)
    except (StorageError, OSError, ValueError):
        return None
    if points.shape != (len(ids), 2) or len(ids) != header.get("count"):
        return None
    return EmbeddingMap(dataset_id, model, size, header["method"], ids.astype(np.int64),
                        points.astype(np.float32), header.get("digest", ""))


def load_map(
    ws: Workspace, dataset: str | int, *, model: str = BUILTIN, size: int | None = None
) -> EmbeddingMap:
    """The stored map of a dataset; NotFoundError (with the command to make it) if none."""
    size = resolve_size(ws, model, size, dataset=dataset)
    ds_id, name = _dataset_ref(ws, dataset)
    found = _read_map(ws, ds_id, model, size)
    if found is None:
        raise NotFoundError(
            f"dataset {name!r} has no embedding map for model {model!r} at {size} px; make it "
            f"with `labelwise embed-map {name} --model {model} --size {size}`"
        )
    return found


def get_or_compute_map(
    ws: Workspace, dataset: str | int, *, model: str = BUILTIN, size: int | None = None
) -> EmbeddingMap:
    """The stored map, computed (UMAP) and stored first when there is none."""
    size = resolve_size(ws, model, size, dataset=dataset)
    ds_id, _ = _dataset_ref(ws, dataset)
    found = _read_map(ws, ds_id, model, size)
    return found if found is not None else compute_map(ws, ds_id, model=model, size=size)
