"""`labelwise autolabel ...` and `labelwise review ...` end to end on a small embedded
Fashion-MNIST workspace (SQLite; the service tests cover PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

import labelwise
from labelwise.cli.main import app
from tests.autolabel.service_data import build, write_sources
from tests.embeddings.conftest import _shared_model_cache, model_cache  # noqa: F401

runner = CliRunner()


def run(ws: Path, *args, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input,
                         env={"LABELWISE_WORKSPACE": str(ws)})


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    return write_sources(tmp_path_factory.mktemp("cli"), labeled=15, pool=20)


@pytest.fixture
def ws_path(tmp_path: Path, sources) -> Path:
    with labelwise.init(tmp_path / "ws") as ws:
        build(ws, sources)
    return tmp_path / "ws"


def test_train_show_list_apply_review_next_export(ws_path, tmp_path):
    r = run(ws_path, "autolabel", "train", "fm", "--from", "seed", "--name", "clothes")
    assert r.exit_code == 0, r.output
    assert "trained clothes v1" in r.output and "45 images of fm" in r.output
    for part in ("accuracy", "per class", "confusion matrix", "ECE", "only 45 labeled"):
        assert part in r.output
    r = run(ws_path, "autolabel", "show", "clothes")
    assert r.exit_code == 0 and "versions of clothes" in r.output and "split seed" in r.output
    card = json.loads(run(ws_path, "autolabel", "show", "clothes", "--json").output)
    assert card["card"]["classes"] == ["bag", "sneaker", "trouser"]
    listed = json.loads(run(ws_path, "autolabel", "list", "--json").output)
    assert [m["name"] for m in listed] == ["clothes"]

    with labelwise.open_workspace(ws_path) as ws:  # a project made before the first model
        ws.add_user("boss", role="manager", password="a long enough passphrase")
        ws.create_project("p", "fm", by="boss")
    r = run(ws_path, "autolabel", "apply", "clothes", "fm")
    assert r.exit_code == 0, r.output
    assert "pre-labeled 60 images" in r.output and "Difficulty buckets" in r.output
    assert "expected error" in r.output
    assert "review order set on 60 project tasks" in r.output
    assert "pre-labels put into 60 project tasks nobody has started" in r.output

    q = json.loads(run(ws_path, "review", "queue", "fm", "--limit", "5", "--json").output)
    u = [it["uncertainty"] for it in q["items"]]
    assert len(u) == 5 and u == sorted(u, reverse=True) and q["next_cursor"]
    r = run(ws_path, "review", "queue", "fm", "--limit", "5", "--cursor", q["next_cursor"])
    assert r.exit_code == 0 and "run 1: clothes v1" in r.output

    r = run(ws_path, "autolabel", "next", "fm", "--budget", "6", "--name", "round-2",
            "--model", "clothes", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["asset_ids"]) <= 6

    worst = q["items"][0]["asset_id"]
    r = run(ws_path, "review", "reject", "fm", worst, 999999)
    assert r.exit_code == 0 and "rejected 1 pre-labels" in r.output and "999999" in r.output
    r = run(ws_path, "review", "accept", "fm", "--bucket", "medium", input="n\n")
    assert r.exit_code == 1 and "expected error rate" in r.output and "nothing accepted" in r.output
    r = run(ws_path, "review", "accept", "fm", "--bucket", "medium", "--yes")
    assert r.exit_code == 0, r.output
    assert "expected error rate" in r.output and "accepted" in r.output

    dest = tmp_path / "clothes.onnx"
    r = run(ws_path, "autolabel", "export", "clothes", dest)
    assert r.exit_code == 0 and dest.is_file()
    meta = {p.key: p.value for p in onnx.load(str(dest)).metadata_props}
    assert json.loads(meta["classes"]) == ["bag", "sneaker", "trouser"]


def test_bad_input_exits_with_the_error_code_and_advice(ws_path, tmp_path):
    r = run(ws_path, "autolabel", "show", "ghost")
    assert r.exit_code == 3 and "no auto-label model 'ghost'" in r.output
    r = run(ws_path, "autolabel", "apply", "ghost", "fm")
    assert r.exit_code == 3
    r = run(ws_path, "autolabel", "train", "fm", "--from", "nope", "--name", "x")
    assert r.exit_code == 3 and "no split 'nope'" in r.output
    r = run(ws_path, "autolabel", "train", "fm", "--name", "x", "--task", "boxes")
    assert r.exit_code == 65 and "no boxes labeled" in r.output
    r = run(ws_path, "review", "queue", "fm")
    assert r.exit_code == 3 and "labelwise autolabel apply" in r.output
    r = run(ws_path, "review", "queue", "fm", "--bucket", "tricky")
    assert r.exit_code == 65 and "unknown bucket" in r.output
    r = run(ws_path, "autolabel", "train", "fm", "--name", "a b")
    assert r.exit_code == 65 and "model name" in r.output
    r = run(ws_path, "autolabel", "export", "ghost", tmp_path / "g.onnx")
    assert r.exit_code == 3
    assert "Traceback" not in r.output


def test_train_on_a_dataset_without_embeddings_names_labelwise_embed(tmp_path, sources):
    with labelwise.init(tmp_path / "ws") as ws:
        ws.import_dataset("classfolders", sources["classes"], dataset="raw")
    r = run(tmp_path / "ws", "autolabel", "train", "raw", "--name", "raw")
    assert r.exit_code == 3 and "labelwise embed raw" in r.output
