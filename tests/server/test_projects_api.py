"""/api/projects: create, list, read, members, schema edits, assignment; visibility rules."""

from __future__ import annotations

import pytest

from tests.server.helpers import NUM_IMAGES, assert_error
from tests.server.workflow_helpers import make_project


@pytest.fixture
def world(client_for, imported):
    return make_project(client_for, imported.dataset_id)


def test_create_and_read_a_project(world, imported):
    p = world.project
    assert p["name"] == "p1" and p["role"] == "manager" and p["dataset_id"] == imported.dataset_id
    assert {c["name"] for c in p["classes"]} == {"cat", "dog"}
    assert p["tasks"]["todo"] == NUM_IMAGES
    boss = world.clients["boss"]
    assert boss.get(f"/api/projects/{world.pid}").json()["tasks"]["todo"] == NUM_IMAGES
    members = boss.get(f"/api/projects/{world.pid}/members").json()["items"]
    assert {(m["username"], m["role"]) for m in members} == {
        ("boss", "manager"), ("rita", "reviewer"), ("lara", "labeler"), ("leo", "labeler")}


def test_create_refuses_bad_input(world, imported):
    boss = world.clients["boss"]
    assert_error(boss.post("/api/projects", json={"name": "p1", "dataset": imported.dataset_id}),
                 409, "ConflictError", contains="already exists")
    assert_error(boss.post("/api/projects", json={"name": "p2", "dataset": "nope"}), 404,
                 "NotFoundError", contains="no dataset 'nope'")
    assert_error(boss.post("/api/projects", json={"name": "p2", "dataset": imported.dataset_id,
                                                  "colour": "red"}),
                 422, "RequestValidationError")
    lara = world.clients["lara"]
    assert_error(lara.post("/api/projects", json={"name": "p3", "dataset": imported.dataset_id}),
                 403, "PermissionDeniedError")


def test_non_members_cannot_see_a_project(world):
    otto = world.clients["otto"]
    assert otto.get("/api/projects").json()["items"] == []
    hidden = assert_error(otto.get(f"/api/projects/{world.pid}"), 404, "NotFoundError")
    missing = assert_error(otto.get("/api/projects/999999"), 404, "NotFoundError")
    assert hidden["message"] == missing["message"].replace("999999", str(world.pid))
    assert_error(otto.post(f"/api/projects/{world.pid}/tasks/next"), 404, "NotFoundError")
    lara = world.clients["lara"]
    assert [p["role"] for p in lara.get("/api/projects").json()["items"]] == ["labeler"]
    # A labeler's project view counts only their own tasks.
    assert sum(lara.get(f"/api/projects/{world.pid}").json()["tasks"].values()) == 0


def test_members_below_manager_get_403_for_manager_actions(world):
    lara = world.clients["lara"]
    r = lara.put(f"/api/projects/{world.pid}/members", json={"user": "otto", "role": "labeler"})
    assert_error(r, 403, "PermissionDeniedError", contains="needs the manager role")
    r = lara.post(f"/api/projects/{world.pid}/assign", json={})  # refused before the body
    assert_error(r, 403, "PermissionDeniedError")


def test_project_list_pages(client_for, imported):
    boss = client_for("manager", "boss")
    for i in range(3):
        assert boss.post("/api/projects", json={"name": f"p{i}", "dataset": imported.dataset_id,
                                                "import_labels": False}).status_code == 201
    first = boss.get("/api/projects?limit=2").json()
    second = boss.get(f"/api/projects?limit=2&cursor={first['next_cursor']}").json()
    assert [p["name"] for p in first["items"] + second["items"]] == ["p0", "p1", "p2"]
    assert second["next_cursor"] is None
    assert_error(boss.get("/api/projects?cursor=!!"), 400, "LabelwiseError",
                 contains="invalid cursor")


