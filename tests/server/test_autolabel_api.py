"""The Auto-Label routes on a small embedded Fashion-MNIST dataset (both databases)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import labelwise
from labelwise.embeddings.store import load_embeddings
from tests.autolabel.service_data import SIZE, build, write_sources
from tests.embeddings.conftest import _shared_model_cache, model_cache  # noqa: F401
from tests.server.helpers import assert_error, make_client, make_user


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    return write_sources(tmp_path_factory.mktemp("api"), labeled=15, pool=20)


@pytest.fixture
def api(workspace: labelwise.Workspace, sources):
    build(workspace, sources)
    client = make_client(workspace)
    ds = client.get("/api/datasets").json()["items"][0]["id"]
    return client, f"/api/datasets/{ds}/autolabel", workspace


def _client(ws, username: str, role: str):
    make_user(ws, username, role)
    return make_client(ws, user=username)


def test_train_show_apply_review_accept_next_and_download(api):
    client, base, ws = api
    r = client.post(f"{base}/train", json={"name": "clothes", "from_split": "seed"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["version"] == 1 and made["task"] == "category"
    assert made["trained_on"]["assets"] == 45 and made["warnings"]
    models = client.get("/api/autolabel/models").json()["items"]
    assert [(m["name"], m["latest_version"]) for m in models] == [("clothes", 1)]
    assert models[0]["created_at"].endswith("Z") or models[0]["created_at"].endswith("+00:00")
    detail = client.get("/api/autolabel/models/clothes").json()
    assert detail["card"]["accuracy"] >= 0.9 and detail["card"]["per_class"]
    url = detail["all_versions"][0]["onnx_url"]
    assert url == "/api/autolabel/models/clothes/versions/1/onnx"
    onnx_bytes = client.get(url)
    assert onnx_bytes.status_code == 200
    assert onnx_bytes.headers["content-disposition"].endswith('clothes-v1.onnx"')
    _, X = load_embeddings(ws, "fm", size=SIZE)
    probs = ort.InferenceSession(onnx_bytes.content).run(None, {"embedding": X[:4]})[0]
    assert probs.shape == (4, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    run = client.post(f"{base}/apply", json={"model": "clothes"})
    assert run.status_code == 201, run.text
    assert run.json()["images"] == 60 and set(run.json()["buckets"]) == {"easy", "medium",
                                                                          "hard"}
    first = client.get(f"{base}/review-queue", params={"limit": 40}).json()
    second = client.get(f"{base}/review-queue",
                        params={"limit": 40, "cursor": first["next_cursor"]}).json()
    items = first["items"] + second["items"]
    assert len({it["asset_id"] for it in items}) == 60 and second["next_cursor"] is None
    u = [it["uncertainty"] for it in items]
    assert u == sorted(u, reverse=True)
    assert items[0]["labels"][0]["class"] in ("bag", "sneaker", "trouser")

    reviewer = _client(ws, "rev", "reviewer")
    rejected = reviewer.post(f"{base}/review/reject", json={"asset_ids": [items[0]["asset_id"]]})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["rejected"] == 1 and rejected.json()["skipped"] == []
    assert client.post(f"{base}/review/reject", json={"asset_ids": []}).status_code == 422
    preview = reviewer.post(f"{base}/review/accept", json={"bucket": "medium", "dry_run": True})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    medium = run.json()["buckets"]["medium"]["count"]
    assert body["accepted"] == 0 and body["count"] == medium - (items[0]["bucket"] == "medium")
    assert 0 <= body["expected_error_rate"] <= 1

    picked = client.post(f"{base}/next", json={"budget": "5", "name": "round-2",
                                               "model": "clothes"})
    assert picked.status_code == 201, picked.text
    assert 0 < len(picked.json()["asset_ids"]) <= 5
    again = client.post(f"{base}/next", json={"budget": "5", "name": "round-2"})
    assert_error(again, 409, "ConflictError", contains="--replace")

    done = reviewer.post(f"{base}/review/accept", json={"bucket": "medium"}).json()
    assert done["accepted"] == body["count"]
    assert client.get(f"{base}/review-queue", params={"bucket": "medium"}).json()["items"] == []


def test_roles_are_checked(api):
    client, base, ws = api
    assert client.post(f"{base}/train", json={"name": "clothes", "from_split": "seed"}
                       ).status_code == 201
    client.post(f"{base}/apply", json={"model": "clothes"})
    reviewer = _client(ws, "rev", "reviewer")
    labeler = _client(ws, "lab", "labeler")
    assert reviewer.get(f"{base}/review-queue").status_code == 200
    assert reviewer.get("/api/autolabel/models/clothes").status_code == 200
    for call in (lambda c: c.post(f"{base}/train", json={"name": "x"}),
                 lambda c: c.post(f"{base}/apply", json={"model": "clothes"}),
                 lambda c: c.post(f"{base}/next", json={"budget": "1", "name": "n"}),
                 lambda c: c.get("/api/autolabel/models/clothes/versions/1/onnx")):
        assert_error(call(reviewer), 403, "PermissionDeniedError", contains="manager")
    assert_error(labeler.get(f"{base}/review-queue"), 403, "PermissionDeniedError")
    assert_error(labeler.post(f"{base}/review/accept", json={}), 403, "PermissionDeniedError")
    assert_error(labeler.get("/api/autolabel/models"), 403, "PermissionDeniedError")
    anon = make_client(ws, user=None)
    assert anon.get("/api/autolabel/models").status_code == 401


def test_bad_inputs_answer_with_advice(api, tmp_path):
    client, base, ws = api
    assert_error(client.get("/api/autolabel/models/ghost"), 404, "NotFoundError",
                 contains="no auto-label model 'ghost'")
    assert_error(client.post(f"{base}/apply", json={"model": "ghost"}), 404, "NotFoundError")
    assert_error(client.get("/api/autolabel/models/ghost/versions/1/onnx"), 404,
                 "NotFoundError")
    assert_error(client.get(f"{base}/review-queue"), 404, "NotFoundError",
                 contains="labelwise autolabel apply")
    r = client.post(f"{base}/train", json={"name": "x", "from_split": "seed", "colour": 1})
    assert r.status_code == 422
    assert client.post(f"{base}/train", json={"name": "../x"}).status_code == 422
    assert client.get(f"{base}/review-queue", params={"bucket": "tricky"}).status_code == 422
    assert_error(client.post(f"{base}/train", json={"name": "x", "task": "boxes"}), 422,
                 "ValidationError", contains="no boxes labeled")
    client.post(f"{base}/train", json={"name": "clothes", "from_split": "seed"})
    assert_error(client.post(f"{base}/train", json={"name": "clothes", "task": "multilabel"}),
                 409, "ConflictError", contains="another --name")
    client.post(f"{base}/apply", json={"model": "clothes"})
    assert_error(client.get(f"{base}/review-queue", params={"cursor": "garbage"}), 400,
                 "LabelwiseError", contains="invalid cursor")
    assert_error(client.get("/api/autolabel/models/clothes/versions/9/onnx"), 404,
                 "NotFoundError", contains="no version 9")
    ws.import_dataset("classfolders", _noise_classes(tmp_path / "raw"), dataset="raw")
    raw = next(d["id"] for d in client.get("/api/datasets").json()["items"]
               if d["name"] == "raw")
    assert_error(client.post(f"/api/datasets/{raw}/autolabel/train", json={"name": "raw"}),
                 404, "NotFoundError", contains="labelwise embed raw")


def _noise_classes(root: Path) -> Path:
    """Two classes of random images no other test embeds."""
    from PIL import Image

    rng = np.random.default_rng(7)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), mode="L").save(
                root / cls / f"{i}.png")
    return root
