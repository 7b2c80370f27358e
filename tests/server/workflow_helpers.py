"""A project over the test dataset with signed-in clients for each member, for API tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.testclient import TestClient


@dataclass
class ProjectWorld:
    project: dict
    clients: dict[str, TestClient] = field(default_factory=dict)  # username -> client
    user_ids: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.project["id"]

    def class_id(self, name: str) -> int:
        return next(c["id"] for c in self.project["classes"] if c["name"] == name)


def make_project(client_for, dataset_id: int, *, name: str = "p1") -> ProjectWorld:
    """Users: boss (workspace manager, creates the project), rita (reviewer), lara and leo
    (labelers, members), otto (labeler, not a member)."""
    boss = client_for("manager", "boss")
    made = boss.post("/api/projects", json={"name": name, "dataset": dataset_id})
    assert made.status_code == 201, made.text
    world = ProjectWorld(project=made.json(), clients={"boss": boss})
    for username, role, project_role in (("rita", "reviewer", "reviewer"),
                                         ("lara", "labeler", "labeler"),
                                         ("leo", "labeler", "labeler"),
                                         ("otto", "labeler", None)):
        world.clients[username] = client_for(role, username)
        world.user_ids[username] = world.clients[username].get("/api/auth/me").json()["id"]
        if project_role:
            r = boss.put(f"/api/projects/{world.pid}/members",
                         json={"user": username, "role": project_role})
            assert r.status_code == 200, r.text
    world.user_ids["boss"] = boss.get("/api/auth/me").json()["id"]
    return world
