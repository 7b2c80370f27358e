"""`labelwise curate ...` end to end on a small embedded Fashion-MNIST workspace."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import labelwise
from labelwise.cli.main import app
from labelwise.embeddings.pipeline import embed_dataset
from labelwise.samples import write_fashion_mnist_folders

runner = CliRunner()


def run(ws: Path, *args):
    return runner.invoke(app, [str(a) for a in args], env={"LABELWISE_WORKSPACE": str(ws)})


@pytest.fixture
def ws_path(tmp_path: Path) -> Path:
    src = write_fashion_mnist_folders(tmp_path / "src", n=60, seed=4)
    ws = labelwise.init(tmp_path / "ws")
    ws.import_dataset("classfolders", src, dataset="fm")
    embed_dataset(ws, "fm", size=64)
    ws.close()
    return tmp_path / "ws"


def test_curate_dataset_runs_select_and_prints_the_summary(ws_path):
    r = run(ws_path, "curate", "fm", "--budget", "25%", "--name", "pick", "--mode", "unlabeled")
    assert r.exit_code == 0, r.output
    assert "split pick" in r.output and "15 of 60 images" in r.output
    assert "clusters covered" in r.output
    again = run(ws_path, "curate", "fm", "--budget", "15", "--name", "pick", "--mode",
                "unlabeled", "--json")
    assert again.exit_code == 4 and "--replace" in again.output
    r = run(ws_path, "curate", "fm", "--budget", "15", "--name", "pick", "--mode", "unlabeled",
            "--replace", "--json")
    assert r.exit_code == 0 and len(json.loads(r.output)["asset_ids"]) == 15


def test_val_mislabels_export_and_mark(ws_path, tmp_path):
    assert run(ws_path, "curate", "fm", "-b", "20", "-n", "train").exit_code == 0
    r = run(ws_path, "curate", "val", "fm", "--size", "10", "--exclude", "train")
    assert r.exit_code == 0, r.output
    assert "split val" in r.output
    out = tmp_path / "suspects.csv"
    r = run(ws_path, "curate", "mislabels", "fm", "--top", "4", "--export", out, "--mark")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and {"asset_id", "label", "suggested", "score"} <= set(rows[0])
    assert "marked 4 images" in r.output
    r = run(ws_path, "assets", "fm", "--tag", "needs-review")
    assert r.exit_code == 0 and r.output.count(".png") == 4
    out_json = tmp_path / "suspects.json"
    assert run(ws_path, "curate", "mislabels", "fm", "--top", "2", "--export",
               out_json).exit_code == 0
    assert len(json.loads(out_json.read_text())) == 2


def test_scores_and_list(ws_path):
    r = run(ws_path, "curate", "scores", "fm", "--no-verify")
    assert r.exit_code == 0 and "scored 60 images" in r.output
    r = run(ws_path, "curate", "list", "fm", "--sort", "rarity", "--limit", "5", "--json")
    page = json.loads(r.output)
    assert len(page["items"]) == 5 and page["next_cursor"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [(["fm", "--budget", "0", "--name", "x"], 65, "at least 1"),
     (["fm", "--budget", "200%", "--name", "x"], 65, "at most 100%"),
     (["fm", "--budget", "5", "--name", "x", "--from-split", "nope"], 3, "nope"),
     (["nosuch", "--budget", "5", "--name", "x"], 3, "nosuch"),
     (["fm", "--budget", "5", "--name", "x", "--mode", "psychic"], 65, "unknown mode"),
     (["mislabels", "fm", "--export", "list.txt"], 65, ".csv or .json")],
)
def test_bad_input_exits_with_advice(ws_path, args, code, message):
    r = run(ws_path, "curate", *args)
    assert r.exit_code == code, r.output
    assert message in r.output
