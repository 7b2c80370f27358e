"""Applying a model on the Ray engine gives the local engine's pre-labels, on both databases.

Both databases run inside one test, so Ray starts once (as in tests/embeddings/test_ray.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labelwise.autolabel import service
from labelwise.db.autolabel_models import PrelabelRow
from labelwise.db.models import AnnotationRow, LabelClassRow
from tests.autolabel.service_data import build, write_sources
from tests.conftest import _PG_ERROR
from tests.embeddings.test_ray import both_databases, ray_instance  # noqa: F401

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


def _prelabels(ws, run_id: int) -> dict[int, tuple]:
    with ws.session() as s:
        pre = {p.asset_id: (p.uncertainty, p.expected_error, p.bucket)
               for p in s.scalars(select(PrelabelRow).where(PrelabelRow.run_id == run_id))}
        labels = dict(s.execute(
            select(AnnotationRow.asset_id, LabelClassRow.name)
            .join(LabelClassRow, LabelClassRow.id == AnnotationRow.class_id)
            .where(AnnotationRow.prelabel_run_id == run_id)).all())
    return {a: (*v, labels[a]) for a, v in pre.items()}


def test_ray_apply_equals_local_apply(ray_instance, request, tmp_path):  # noqa: F811
    sources = write_sources(tmp_path / "src", labeled=15, pool=20)
    backends = []
    for ws in both_databases(request, tmp_path):
        backends.append(ws.engine.dialect.name)
        build(ws, sources)
        service.train(ws, "fm", source_split="seed", name="clothes")
        local = service.apply(ws, "clothes", "fm")
        local_rows = _prelabels(ws, local.run_id)
        ray = service.apply(ws, "clothes", "fm", engine="ray")
        assert ray.engine == "ray" and ray.images == local.images == 60
        assert ray.replaced == 60  # the local run's pending pre-labels, replaced
        ray_rows = _prelabels(ws, ray.run_id)
        assert set(ray_rows) == set(local_rows)
        for asset, (u, err, bucket, label) in local_rows.items():
            ru, rerr, rbucket, rlabel = ray_rows[asset]
            assert (rbucket, rlabel) == (bucket, label)
            assert ru == pytest.approx(u, abs=1e-6) and rerr == pytest.approx(err, abs=1e-6)
        assert {b: v["count"] for b, v in ray.buckets.items()} == {
            b: v["count"] for b, v in local.buckets.items()}
    assert backends == ["sqlite", "postgresql"] or (_PG_ERROR and backends == ["sqlite"])
