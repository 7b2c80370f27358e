"""The embeddings API on both backends: similar assets, uploaded images, duplicates, the map."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import labelwise
from labelwise.embeddings.duplicates import DEFAULT_THRESHOLD
from labelwise.embeddings.verify import VERIFIED_THRESHOLD
from labelwise.server.routes import embeddings as routes
from tests.embeddings.conftest import _shared_model_cache, model_cache  # noqa: F401 - fixtures
from tests.embeddings.test_search import DATASET, import_and_embed, write_planted
from tests.helpers import make_image
from tests.server.helpers import assert_error, make_client


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted-api")
    return folder, write_planted(folder)


def _setup(ws: labelwise.Workspace, planted_dir):
    folder, planted = planted_dir
    ids = import_and_embed(ws, folder)
    dataset_id = ws.dataset_summary(DATASET)["id"]
    return make_client(ws), ids, planted, dataset_id


@pytest.fixture
def api(workspace, planted_dir):
    return _setup(workspace, planted_dir)


@pytest.fixture
def sqlite_api(sqlite_workspace, planted_dir):
    return _setup(sqlite_workspace, planted_dir)


def stored_bytes(client: TestClient, asset_id: int) -> bytes:
    return client.get(f"/api/assets/{asset_id}/image").content


def test_similarity_duplicates_and_map(api):
    client, ids, planted, dataset_id = api
    # Similar to an asset: each planted copy ranks its original first.
    for copy, original in planted.items():
        r = client.get(f"/api/assets/{ids[copy]}/similar", params={"k": 4})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query_asset_id"] == ids[copy] and body["model"] == "efficientnet-lite0"
        assert body["size"] == 224 and len(body["items"]) == 4
        first = body["items"][0]
        assert first["asset"]["path"] == original and first["asset"]["id"] == ids[original]
        assert first["asset"]["thumbnail_url"].startswith(f"/api/assets/{ids[original]}/")
        distances = [m["distance"] for m in body["items"]]
        assert distances == sorted(distances) and distances[0] <= DEFAULT_THRESHOLD

    # Similar to an uploaded image: the JPEG copy finds itself, then its original.
    copy, original = next((c, o) for c, o in planted.items() if c.endswith(".jpg"))
    upload = {"image": ("query.jpg", stored_bytes(client, ids[copy]), "image/jpeg")}
    r = client.post(f"/api/datasets/{dataset_id}/similar", params={"k": 2}, files=upload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query_asset_id"] is None
    assert [m["asset"]["path"] for m in body["items"]] == [copy, original]

    # Near-duplicate groups, one page at a time.
    r = client.get(f"/api/datasets/{dataset_id}/duplicates")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["num_groups"], body["num_duplicates"], body["num_embedded"]) == (3, 3, 63)
    assert body["threshold"] == VERIFIED_THRESHOLD and body["next_cursor"] is None
    found = {frozenset(m["asset"]["path"] for m in g["members"]) for g in body["items"]}
    assert found == {frozenset(pair) for pair in planted.items()}
    for g in body["items"]:
        assert g["representative"] in [m["asset"]["id"] for m in g["members"]]
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/datasets/{dataset_id}/duplicates", params=params).json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 1]
    assert [g for p in pages for g in p] == body["items"]

    # The map: made on the first request, read back after.
    r = client.get(f"/api/datasets/{dataset_id}/map")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "umap" and body["dataset_id"] == dataset_id
    assert {p[0] for p in body["points"]} == set(ids.values())
    assert all(0 <= x <= 1 and 0 <= y <= 1 for _, x, y in body["points"])
    assert client.get(f"/api/datasets/{dataset_id}/map").json() == body


def test_errors_use_the_envelope(sqlite_api, monkeypatch, tmp_path):
    client, ids, planted, dataset_id = sqlite_api
    some_asset = next(iter(ids.values()))
    r = client.post(f"/api/datasets/{dataset_id}/similar",
                    files={"image": ("x.png", b"not an image at all", "image/png")})
    assert_error(r, 422, "ImageError", contains="uploaded image: not an image")
    monkeypatch.setattr(routes, "MAX_UPLOAD_BYTES", 1000)
    r = client.post(f"/api/datasets/{dataset_id}/similar",
                    files={"image": ("big.png", stored_bytes(client, some_asset) * 10,
                                     "image/png")})
    assert_error(r, 413, "HTTPError", contains="larger than")
    r = client.post(f"/api/datasets/{dataset_id}/similar")
    assert_error(r, 422, "RequestValidationError", contains="image")
    r = client.get(f"/api/assets/{some_asset}/similar", params={"k": 0})
    assert_error(r, 422, "RequestValidationError", contains="k")
    r = client.get(f"/api/datasets/{dataset_id}/duplicates", params={"threshold": 3})
    assert_error(r, 422, "RequestValidationError", contains="threshold")
    r = client.get(f"/api/datasets/{dataset_id}/duplicates", params={"cursor": "!!"})
    assert_error(r, 400, "LabelwiseError", contains="invalid cursor")
    r = client.get(f"/api/assets/{some_asset}/similar", params={"size": 112})
    assert_error(r, 404, "NotFoundError", contains="labelwise embed fm")
    r = client.get("/api/assets/999999/similar")
    assert_error(r, 404, "NotFoundError", contains="no asset with id 999999")
    r = client.get(f"/api/datasets/{dataset_id}/map", params={"model": "nope"})
    assert_error(r, 404, "NotFoundError", contains="no embedding model 'nope'")

    # A dataset nobody embedded: every route says how to embed it.
    ws = client.app.state.workspace
    make_image(tmp_path / "raw" / "a.png", seed=3)
    ws.import_dataset("folder", tmp_path / "raw", dataset="raw")
    raw_id = ws.dataset_summary("raw")["id"]
    raw_asset = ws.list_assets("raw")["items"][0]["id"]
    for response in (
        client.get(f"/api/datasets/{raw_id}/duplicates"),
        client.get(f"/api/datasets/{raw_id}/map"),
        client.get(f"/api/assets/{raw_asset}/similar"),
    ):
        assert_error(response, 404, "NotFoundError", contains="labelwise embed raw")
