"""``labelwise project``: create, list, show, add-member, assign, export, with clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from labelwise.cli.main import app
from tests.helpers import make_image, write_json

runner = CliRunner()


def run(*args, ws):
    return runner.invoke(app, [str(a) for a in args], env={"LABELWISE_WORKSPACE": str(ws),
                                                           "LABELWISE_PASSWORD_MEMORY_KIB": "1024",
                                                           "LABELWISE_PASSWORD_TIME_COST": "1"})


def _workspace(tmp_path):
    for i in range(4):
        make_image(tmp_path / "src" / "images" / f"{i}.png", seed=i)
    write_json(tmp_path / "src" / "annotations.json", {
        "images": [{"id": i + 1, "file_name": f"{i}.png", "width": 64, "height": 48}
                   for i in range(4)],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1,
                         "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0} for i in range(4)],
    })
    ws = tmp_path / "ws"
    assert run("init", ws, ws=ws).exit_code == 0
    r = run("import", "coco", tmp_path / "src" / "annotations.json", "--dataset", "cars", ws=ws)
    assert r.exit_code == 0, r.output
    return ws


def test_project_commands_end_to_end(tmp_path):
    ws = _workspace(tmp_path)
    r = run("project", "create", "p1", "cars", ws=ws)
    assert r.exit_code == 3 and "no owner yet" in r.output  # nobody to record it under
    for name, role in (("olga", "owner"), ("lena", "labeler")):
        r = run("user", "add", name, "--role", role, "--password", "a-Long-pass-123", ws=ws)
        assert r.exit_code == 0, r.output
    r = run("project", "create", "p1", "cars", ws=ws)
    assert r.exit_code == 0 and "4 tasks" in r.output, r.output
    assert run("project", "add-member", "p1", "lena", "--role", "labeler", ws=ws).exit_code == 0
    r = run("project", "assign", "p1", "--to", "lena", "--spread", "3", ws=ws)
    assert r.exit_code == 0 and "lena: 3 task(s)" in r.output
    r = run("project", "list", ws=ws)
    assert "p1" in r.output
    r = run("project", "show", "p1", ws=ws)
    assert "lena" in r.output and "car" in r.output and "todo: 4" in r.output
    out = tmp_path / "out"
    r = run("project", "export", "p1", "coco", out, ws=ws)
    assert r.exit_code == 0 and "4 images, 4 labels" in r.output, r.output
    assert len(json.loads((out / "annotations.json").read_text())["annotations"]) == 4
    assert len(list((out / "images").iterdir())) == 4
    r = run("project", "export", "p1", "coco", tmp_path / "none", "--approved-only", ws=ws)
    assert r.exit_code == 0 and "0 images" in r.output


def test_project_cli_errors_are_advice(tmp_path):
    ws = _workspace(tmp_path)
    run("user", "add", "olga", "--role", "owner", "--password", "a-Long-pass-123", ws=ws)
    r = run("project", "show", "nope", ws=ws)
    assert r.exit_code == 3 and "no project 'nope'" in r.output and "Traceback" not in r.output
    run("project", "create", "p1", "cars", ws=ws)
    r = run("project", "assign", "p1", "--to", "olga", ws=ws)
    assert r.exit_code == 65 and "either --assets" in r.output
    r = run("project", "assign", "p1", "--to", "olga", "--assets", "1,x", ws=ws)
    assert r.exit_code == 65 and "must be ids" in r.output
    r = run("project", "add-member", "p1", "ghost", "--role", "labeler", ws=ws)
    assert r.exit_code == 3 and "no user 'ghost'" in r.output
    r = run("project", "create", "p1", "cars", ws=ws)
    assert r.exit_code == 4 and "already exists" in r.output
