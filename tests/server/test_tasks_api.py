"""/api/tasks: next task, saving labels, the lifecycle over HTTP, 409 with the current version."""

from __future__ import annotations

import pytest

from tests.server.helpers import assert_error
from tests.server.workflow_helpers import make_project


@pytest.fixture
def world(client_for, imported):
    return make_project(client_for, imported.dataset_id)


def _next(client, pid):
    r = client.post(f"/api/projects/{pid}/tasks/next")
    assert r.status_code == 200, r.text
    return r.json()["task"]


def test_next_save_submit(world):
    lara = world.clients["lara"]
    task = _next(lara, world.pid)
    assert task["status"] == "in_progress" and task["assignee_id"] == world.user_ids["lara"]
    assert task["asset"]["id"] == task["asset_id"] and task["asset"]["image_url"]
    kept = [{"id": lb["id"], "class_id": lb["class_id"], "bbox": lb["bbox"]}
            for lb in task["labels"]]
    new = {"class_id": world.class_id("dog"), "bbox": [3, 4, 10, 10]}
    saved = lara.put(f"/api/tasks/{task['id']}/labels",
                     json={"version": task["version"], "labels": kept + [new],
                           "active_seconds": 12.5})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["version"] == task["version"] + 1
    assert [lb["label"] for lb in body["labels"]][-1] == "dog"
    assert body["labels"][-1]["source"] == "human"
    done = lara.post(f"/api/tasks/{task['id']}/submit",
                     json={"version": body["version"], "active_seconds": 3})
    assert done.status_code == 200 and done.json()["status"] == "submitted"
    events = lara.get(f"/api/tasks/{task['id']}/events").json()["items"]
    assert [e["action"] for e in events] == ["start", "save", "submit"]
    assert events[-1]["cycle_seconds"] == pytest.approx(15.5)
    # The next call hands out a different task.
    assert _next(lara, world.pid)["id"] != task["id"]


def test_two_labelers_never_get_the_same_task(world):
    a = _next(world.clients["lara"], world.pid)
    b = _next(world.clients["leo"], world.pid)
    assert a["id"] != b["id"]
    # Nobody else sees another labeler's task.
    assert_error(world.clients["leo"].get(f"/api/tasks/{a['id']}"), 404, "NotFoundError")
    assert_error(world.clients["otto"].get(f"/api/tasks/{a['id']}"), 404, "NotFoundError")


def test_stale_version_answers_409_with_the_current_version(world):
    lara = world.clients["lara"]
    task = _next(lara, world.pid)
    ok = lara.put(f"/api/tasks/{task['id']}/labels", json={"version": task["version"],
                                                          "labels": []})
    assert ok.status_code == 200
    stale = lara.put(f"/api/tasks/{task['id']}/labels", json={"version": task["version"],
                                                             "labels": []})
    assert stale.status_code == 409
    err = stale.json()["error"]
    assert set(err) == {"type", "message", "problems", "current_version", "current_status"}
    assert err["type"] == "StaleVersionError" and "reload the task" in err["message"]
    assert (err["current_version"], err["current_status"]) == (task["version"] + 1,
                                                               "in_progress")
    wrong = lara.post(f"/api/tasks/{task['id']}/submit", json={"version": 1})
    assert wrong.status_code == 409 and wrong.json()["error"]["current_version"] == \
        task["version"] + 1


def test_invalid_labels_answer_422_listing_each_problem(world):
    lara = world.clients["lara"]
    task = _next(lara, world.pid)
    bad = [{"class_id": 99999, "bbox": [1, 1, 2, 2]},
           {"class_id": world.class_id("cat"), "bbox": [1, 1, 0, 2]}]
    err = assert_error(lara.put(f"/api/tasks/{task['id']}/labels",
                                json={"version": task["version"], "labels": bad}),
                       422, "ValidationError", contains="nothing was saved")
    assert len(err["problems"]) == 2
    assert_error(lara.put(f"/api/tasks/{task['id']}/labels",
                          json={"version": task["version"], "labels": [],
                                "active_seconds": -3}),
                 422, "RequestValidationError")


def test_out_of_order_and_forbidden_transitions(world):
    lara = world.clients["lara"]
    task = _next(lara, world.pid)
    assert_error(lara.post(f"/api/tasks/{task['id']}/start", json={"version": task["version"]}),
                 409, "ConflictError", contains="start needs a task that is todo or rejected")
    assert_error(lara.post(f"/api/tasks/{task['id']}/reopen", json={"version": 1}), 403,
                 "PermissionDeniedError")
    assert_error(lara.post(f"/api/tasks/{task['id']}/approve", json={"version": 1}), 403,
                 "PermissionDeniedError")
    skipped = lara.post(f"/api/tasks/{task['id']}/skip",
                        json={"version": task["version"], "comment": "blurry"})
    assert skipped.json()["status"] == "skipped"
    boss = world.clients["boss"]
    reopened = boss.post(f"/api/tasks/{task['id']}/reopen",
                         json={"version": skipped.json()["version"]})
    assert reopened.json()["status"] == "todo"


def test_task_list_filters_and_pages(world):
    boss = world.clients["boss"]
    _next(world.clients["lara"], world.pid)
    url = f"/api/projects/{world.pid}/tasks"
    assert len(boss.get(f"{url}?status=in_progress").json()["items"]) == 1
    assert len(boss.get(f"{url}?assignee_id={world.user_ids['lara']}").json()["items"]) == 1
    first = boss.get(f"{url}?limit=4").json()
    rest = boss.get(f"{url}?limit=4&cursor={first['next_cursor']}").json()
    assert len(first["items"]) + len(rest["items"]) == 7 and rest["next_cursor"] is None
    assert_error(boss.get(f"{url}?status=done"), 422, "RequestValidationError")


def test_no_task_left_answers_null(world, imported):
    boss = world.clients["boss"]
    boss.post(f"/api/projects/{world.pid}/assign", json={"users": ["leo"], "spread": 100})
    assert world.clients["lara"].post(f"/api/projects/{world.pid}/tasks/next").json() == {
        "task": None}


def test_label_ids_beyond_the_id_range_answer_422(world):
    lara = world.clients["lara"]
    task = _next(lara, world.pid)
    for label in ({"id": 2**70, "class_id": world.class_id("cat"), "bbox": [1, 1, 5, 5]},
                  {"class_id": 2**70, "bbox": [1, 1, 5, 5]}):
        r = lara.put(f"/api/tasks/{task['id']}/labels",
                     json={"version": task["version"], "labels": [label]})
        assert_error(r, 422, "RequestValidationError", contains="labels.0")
    assert lara.get(f"/api/tasks/{task['id']}").json()["version"] == task["version"]


def test_nul_characters_in_label_attributes_answer_422(world):
    # PostgreSQL's JSON columns refuse \u0000: this answered 500 there.
    lara = world.clients["lara"]
    task = _next(lara, world.pid)
    label = {"class_id": world.class_id("cat"), "bbox": [1, 1, 5, 5],
             "attributes": {"note": "occluded\x00"}}
    r = lara.put(f"/api/tasks/{task['id']}/labels",
                 json={"version": task["version"], "labels": [label]})
    assert_error(r, 422, "RequestValidationError", contains="labels.0.attributes.note")
    assert lara.get(f"/api/tasks/{task['id']}").json()["version"] == task["version"]
