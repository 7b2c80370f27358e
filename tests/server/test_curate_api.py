"""The Auto-Curate routes on a small embedded Fashion-MNIST dataset (both databases)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import labelwise
from labelwise.embeddings.pipeline import embed_dataset
from labelwise.samples import write_fashion_mnist_folders
from tests.embeddings.conftest import _shared_model_cache, model_cache  # noqa: F401
from tests.server.helpers import assert_error, login, make_client, make_user


@pytest.fixture(scope="module")
def fm_src(tmp_path_factory) -> Path:
    return write_fashion_mnist_folders(tmp_path_factory.mktemp("fm"), n=80, seed=2)


@pytest.fixture
def api(workspace: labelwise.Workspace, fm_src: Path):
    workspace.import_dataset("classfolders", fm_src, dataset="fm")
    embed_dataset(workspace, "fm", size=64)
    client = make_client(workspace)
    ds = client.get("/api/datasets").json()["items"][0]["id"]
    return client, f"/api/datasets/{ds}/curation", workspace


def test_scores_are_computed_listed_and_paged(api):
    client, base, _ = api
    run = client.post(f"{base}/scores", json={"verify": False})
    assert run.status_code == 200, run.text
    assert run.json()["items"] == 80 and run.json()["labeled"] == 80
    first = client.get(f"{base}/scores", params={"sort": "mislabel_score", "limit": 50}).json()
    second = client.get(f"{base}/scores", params={"sort": "mislabel_score", "limit": 50,
                                                  "cursor": first["next_cursor"]}).json()
    scores = [it["mislabel_score"] for it in first["items"] + second["items"]]
    assert len(scores) == 80 and scores == sorted(scores, reverse=True)
    assert second["next_cursor"] is None
    bad = client.get(f"{base}/scores", params={"sort": "colour"})
    assert bad.status_code == 422


def test_select_makes_a_split_and_a_taken_name_is_a_conflict(api):
    client, base, ws = api
    r = client.post(f"{base}/select", json={"budget": "25%", "name": "first", "seed": 1})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["mode"] == "labeled" and len(body["asset_ids"]) == 20
    assert {c["class"] for c in body["summary"]["classes"]} >= {"bag", "coat"}
    split = ws.list_assets("fm", split="first", limit=100)["items"]
    assert sorted(a["id"] for a in split) == body["asset_ids"]
    again = client.post(f"{base}/select", json={"budget": "25%", "name": "first"})
    assert_error(again, 409, "ConflictError", contains="replace")
    bad = client.post(f"{base}/select", json={"budget": "0", "name": "x"})
    assert_error(bad, 422, "ValidationError", contains="at least 1")
    extra = client.post(f"{base}/select", json={"budget": "5", "name": "x", "colour": 1})
    assert extra.status_code == 422


def test_validation_set_and_mislabels_as_json_and_csv_and_review_marks(api):
    client, base, ws = api
    client.post(f"{base}/select", json={"budget": "40", "name": "train", "mode": "labeled"})
    v = client.post(f"{base}/validation", json={"size": 20, "exclude": "train"})
    assert v.status_code == 201, v.text
    assert v.json()["split"] == "val" and v.json()["summary"]["excluded_split"] == "train"
    items = client.get(f"{base}/mislabels", params={"top": 5}).json()["items"]
    assert len(items) == 5 and items[0]["score"] >= items[-1]["score"]
    text = client.get(f"{base}/mislabels", params={"top": 5, "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [int(r["asset_id"]) for r in rows] == [it["asset_id"] for it in items]
    marked = client.post(f"{base}/mislabels/review", json={"top": 3, "min_score": 0})
    assert marked.json() == {"marked_images": 3, "tag": "needs-review"}
    tagged = ws.list_assets("fm", tag="needs-review", limit=10)["items"]
    assert len(tagged) == 3


def test_labelers_cannot_curate_and_a_dataset_without_embeddings_says_what_to_run(api, tmp_path):
    client, base, ws = api
    make_user(ws, "lab", "labeler")
    labeler = make_client(ws, user=None)
    login(labeler, "lab")
    assert labeler.get(f"{base}/scores").status_code == 403
    other = write_fashion_mnist_folders(tmp_path / "other", n=10, split="test", seed=9)
    ws.import_dataset("classfolders", other, dataset="bare")  # images never embedded
    bare = next(d for d in client.get("/api/datasets").json()["items"] if d["name"] == "bare")
    r = client.post(f"/api/datasets/{bare['id']}/curation/select",
                    json={"budget": "5", "name": "x"})
    assert_error(r, 404, "NotFoundError", contains="labelwise embed bare")
