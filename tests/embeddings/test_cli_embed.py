"""``labelwise embed`` and ``labelwise models`` end to end, on both databases."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from labelwise.cli.main import app
from labelwise.storage import image_key
from tests.embeddings.conftest import tiny_onnx

runner = CliRunner()


def run(ws, *args):
    result = runner.invoke(app, [str(a) for a in args], env={"LABELWISE_WORKSPACE": str(ws.path)})
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def fm(workspace, fmnist_dir):
    workspace.import_dataset("classfolders", fmnist_dir, dataset="fm")
    return workspace


def test_embed_reports_new_and_cached_images(fm):
    r = run(fm, "embed", "fm", "--size", 32, "--batch-size", 8)
    assert r.exit_code == 0, r.output
    assert "embedded 24 new images of fm with efficientnet-lite0 at 32 px (0 already cached)" in \
        " ".join(r.output.split())
    r = run(fm, "embed", "fm", "--size", 32, "--json")
    report = json.loads(r.output)
    assert (report["embedded"], report["cached"], report["failed"]) == (0, 24, [])


def test_embed_lists_unreadable_images(fm):
    page = fm.list_assets("fm", limit=1)["items"][0]
    fm.store.put_bytes(image_key(page["content_hash"], page["format"]), b"garbage")
    r = run(fm, "embed", "fm", "--size", 32)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "embedded 23 new images" in text and "not embedded: 1 images" in text
    assert f"asset {page['id']} {page['path']}: not an image" in text


def test_embed_objects(workspace, tmp_path):
    from tests.embeddings.conftest import write_cat_coco

    workspace.import_dataset("coco", write_cat_coco(tmp_path / "coco"), dataset="cats")
    r = run(workspace, "embed", "cats", "--objects", "--size", 32, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["objects"] and report["embedded"] == 3
    assert [f["annotation_id"] is not None for f in report["failed"]] == [True]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["embed", "nope"], 3, "no dataset 'nope'"),
        (["embed", "fm", "--engine", "spark"], 65, "choose one of: local, ray"),
        (["embed", "fm", "--model", "clip"], 3, "labelwise models add"),
        (["embed", "fm", "--size", "4"], 65, "size 4 is not usable"),
    ],
)
def test_embed_errors_are_advice(fm, args, code, message):
    r = run(fm, *args)
    assert r.exit_code == code and message in " ".join(r.output.split())


def test_models_add_and_list(fm, tmp_path):
    path = tiny_onnx(tmp_path / "tiny.onnx")
    r = run(fm, "models", "add", "tiny", path, "--size", 40, "--mean", "0.485,0.456,0.406",
            "--std", "0.229,0.224,0.225", "--scale", "1/255", "--output", "feat")
    assert r.exit_code == 0, r.output
    assert "model tiny: 3-d embeddings" in r.output
    r = run(fm, "models", "list", "--json")
    models = {m["name"]: m for m in json.loads(r.output)}
    assert set(models) == {"efficientnet-lite0", "tiny"}
    assert models["tiny"]["scale"] == pytest.approx(1 / 255) and models["tiny"]["dim"] == 3
    assert run(fm, "models", "list").exit_code == 0
    r = run(fm, "embed", "fm", "--model", "tiny", "--json")
    assert json.loads(r.output)["embedded"] == 24


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--mean", "0.5,0.5", "--std", "0.2"], "mean has 2 values"),
        (["--mean", "a,b,c", "--std", "1"], "--mean 'a,b,c' is not a list of numbers"),
        (["--mean", "0.5", "--std", "0.2"], "pass scale=1/255"),
        (["--mean", "127", "--std", "128", "--output", "nope"], "no output 'nope'"),
    ],
)
def test_models_add_refuses_bad_specs(fm, tmp_path, options, message):
    path = tiny_onnx(tmp_path / "tiny.onnx")
    args = ["models", "add", "tiny", path, "--size", 32, *options]
    if "--output" not in options:
        args += ["--output", "feat"]
    r = run(fm, *args)
    assert r.exit_code == 65 and message in " ".join(r.output.split()), r.output
