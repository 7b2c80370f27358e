"""The Ray engine on a local Ray instance gives the local engine's embeddings, on both databases.

Both databases run inside one test, so one worker runs it and Ray starts once (xdist may spread
the two backend parameters of a test over two workers).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

import labelwise
from labelwise.db.models import AssetRow
from labelwise.embeddings import (
    drop_embeddings,
    embed_dataset,
    load_embeddings,
    load_object_embeddings,
)
from labelwise.storage import image_key
from tests.conftest import _PG_ERROR, _truncate_all
from tests.embeddings.conftest import write_cat_coco

# About 15-25 s with Ray's start-up.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]

SIZE = 48


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for the module, shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def both_databases(request, tmp_path) -> Iterator[labelwise.Workspace]:
    """An empty SQLite workspace, then an empty PostgreSQL one (unless the server is away)."""
    with labelwise.init(tmp_path / "sqlite") as ws:
        yield ws
    try:
        url = request.getfixturevalue("pg_url")
    except pytest.skip.Exception:  # unreachable: conftest already fails the run in CI
        return
    with labelwise.init(tmp_path / "postgresql", database_url=url) as ws:
        _truncate_all(ws)
        yield ws


def test_ray_engine_equals_local_engine(ray_instance, request, fmnist_dir, tmp_path):
    backends = []
    for ws in both_databases(request, tmp_path):
        backends.append(ws.engine.dialect.name)
        check_ray_equals_local(ws, fmnist_dir, tmp_path / ws.engine.dialect.name)
    assert backends == ["sqlite", "postgresql"] or (_PG_ERROR and backends == ["sqlite"])


def check_ray_equals_local(ws, fmnist_dir, tmp_path):
    ws.import_dataset("classfolders", fmnist_dir, dataset="fm")
    ws.import_dataset("coco", write_cat_coco(tmp_path / "coco"), dataset="cats")
    with ws.session() as s:
        broken = s.execute(select(AssetRow.id, AssetRow.content_hash, AssetRow.format)
                           .order_by(AssetRow.id).offset(5).limit(1)).one()
    ws.store.put_bytes(image_key(broken.content_hash, broken.format), b"\x89PNG\r\n\x1a\n broken")

    by_ray = embed_dataset(ws, "fm", size=SIZE, engine="ray", batch_size=8)
    assert by_ray.engine == "ray" and by_ray.embedded == 23
    assert [f.asset_id for f in by_ray.failed] == [broken.id]
    ids_ray, X_ray = load_embeddings(ws, "fm", size=SIZE)
    assert embed_dataset(ws, "fm", size=SIZE, engine="ray").embedded == 0  # cache shared
    assert embed_dataset(ws, "cats", size=SIZE, engine="ray", objects=True).embedded == 3
    ann_ray, O_ray = load_object_embeddings(ws, "cats", size=SIZE)

    drop_embeddings(ws, model="efficientnet-lite0")
    by_local = embed_dataset(ws, "fm", size=SIZE, engine="local", batch_size=8)
    assert by_local.embedded == 23 and [f.asset_id for f in by_local.failed] == [broken.id]
    ids_local, X_local = load_embeddings(ws, "fm", size=SIZE)
    assert embed_dataset(ws, "cats", size=SIZE, objects=True).embedded == 3
    ann_local, O_local = load_object_embeddings(ws, "cats", size=SIZE)

    assert ids_ray.tolist() == ids_local.tolist() and broken.id not in ids_ray
    np.testing.assert_allclose(X_ray, X_local, atol=1e-5)
    assert ann_ray.tolist() == ann_local.tolist()
    np.testing.assert_allclose(O_ray, O_local, atol=1e-5)
