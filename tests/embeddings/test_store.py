"""The embedding cache on both databases: shards in the blob store, rows keyed by content."""

from __future__ import annotations

import re
import shutil
from io import BytesIO

import numpy as np
import pytest
from sqlalchemy import func, select

from labelwise.db.models import AssetRow, EmbeddingRow, EmbeddingShardRow
from labelwise.embeddings.store import (
    cached_keys,
    drop_embeddings,
    load_embeddings,
    write_shard,
)
from labelwise.errors import NotFoundError, StorageError
from tests.helpers import make_image

MODEL = "efficientnet-lite0"


@pytest.fixture
def ws(workspace, tmp_path):
    """Five images in two class folders; ``b/3.png`` has the same bytes as ``a/0.png``."""
    src = tmp_path / "src"
    for i in range(3):
        make_image(src / "a" / f"{i}.png", seed=i)
    make_image(src / "b" / "4.png", seed=4)
    shutil.copy(src / "a" / "0.png", src / "b" / "3.png")
    workspace.import_dataset("classfolders", src, dataset="d")
    return workspace


def assets(ws) -> dict[str, tuple[int, str]]:
    with ws.session() as s:
        rows = s.execute(select(AssetRow.path, AssetRow.id, AssetRow.content_hash)).all()
    return {path: (asset_id, h) for path, asset_id, h in rows}


def vector_of(h: str, dim: int = 6) -> np.ndarray:
    """A distinct, reproducible vector per content hash."""
    return np.random.default_rng(int(h[:8], 16)).standard_normal(dim).astype(np.float32)


def test_vectors_come_back_per_asset_in_id_order(ws):
    a = assets(ws)
    hashes = sorted({h for _, h in a.values()})
    assert len(hashes) == 4  # five assets, four distinct contents
    write_shard(ws, model=MODEL, size=64, keys=[(h, "") for h in hashes[:2]],
                X=np.stack([vector_of(h) for h in hashes[:2]]))
    write_shard(ws, model=MODEL, size=64, keys=[(h, "") for h in hashes[2:]],
                X=np.stack([vector_of(h) for h in hashes[2:]]))
    ids, X = load_embeddings(ws, "d", model=MODEL, size=64)
    assert ids.dtype == np.int64 and X.dtype == np.float32 and X.shape == (5, 6)
    assert ids.tolist() == sorted(i for i, _ in a.values())
    by_id = {i: h for i, h in a.values()}
    for row, asset_id in enumerate(ids.tolist()):
        np.testing.assert_array_equal(X[row], vector_of(by_id[asset_id]))
    np.testing.assert_array_equal(X[ids.tolist().index(a["a/0.png"][0])],
                                  X[ids.tolist().index(a["b/3.png"][0])])


def test_shards_are_npy_files_under_model_and_size(ws):
    h = next(iter(assets(ws).values()))[1]
    X = np.arange(12, dtype=np.float32).reshape(1, 12)
    shard_id = write_shard(ws, model=MODEL, size=112, keys=[(h, "")], X=X)
    with ws.session() as s:
        shard = s.get(EmbeddingShardRow, shard_id)
        assert (shard.model, shard.size, shard.num_rows, shard.dim) == (MODEL, 112, 1, 12)
    assert re.fullmatch(rf"embeddings/{MODEL}/112/[0-9a-f]{{32}}\.npy", shard.storage_key)
    stored = np.load(BytesIO(ws.store.get_bytes(shard.storage_key)))
    assert stored.dtype == np.float32 and stored.shape == (1, 12)
    np.testing.assert_array_equal(stored, X)


def test_split_filter_sizes_and_partial_caches(ws):
    a = assets(ws)
    ws.create_split("d", "val", paths=["a/1.png", "b/4.png"])
    keys = [(a["a/1.png"][1], ""), (a["a/2.png"][1], "")]
    write_shard(ws, model=MODEL, size=64, keys=keys, X=np.ones((2, 4), np.float32))
    ids, X = load_embeddings(ws, "d", model=MODEL, size=64, split="val")
    assert ids.tolist() == [a["a/1.png"][0]]  # b/4.png is not embedded: left out
    ids, _ = load_embeddings(ws, "d", model=MODEL, size=64)
    assert ids.tolist() == sorted([a["a/1.png"][0], a["a/2.png"][0]])
    with pytest.raises(NotFoundError, match=r"labelwise embed d --model efficientnet-lite0 "
                                            r"--size 224`"):
        load_embeddings(ws, "d", model=MODEL, size=224)
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        load_embeddings(ws, "nope")
    with ws.session() as s:
        ds_id = s.scalar(select(AssetRow.dataset_id).limit(1))
        assert cached_keys(s, dataset_id=ds_id, model=MODEL, size=64) == set(keys)
        assert cached_keys(s, dataset_id=ds_id, model=MODEL, size=64, objects=True) == set()


def test_a_key_written_twice_keeps_its_first_vector(ws):
    h = next(iter(assets(ws).values()))[1]
    write_shard(ws, model=MODEL, size=64, keys=[(h, "")], X=np.zeros((1, 3), np.float32))
    write_shard(ws, model=MODEL, size=64, keys=[(h, "")], X=np.ones((1, 3), np.float32))
    with ws.session() as s:
        assert s.scalar(select(func.count()).select_from(EmbeddingRow)) == 1
    _, X = load_embeddings(ws, "d", model=MODEL, size=64)
    assert (X == 0).all()


def test_drop_embeddings_removes_rows_and_blobs(ws):
    h = next(iter(assets(ws).values()))[1]
    write_shard(ws, model=MODEL, size=64, keys=[(h, "")], X=np.zeros((1, 3), np.float32))
    write_shard(ws, model=MODEL, size=32, keys=[(h, "")], X=np.zeros((1, 3), np.float32))
    with ws.session() as s:
        keys = s.scalars(
            select(EmbeddingShardRow.storage_key).order_by(EmbeddingShardRow.size)).all()
    assert drop_embeddings(ws, model=MODEL, size=64) == 1
    assert ws.store.exists(keys[0]) and not ws.store.exists(keys[1])
    assert drop_embeddings(ws, model=MODEL) == 1
    with ws.session() as s:
        assert s.scalar(select(func.count()).select_from(EmbeddingRow)) == 0
        assert s.scalar(select(func.count()).select_from(EmbeddingShardRow)) == 0


def test_a_damaged_shard_is_a_clear_storage_error(ws):
    h = next(iter(assets(ws).values()))[1]
    shard_id = write_shard(ws, model=MODEL, size=64, keys=[(h, "")], X=np.zeros((1, 3), np.float32))
    with ws.session() as s:
        key = s.get(EmbeddingShardRow, shard_id).storage_key
    ws.store.put_bytes(key, b"not an npy file")
    with pytest.raises(StorageError, match=f"{key}.*drop_embeddings"):
        load_embeddings(ws, "d", model=MODEL, size=64)
    ws.store.delete(key)
    with pytest.raises(StorageError, match="cannot be read"):
        load_embeddings(ws, "d", model=MODEL, size=64)
