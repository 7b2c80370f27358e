"""Keyset pagination, tag and split filters, dataset lookups, on both backends."""

from __future__ import annotations

import pytest

from labelwise.db import queries
from labelwise.db.bulk import bulk_insert
from labelwise.db.models import DatasetRow, LabelSchemaRow
from labelwise.db.splits import create_split, random_asset_ids, tagged_asset_ids
from labelwise.errors import ConflictError, LabelwiseError, NotFoundError


def _dataset(ws, n: int = 250) -> int:
    with ws.session() as s, s.begin():
        ds = DatasetRow(name="d", schema=LabelSchemaRow(name="d"), description="", info={})
        s.add(ds)
        s.flush()
        conn = s.connection()
        bulk_insert(conn, "assets",
                    ("dataset_id", "path", "content_hash", "width", "height", "format",
                     "size_bytes", "metadata"),
                    ((ds.id, f"{i:04d}.jpg", f"{i:064x}", 10, 10, "jpg", 1, "{}") for i in range(n)))
        ids = [a["id"] for a in queries.list_assets(s, ds.id, limit=1000)["items"]]
        bulk_insert(conn, "asset_tags", ("asset_id", "tag", "dataset_id"),
                    ((aid, "odd" if k % 2 else "even", ds.id) for k, aid in enumerate(ids)))
        bulk_insert(conn, "asset_tags", ("asset_id", "tag", "dataset_id"),
                    ((aid, "tens", ds.id) for k, aid in enumerate(ids) if k % 10 == 0))
        return ds.id


def _walk(ws, ds_id, **filters) -> list[str]:
    paths, cursor = [], None
    with ws.session() as s:
        while True:
            page = queries.list_assets(s, ds_id, limit=7, cursor=cursor, **filters)
            paths += [a["path"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return paths


def test_pages_visit_every_asset_once_in_order(workspace):
    ds_id = _dataset(workspace)
    paths = _walk(workspace, ds_id)
    assert paths == [f"{i:04d}.jpg" for i in range(250)]


def test_tag_filter_pages(workspace):
    ds_id = _dataset(workspace)
    assert _walk(workspace, ds_id, tag="tens") == [f"{i:04d}.jpg" for i in range(0, 250, 10)]
    assert len(_walk(workspace, ds_id, tag="odd")) == 125
    assert _walk(workspace, ds_id, tag="missing") == []


def test_tags_are_returned_with_assets(workspace):
    ds_id = _dataset(workspace, n=3)
    with workspace.session() as s:
        items = queries.list_assets(s, ds_id)["items"]
    assert [a["tags"] for a in items] == [["even", "tens"], ["odd"], ["even"]]


def test_split_filter_and_split_creation(workspace):
    ds_id = _dataset(workspace)
    with workspace.session() as s, s.begin():
        ds = queries.get_dataset(s, ds_id)
        ids = random_asset_ids(s, ds, fraction=0.2, seed=3)
        assert len(ids) == 50
        assert ids == random_asset_ids(s, ds, fraction=0.2, seed=3)  # reproducible
        create_split(s, ds, "val", ids)
        with pytest.raises(ConflictError, match="already has a split 'val'"):
            create_split(s, ds, "val", ids)
        create_split(s, ds, "tens", tagged_asset_ids(s, ds, "tens"))
    assert len(_walk(workspace, ds_id, split="val")) == 50
    assert len(_walk(workspace, ds_id, split="tens")) == 25
    summary = workspace.dataset_summary("d")
    assert {sp["name"]: sp["num_assets"] for sp in summary["splits"]} == {"tens": 25, "val": 50}
    with pytest.raises(NotFoundError, match="no split 'nope'.*tens, val"):
        _walk(workspace, ds_id, split="nope")


def test_split_refuses_foreign_assets(workspace):
    ds_id = _dataset(workspace, n=5)
    with workspace.session() as s, s.begin():
        ds = queries.get_dataset(s, ds_id)
        with pytest.raises(LabelwiseError, match="1 of the asset ids are not in dataset"):
            create_split(s, ds, "bad", [10_000])


def test_bad_cursor_and_limit(workspace):
    ds_id = _dataset(workspace, n=3)
    with workspace.session() as s:
        with pytest.raises(LabelwiseError, match="invalid cursor"):
            queries.list_assets(s, ds_id, cursor="not-a-cursor!")
        with pytest.raises(LabelwiseError, match="limit must be between 1 and 1000"):
            queries.list_assets(s, ds_id, limit=0)


def test_unknown_dataset_lists_the_known_ones(workspace):
    _dataset(workspace, n=1)
    with pytest.raises(NotFoundError, match=r"no dataset 'x'.*datasets: d"):
        workspace.dataset_summary("x")
