"""A team on both backends: users of every role and a project over a small COCO dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

import labelwise
from labelwise.db.account_models import UserRow
from labelwise.db.models import AnnotationRow, DatasetRow, LabelClassRow
from labelwise.db.workflow_models import TaskRow
from labelwise.workflow import projects
from labelwise.workflow.lifecycle import Actor
from tests.server.helpers import Imported, import_test_dataset

ROLES = {"owner": "owner", "manager": "manager", "reviewer": "reviewer", "labeler": "labeler",
         "labeler2": "labeler", "outsider": "labeler"}


@dataclass
class Team:
    ws: labelwise.Workspace
    data: Imported
    users: dict[str, int] = field(default_factory=dict)  # name -> user id
    project_id: int = 0

    def user(self, session, name: str) -> UserRow:
        return session.get(UserRow, self.users[name])

    def actor(self, session, name: str) -> Actor:
        from labelwise.workflow.access import project_role

        user = self.user(session, name)
        return Actor(user, project_role(session, user, self.project_id))

    def task_for(self, session, asset_id: int) -> TaskRow:
        return session.scalar(select(TaskRow).where(TaskRow.project_id == self.project_id,
                                                    TaskRow.asset_id == asset_id))


def add_users(session, names: dict[str, str]) -> dict[str, int]:
    """Users made directly (no password hashing: these tests never sign in)."""
    rows = {n: UserRow(username=n, display_name=n, password_hash="!", role=r, is_active=True)
            for n, r in names.items()}
    session.add_all(rows.values())
    session.flush()
    return {n: r.id for n, r in rows.items()}


def add_model_labels(session, dataset_id: int, asset_id: int, boxes: list[tuple]) -> None:
    """Model predictions on an asset: (class name, [x, y, w, h], confidence)."""
    schema_id = session.get(DatasetRow, dataset_id).schema_id
    classes = {c.name: c.id for c in session.scalars(select(LabelClassRow).where(
        LabelClassRow.schema_id == schema_id, LabelClassRow.kind == "object"))}
    for i, (name, box, conf) in enumerate(boxes):
        session.add(AnnotationRow(
            dataset_id=dataset_id, asset_id=asset_id, class_id=classes[name], bbox_x=box[0],
            bbox_y=box[1], bbox_w=box[2], bbox_h=box[3], source="model", confidence=conf,
            fingerprint=f"model-{asset_id}-{i}",
        ))
    session.flush()


@pytest.fixture
def team(workspace: labelwise.Workspace, tmp_path: Path) -> Team:
    """Users of each role; project "p1" over dataset "street" with members added.

    The first asset gets two model pre-labels (confidences 0.9 and 0.4), the second one
    (0.7), so tasks have uncertainties 0.6 and 0.3.
    """
    data = import_test_dataset(workspace, tmp_path / "src")
    out = Team(ws=workspace, data=data)
    assets = sorted(data.files)
    with workspace.session() as s, s.begin():
        out.users = add_users(s, ROLES)
        add_model_labels(s, data.dataset_id, assets[0],
                         [("cat", [1, 1, 10, 10], 0.9), ("dog", [20, 20, 5, 5], 0.4)])
        add_model_labels(s, data.dataset_id, assets[1], [("cat", [2, 2, 8, 8], 0.7)])
        manager = s.get(UserRow, out.users["manager"])
        project = projects.create_project(s, manager, name="p1", dataset=data.name)
        for name, role in (("reviewer", "reviewer"), ("labeler", "labeler"),
                           ("labeler2", "labeler")):
            projects.add_member(s, project, s.get(UserRow, out.users[name]), role)
        out.project_id = project.id
    return out