def test_schema_edits_over_the_api(world):
    boss = world.clients["boss"]
    base = f"/api/projects/{world.pid}/classes"
    bird = boss.post(base, json={"name": "bird", "kind": "object", "tool": "bbox"})
    assert bird.status_code == 201, bird.text
    bird_id = bird.json()["id"]
    renamed = boss.patch(f"{base}/{bird_id}", json={"name": "sparrow"}).json()
    assert (renamed["id"], renamed["name"]) == (bird_id, "sparrow")
    assert_error(boss.post(base, json={"name": "cat"}), 409, "ConflictError")
    assert_error(boss.post(base, json={"name": "pose", "tool": "keypoints", "skeleton": "nope"}),
                 422, "ValidationError")
    cat, dog = world.class_id("cat"), world.class_id("dog")
    assert_error(boss.delete(f"{base}/{cat}"), 409, "ConflictError", contains="move_to")
    moved = boss.delete(f"{base}/{cat}?move_to={dog}")
    assert moved.status_code == 200 and moved.json()["labels_affected"] > 0
    assert boss.delete(f"{base}/{bird_id}").json()["labels_affected"] == 0
    names = {c["name"] for c in boss.get(f"/api/projects/{world.pid}").json()["classes"]}
    assert names == {"dog"}


def test_assign_explicitly_and_by_spread(world, imported):
    boss = world.clients["boss"]
    assets = sorted(imported.files)
    url = f"/api/projects/{world.pid}/assign"
    r = boss.post(url, json={"users": ["lara"], "asset_ids": assets[:2]})
    assert r.status_code == 200 and r.json() == {"assigned": {"lara": 2}}
    r = boss.post(url, json={"users": ["lara", "leo"], "spread": 2})
    assert r.json() == {"assigned": {"lara": 2, "leo": 2}}
    assert_error(boss.post(url, json={"users": ["lara"]}), 422, "ValidationError",
                 contains="either asset_ids")
    assert_error(boss.post(url, json={"users": ["lara", "leo"], "asset_ids": assets[:1]}),
                 422, "ValidationError", contains="exactly one user")
    assert_error(boss.post(url, json={"users": ["otto"], "asset_ids": assets[:1]}), 422,
                 "ValidationError", contains="not a member")
    assert_error(boss.post(url, json={"users": ["ghost"], "asset_ids": assets[:1]}), 404,
                 "NotFoundError", contains="no user 'ghost'")
    lara = world.clients["lara"]
    mine = lara.get(f"/api/projects/{world.pid}/tasks").json()["items"]
    assert len(mine) == 4 and {t["assignee_id"] for t in mine} == {world.user_ids["lara"]}
    # Labelers see the assets of their tasks, and no others.
    assert lara.get(f"/api/assets/{mine[0]['asset_id']}").status_code == 200
    others = set(assets) - {t["asset_id"] for t in mine}
    assert_error(lara.get(f"/api/assets/{min(others)}"), 404, "NotFoundError")


def test_removing_a_member(world):
    boss = world.clients["boss"]
    leo = world.user_ids["leo"]
    assert boss.delete(f"/api/projects/{world.pid}/members/{leo}").status_code == 204
    assert_error(boss.delete(f"/api/projects/{world.pid}/members/{leo}"), 404, "NotFoundError")
    assert_error(world.clients["leo"].get(f"/api/projects/{world.pid}"), 404, "NotFoundError")


def test_exports_over_the_api(world):
    import io
    import json
    import zipfile

    boss = world.clients["boss"]
    url = f"/api/projects/{world.pid}/exports"
    made = boss.post(url, json={"format": "coco", "approved_only": False})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["num_assets"] == 7 and body["approved_only"] is False
    assert [e["id"] for e in boss.get(url).json()["items"]] == [body["id"]]
    zipped = boss.get(body["download_url"])
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as zf:
        assert len(json.loads(zf.read("manifest.json"))) == 7
    assert_error(boss.get(f"{url}/999/download"), 404, "NotFoundError")
    assert_error(boss.post(url, json={"format": "folder"}), 400, "LabelwiseError",
                 contains="choose one of")
    assert_error(boss.post(url, json={"format": "coco", "options": {"filename": "../x.json"}}),
                 422, "UnsafePathError", contains="plain file or folder name")
    assert_error(boss.post(url, json={"format": "voc", "options": {"task": "detect"}}), 422,
                 "ValidationError", contains="has no option 'task'")
    assert_error(world.clients["rita"].post(url, json={"format": "coco"}), 403,
                 "PermissionDeniedError")


