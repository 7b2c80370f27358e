"""/api review routes: queue, approve/reject, issues and comments; analytics over HTTP."""

from __future__ import annotations

import pytest

from tests.server.helpers import assert_error
from tests.server.workflow_helpers import make_project


@pytest.fixture
def world(client_for, imported):
    return make_project(client_for, imported.dataset_id)


def _submitted(world, who="lara"):
    c = world.clients[who]
    task = c.post(f"/api/projects/{world.pid}/tasks/next").json()["task"]
    labels = [{"class_id": world.class_id("cat"), "bbox": [1, 1, 8, 8]}]
    saved = c.put(f"/api/tasks/{task['id']}/labels",
                  json={"version": task["version"], "labels": labels, "active_seconds": 8})
    done = c.post(f"/api/tasks/{task['id']}/submit", json={"version": saved.json()["version"]})
    assert done.status_code == 200, done.text
    return done.json()


def test_review_round_trip(world):
    task = _submitted(world)
    rita = world.clients["rita"]
    queue = rita.get(f"/api/projects/{world.pid}/review-queue").json()["items"]
    assert [t["id"] for t in queue] == [task["id"]]
    assert_error(rita.post(f"/api/tasks/{task['id']}/reject", json={"version": task["version"],
                                                                    "reason": ""}),
                 422, "RequestValidationError")
    rejected = rita.post(f"/api/tasks/{task['id']}/reject",
                         json={"version": task["version"], "reason": "box misses the tail"})
    assert rejected.json()["status"] == "rejected"
    lara = world.clients["lara"]
    again = lara.post(f"/api/projects/{world.pid}/tasks/next").json()["task"]
    assert again["id"] == task["id"] and again["status"] == "in_progress"
    resub = lara.post(f"/api/tasks/{task['id']}/submit", json={"version": again["version"]})
    approved = rita.post(f"/api/tasks/{task['id']}/approve",
                         json={"version": resub.json()["version"], "comment": "ok"})
    assert approved.json()["status"] == "approved"
    actions = [e["action"] for e in lara.get(f"/api/tasks/{task['id']}/events").json()["items"]]
    assert actions[-4:] == ["reject", "start", "resubmit", "approve"]


def test_issue_threads(world):
    task = _submitted(world)
    rita, lara = world.clients["rita"], world.clients["lara"]
    detail = rita.get(f"/api/tasks/{task['id']}").json()
    label_id = detail["labels"][-1]["id"]
    issue = rita.post(f"/api/tasks/{task['id']}/issues",
                      json={"body": "is this a cat?", "annotation_id": label_id})
    assert issue.status_code == 201, issue.text
    iid = issue.json()["id"]
    reply = lara.post(f"/api/issues/{iid}/comments", json={"body": "yes, a small one"})
    assert reply.status_code == 201
    resolved = rita.patch(f"/api/issues/{iid}", json={"status": "resolved"}).json()
    assert resolved["status"] == "resolved"
    assert [c["body"] for c in resolved["comments"]] == ["is this a cat?", "yes, a small one"]
    assert_error(rita.patch(f"/api/issues/{iid}", json={"status": "resolved"}), 409,
                 "ConflictError")
    assert_error(rita.post(f"/api/tasks/{task['id']}/issues", json={"body": "x"}), 422,
                 "ValidationError", contains="exactly one thing")
    point = rita.post(f"/api/tasks/{task['id']}/issues", json={"body": "here", "x": 3, "y": 4})
    assert point.json()["annotation_id"] is None
    listed = lara.get(f"/api/tasks/{task['id']}/issues").json()["items"]
    assert [i["status"] for i in listed] == ["resolved", "open"]
    # Labelers who do not own the task cannot see its issues.
    assert_error(world.clients["leo"].post(f"/api/issues/{iid}/comments", json={"body": "hi"}),
                 404, "NotFoundError")


def test_queue_is_for_reviewers_only(world):
    assert_error(world.clients["lara"].get(f"/api/projects/{world.pid}/review-queue"), 403,
                 "PermissionDeniedError")
    assert_error(world.clients["otto"].get(f"/api/projects/{world.pid}/review-queue"), 404,
                 "NotFoundError")


def test_analytics_endpoints(world):
    task = _submitted(world)
    _submitted(world, "leo")
    rita, boss = world.clients["rita"], world.clients["boss"]
    rita.post(f"/api/tasks/{task['id']}/reject", json={"version": task["version"],
                                                       "reason": "redo"})
    base = f"/api/projects/{world.pid}/analytics"
    progress = boss.get(f"{base}/progress").json()
    assert progress["by_status"]["rejected"] == 1 and progress["by_status"]["submitted"] == 1
    rows = boss.get(f"{base}/throughput").json()["items"]
    assert {r["username"]: r["tasks"] for r in rows} == {"lara": 1, "leo": 1}
    tpl = boss.get(f"{base}/time-per-label").json()["items"]
    assert tpl[0]["tool"] == "bbox" and tpl[0]["median_seconds_per_label"] > 0
    rej = {r["username"]: r["rejection_rate"] for r in
           boss.get(f"{base}/rejections").json()["items"]}
    assert rej == {"lara": 1.0}
    assert boss.get(f"{base}/review-turnaround").json()["reviews"] == 1
    assert boss.get(f"{base}/auto-label").json()["total"] == 0
    assert_error(boss.get(f"{base}/throughput?since=2026-02-02&until=2026-01-01"), 422,
                 "ValidationError", contains="swap")
    assert_error(rita.get(f"{base}/progress"), 403, "PermissionDeniedError")


def test_issue_anchor_beyond_the_id_range_answers_422(world):
    task = _submitted(world)
    r = world.clients["rita"].post(f"/api/tasks/{task['id']}/issues",
                                   json={"body": "here?", "annotation_id": 2**70})
    assert_error(r, 422, "RequestValidationError", contains="annotation_id")
    assert world.clients["rita"].get(f"/api/tasks/{task['id']}/issues").json()["items"] == []
