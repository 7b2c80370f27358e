"""The CLI end to end on a small COCO dataset: commands, output, exit codes, no tracebacks."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from labelwise.cli.main import app
from tests.helpers import make_image, write_json

runner = CliRunner()


@pytest.fixture
def coco_dir(tmp_path):
    for i in range(4):
        make_image(tmp_path / "src" / "images" / f"{i}.png", seed=i)
    write_json(tmp_path / "src" / "annotations.json", {
        "images": [{"id": i + 1, "file_name": f"{i}.png", "width": 64, "height": 48,
                    "tags": ["night"] if i % 2 else []} for i in range(4)],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2,
                         "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0} for i in range(4)],
    })
    return tmp_path


def run(*args, ws=None):
    env = {"LABELWISE_WORKSPACE": str(ws)} if ws else {}
    return runner.invoke(app, [str(a) for a in args], env=env)


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for cmd in ("init", "import", "export", "show", "assets", "split", "db", "serve", "demo"):
        assert cmd in result.output


def test_init_import_show_export(coco_dir):
    ws = coco_dir / "ws"
    assert run("init", ws).exit_code == 0
    r = run("import", "coco", coco_dir / "src" / "annotations.json", "--dataset", "cars", ws=ws)
    assert r.exit_code == 0, r.output
    assert "4 new images" in r.output and "4 new annotations" in r.output
    r = run("import", "coco", coco_dir / "src" / "annotations.json", "-d", "cars", "--json", ws=ws)
    report = json.loads(r.output)
    assert report["assets_added"] == 0 and report["annotations_existing"] == 4
    r = run("show", "cars", "--json", ws=ws)
    summary = json.loads(r.output)
    assert summary["num_assets"] == 4
    assert {c["name"]: c["num_annotations"] for c in summary["classes"]} == {"car": 2, "bus": 2}
    r = run("assets", "cars", "--tag", "night", "--limit", "1", ws=ws)
    assert r.exit_code == 0 and "1.png" in r.output and "next page: --cursor" in r.output
    r = run("split", "create", "cars", "val", "--random", "0.5", ws=ws)
    assert r.exit_code == 0 and "2 images" in r.output
    out = coco_dir / "out"
    r = run("export", "cars", "coco", out, "--split", "val", ws=ws)
    assert r.exit_code == 0, r.output
    exported = json.loads((out / "annotations.json").read_text())
    assert len(exported["images"]) == 2
    assert len(list((out / "images").iterdir())) == 2
    r = run("datasets", ws=ws)
    assert "cars" in r.output


def test_errors_are_advice_not_tracebacks(coco_dir):
    ws = coco_dir / "ws"
    run("init", ws)
    r = run("show", "nope", ws=ws)
    assert r.exit_code == 3
    assert "no dataset 'nope'" in r.output and "Traceback" not in r.output
    r = run("import", "coco", coco_dir / "missing.json", "-d", "x", ws=ws)
    assert r.exit_code == 65 and "file not found" in r.output
    r = run("import", "nosuchformat", coco_dir, "-d", "x", ws=ws)
    assert r.exit_code == 1 and "choose one of" in r.output
    r = run("datasets", ws=coco_dir / "no-workspace")
    assert r.exit_code == 2 and "labelwise init" in r.output


def test_bad_import_lists_problems_and_imports_nothing(coco_dir):
    ws = coco_dir / "ws"
    run("init", ws)
    data = json.loads((coco_dir / "src" / "annotations.json").read_text())
    data["annotations"][0]["category_id"] = 9
    write_json(coco_dir / "src" / "bad.json", data)
    r = run("import", "coco", coco_dir / "src" / "bad.json", "--images",
            coco_dir / "src" / "images", "-d", "cars", ws=ws)
    assert r.exit_code == 65
    assert "annotations[0] (id 1): category_id 9 is not in 'categories'" in r.output
    assert "nothing was imported" in r.output
    data["annotations"][0]["category_id"] = 1
    data["annotations"][1]["bbox"] = [60, 40, 50, 50]
    data["annotations"][2]["bbox"] = [1, 1, -5, 10]
    write_json(coco_dir / "src" / "bad.json", data)
    r = run("import", "coco", coco_dir / "src" / "bad.json", "--images",
            coco_dir / "src" / "images", "-d", "cars", ws=ws)
    assert r.exit_code == 65
    assert "2 problem(s)" in r.output and "outside the 64x48 image" in r.output
    assert "cars" not in run("datasets", ws=ws).output


def test_db_commands(coco_dir):
    ws = coco_dir / "ws"
    run("init", ws)
    r = run("db", "current", ws=ws)
    from labelwise.db.migrate import head_revision

    assert r.exit_code == 0 and f"current: {head_revision()}" in r.output
    assert run("db", "upgrade", ws=ws).exit_code == 0


def test_formats_lists_every_format():
    r = run("formats")
    for name in ("folder", "classfolders", "coco", "yolo", "voc", "csv"):
        assert name in r.output


def test_demo_builds_a_workspace_without_serving(tmp_path):
    r = run("demo", tmp_path / "demo", "--images", "50", "--no-serve")
    assert r.exit_code == 0, r.output
    assert "imported: 50 new images, 50 labels" in r.output
    assert "split val: 10 images" in r.output
    # Running it again finds everything in place and adds nothing.
    r = run("demo", tmp_path / "demo", "--images", "50", "--no-serve")
    assert r.exit_code == 0 and "0 new images" in r.output