#: Beyond any 64-bit id. Found by schemathesis: such numbers (as ints or digit strings)
#: overflowed the database driver and answered 500.
TOO_BIG = 2**70


def test_ids_beyond_the_id_range_answer_422_or_404(world):
    boss = world.clients["boss"]
    members = f"/api/projects/{world.pid}/members"
    assert_error(boss.put(members, json={"user": TOO_BIG, "role": "labeler"}), 422,
                 "RequestValidationError", contains="user")
    assert_error(boss.put(members, json={"user": str(TOO_BIG), "role": "labeler"}), 404,
                 "NotFoundError", contains="no user")
    assign = f"/api/projects/{world.pid}/assign"
    assert_error(boss.post(assign, json={"users": ["lara"], "asset_ids": [TOO_BIG]}), 422,
                 "RequestValidationError", contains="asset_ids")
    assert_error(boss.post(assign, json={"users": [TOO_BIG], "spread": 1}), 422,
                 "RequestValidationError", contains="users")
    assert_error(boss.post(assign, json={"users": [str(TOO_BIG)], "spread": 1}), 404,
                 "NotFoundError", contains="no user")
    assert_error(boss.post("/api/projects", json={"name": "p9", "dataset": TOO_BIG}), 422,
                 "RequestValidationError", contains="dataset")
    assert_error(boss.post("/api/projects", json={"name": "p9", "dataset": str(TOO_BIG)}), 404,
                 "NotFoundError", contains="no dataset")
    tasks = boss.get(f"/api/projects/{world.pid}/tasks").json()["items"]
    assert all(t["assignee_id"] is None for t in tasks)  # nothing half-assigned
    assert [p["name"] for p in boss.get("/api/projects").json()["items"]] == ["p1"]


def test_an_unreadable_body_answers_400_with_advice(world):
    boss = world.clients["boss"]
    r = boss.post("/api/projects", content=b"\xff\xfe{", headers={"Content-Type":
                                                                  "application/json"})
    assert_error(r, 400, "HTTPError", contains="UTF-8")


@pytest.mark.parametrize("body", [
    {"name": "a\x00b"}, {"description": "x\x00"}, {"split": "v\x00al"},
    {"settings": {"note": "\x00"}}, {"dataset": "stre\x00et"},
])
def test_nul_characters_in_a_new_project_answer_422(world, imported, body):
    # Found on PostgreSQL, which stores no NUL in text or JSON: each answered 500.
    boss = world.clients["boss"]
    r = boss.post("/api/projects", json={"name": "p9", "dataset": imported.dataset_id, **body})
    err = assert_error(r, 422, "RequestValidationError", contains="NUL character")
    assert next(iter(body)) in " ".join(err["problems"])
    assert [p["name"] for p in boss.get("/api/projects").json()["items"]] == ["p1"]


def test_nul_characters_in_members_classes_and_assignment_answer_422(world):
    boss = world.clients["boss"]
    pid = world.pid
    for method, url, body in (
        ("PUT", f"/api/projects/{pid}/members", {"user": "la\x00ra", "role": "labeler"}),
        ("POST", f"/api/projects/{pid}/classes", {"name": "c\x00t"}),
        ("POST", f"/api/projects/{pid}/assign", {"users": ["la\x00ra"], "spread": 1}),
    ):
        r = boss.request(method, url, json=body)
        assert_error(r, 422, "RequestValidationError", contains="NUL character")
    assert len(boss.get(f"/api/projects/{pid}").json()["classes"]) == 2
