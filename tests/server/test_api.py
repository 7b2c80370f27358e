"""The JSON API on both backends: health, datasets, pages of assets, one asset, errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import labelwise
from labelwise.db.queries import encode_cursor
from tests.server.helpers import NUM_IMAGES, Imported, assert_error


def walk(client: TestClient, url: str, *, limit: int, **params) -> list[list[int]]:
    """Follow next_cursor from the first page to the last; the asset ids of each page."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = client.get(url, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([a["id"] for a in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) <= NUM_IMAGES, "pagination does not end"


def test_health_is_public_and_reports_only_ok_and_version(anon):
    r = anon.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": labelwise.__version__}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    head = anon.head("/api/health")  # monitors often probe with HEAD
    assert head.status_code == 200 and head.content == b""


def test_dataset_list_has_asset_counts(client, imported: Imported):
    r = client.get("/api/datasets")
    assert r.status_code == 200
    body = r.json()
    assert body["next_cursor"] is None
    [ds] = body["items"]
    assert ds["id"] == imported.dataset_id
    assert ds["name"] == "street"
    assert ds["num_assets"] == NUM_IMAGES
    assert ds["created_at"]


def test_dataset_summary_counts_classes_and_splits(client, imported: Imported):
    r = client.get(f"/api/datasets/{imported.dataset_id}")
    assert r.status_code == 200
    body = r.json()
    expected = {"cat": 0, "dog": 0}
    for boxes in imported.boxes.values():
        for label, _ in boxes:
            expected[label] += 1
    assert {c["name"]: c["num_annotations"] for c in body["classes"]} == expected
    assert body["num_annotations"] == sum(expected.values())
    assert body["num_assets"] == NUM_IMAGES
    assert all(c["kind"] == "object" and c["tool"] == "bbox" for c in body["classes"])
    assert body["splits"] == [{"name": "val", "num_assets": len(imported.val)}]
    assert body["multi_label"] is False


@pytest.mark.parametrize("limit", [1, 3, 100])
@pytest.mark.parametrize("filter_", ["none", "tag", "split"])
def test_pagination_returns_every_asset_exactly_once(client, imported: Imported, filter_, limit):
    params, expected = {
        "none": ({}, set(imported.files)),
        "tag": ({"tag": "night"}, imported.night),
        "split": ({"split": "val"}, imported.val),
    }[filter_]
    pages = walk(client, f"/api/datasets/{imported.dataset_id}/assets", limit=limit, **params)
    ids = [i for page in pages for i in page]
    assert ids == sorted(expected)  # each once, in id order
    assert all(len(p) == limit for p in pages[:-1])
    assert len(pages) == max(1, -(-len(expected) // limit))


def test_asset_page_items_carry_tags_and_cacheable_urls(client, imported: Imported):
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets", params={"tag": "night"})
    for item in r.json()["items"]:
        assert item["tags"] == ["night"]
        assert item["image_url"] == f"/api/assets/{item['id']}/image?v={item['content_hash'][:16]}"
        assert item["thumbnail_url"].startswith(f"/api/assets/{item['id']}/thumbnail?size=256&v=")


def test_unknown_tag_is_an_empty_page(client, imported: Imported):
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets", params={"tag": "snow"})
    assert r.json() == {"items": [], "next_cursor": None}


def test_asset_detail_has_its_annotations(client, imported: Imported):
    aid = next(a for a, boxes in imported.boxes.items() if len(boxes) == 2)
    r = client.get(f"/api/assets/{aid}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == aid and body["dataset_id"] == imported.dataset_id
    assert body["path"] == imported.files[aid].name
    got = sorted((a["label"], a["bbox"]) for a in body["annotations"])
    assert got == sorted(imported.boxes[aid])
    assert all(a["source"] == "human" and a["asset_id"] == aid for a in body["annotations"])


@pytest.mark.parametrize(
    "url",
    [
        "/api/datasets/987654",
        "/api/datasets/987654/assets",
        "/api/assets/987654",
        "/api/assets/987654/image",
        "/api/assets/987654/thumbnail",
    ],
)
def test_unknown_ids_answer_404_in_the_envelope(client, url):
    assert_error(client.get(url), 404, "NotFoundError", contains="987654")


def test_unknown_split_answers_404_naming_the_known_ones(client, imported: Imported):
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets", params={"split": "test"})
    assert_error(r, 404, "NotFoundError", contains="splits: val")


def test_unknown_route_answers_404_in_the_envelope(client):
    assert_error(client.get("/api/nothing-here"), 404, "HTTPError", contains="/api")


@pytest.mark.parametrize("cursor", ["not a cursor!", "%%%", "YWJj", encode_cursor(10**30)])
def test_bad_cursor_answers_400(client, imported: Imported, cursor):
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets", params={"cursor": cursor})
    assert_error(r, 400, "LabelwiseError", contains="cursor")


@pytest.mark.parametrize("limit", [0, -1, 1001, "many"])
def test_limit_out_of_range_answers_422(client, imported: Imported, limit):
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets", params={"limit": limit})
    err = assert_error(r, 422, "RequestValidationError")
    assert err["problems"][0].startswith("query.limit: ")


def test_tag_and_split_together_are_refused(client, imported: Imported):
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets",
                   params={"tag": "night", "split": "val"})
    assert_error(r, 422, "ValidationError", contains="one of them")


@pytest.mark.parametrize("bad_id", ["abc", "0", str(2**64)])
def test_malformed_ids_answer_422(client, bad_id):
    err = assert_error(client.get(f"/api/assets/{bad_id}"), 422, "RequestValidationError")
    assert err["problems"][0].startswith("path.asset_id: ")


@pytest.mark.parametrize("query", ["tag=a%00b", "split=a%00b", "cursor=%00"])
def test_nul_in_the_url_answers_400(client, imported: Imported, query):
    # Found by a NUL probe on PostgreSQL, which stores no NUL in text: it answered 500.
    r = client.get(f"/api/datasets/{imported.dataset_id}/assets?{query}")
    assert_error(r, 400, "BadRequestError", contains="NUL")
    assert r.headers["x-content-type-options"] == "nosniff"
