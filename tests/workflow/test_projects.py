"""Projects: creation on a dataset or split, schema copies and edits, members, visibility."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from labelwise.core.schema import LabelClass
from labelwise.db.models import AnnotationRow, DatasetRow, LabelClassRow
from labelwise.db.workflow_models import ProjectRow, TaskAnnotationRow, TaskRow
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.workflow import access, projects
from labelwise.workflow.access import PermissionDeniedError
from tests.server.helpers import NUM_IMAGES, VAL


def test_project_gets_one_task_per_asset_and_copies_labels(team):
    with team.ws.session() as s:
        project = s.get(ProjectRow, team.project_id)
        ds = s.get(DatasetRow, team.data.dataset_id)
        assert project.schema_id != ds.schema_id
        names = [(c.name, c.kind) for c in projects.project_classes(s, project)]
        assert names == [(c.name, c.kind) for c in ds.schema.classes]
        tasks = s.scalars(select(TaskRow).where(TaskRow.project_id == project.id)).all()
        assert len(tasks) == NUM_IMAGES
        assert {t.status for t in tasks} == {"todo"} and {t.version for t in tasks} == {1}
        copied = s.scalar(select(func.count()).where(TaskAnnotationRow.project_id == project.id))
        in_dataset = s.scalar(select(func.count()).where(
            AnnotationRow.dataset_id == team.data.dataset_id))
        assert copied == in_dataset
        project_class_ids = {c.id for c in projects.project_classes(s, project)}
        used = set(s.scalars(select(TaskAnnotationRow.class_id).where(
            TaskAnnotationRow.project_id == project.id)))
        assert used <= project_class_ids
        assets = sorted(team.data.files)
        assert team.task_for(s, assets[0]).uncertainty == pytest.approx(0.6)
        assert team.task_for(s, assets[1]).uncertainty == pytest.approx(0.3)
        assert team.task_for(s, assets[2]).uncertainty is None


def test_project_on_a_split_covers_only_its_assets(team):
    with team.ws.session() as s, s.begin():
        p = projects.create_project(s, team.user(s, "owner"), name="val-only",
                                    dataset=team.data.name, split="val", import_labels=False)
        assets = set(s.scalars(select(TaskRow.asset_id).where(TaskRow.project_id == p.id)))
        assert assets == team.data.val and len(VAL) == len(assets)
        assert s.scalar(select(func.count()).where(TaskAnnotationRow.project_id == p.id)) == 0


def test_bad_project_requests_are_refused_with_advice(team):
    with team.ws.session() as s:
        with pytest.raises(PermissionDeniedError, match="workspace role manager"):
            projects.create_project(s, team.user(s, "labeler"), name="x", dataset=team.data.name)
        with pytest.raises(ConflictError, match="'p1' already exists"):
            projects.create_project(s, team.user(s, "owner"), name="p1", dataset=team.data.name)
        with pytest.raises(NotFoundError, match="no dataset 'nope'"):
            projects.create_project(s, team.user(s, "owner"), name="x", dataset="nope")
        with pytest.raises(NotFoundError, match="no split 'test'"):
            projects.create_project(s, team.user(s, "owner"), name="x", dataset=team.data.name,
                                    split="test")
        with pytest.raises(ValidationError, match="1 to 200"):
            projects.create_project(s, team.user(s, "owner"), name="  ", dataset=team.data.name)
        p = s.get(ProjectRow, team.project_id)
        with pytest.raises(ValidationError, match="unknown project role 'boss'"):
            projects.add_member(s, p, team.user(s, "outsider"), "boss")


def test_visibility_follows_membership(team):
    with team.ws.session() as s:
        def visible(name):
            return [p.name for p in s.scalars(access.visible_projects(s, team.user(s, name)))]

        assert visible("owner") == ["p1"]  # owners see every project without membership
        assert visible("labeler") == ["p1"]
        assert visible("outsider") == []
        with pytest.raises(NotFoundError, match="no project with id"):
            access.get_project(s, team.user(s, "outsider"), team.project_id)
        with pytest.raises(PermissionDeniedError, match="needs the manager role"):
            access.get_project(s, team.user(s, "labeler"), team.project_id, minimum="manager")
        project, role = access.get_project(s, team.user(s, "reviewer"), team.project_id)
        assert role == "reviewer"


def test_labelers_see_only_assets_of_their_tasks(team):
    from labelwise.workflow import assignment

    asset = sorted(team.data.files)[3]
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assert not access.can_view_asset(s, team.user(s, "labeler"), asset)
        assignment.assign(s, p, team.user(s, "labeler"), [asset], actor=team.user(s, "manager"))
    with team.ws.session() as s:
        assert access.can_view_asset(s, team.user(s, "labeler"), asset)
        assert not access.can_view_asset(s, team.user(s, "labeler2"), asset)
        assert access.can_view_asset(s, team.user(s, "reviewer"), asset)
        assert access.can_view_asset(s, team.user(s, "owner"), asset)
        assert not access.can_view_asset(s, team.user(s, "outsider"), asset)


def test_schema_edits_keep_class_ids(team):
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        cat = next(c for c in projects.project_classes(s, p) if c.name == "cat")
        renamed = projects.update_class(s, p, cat.id, name="kitten", color="#123456")
        assert renamed.id == cat.id and renamed.name == "kitten"
        bird = projects.add_class(s, p, LabelClass("bird", "object", "bbox"))
        assert bird.id not in {cat.id}
        with pytest.raises(ConflictError, match="already has a object class 'bird'"):
            projects.add_class(s, p, LabelClass("bird", "object", "bbox"))
        with pytest.raises(NotFoundError, match="has no class with id 999999"):
            projects.update_class(s, p, 999999, name="x")
        # Dataset schema untouched by project edits.
        ds = s.get(DatasetRow, team.data.dataset_id)
        assert "cat" in {c.name for c in ds.schema.classes}


def test_removing_a_used_class_needs_a_target_or_explicit_delete(team):
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        classes = {c.name: c for c in projects.project_classes(s, p)}
        cat, dog = classes["cat"], classes["dog"]
        used = s.scalar(select(func.count()).where(TaskAnnotationRow.class_id == cat.id))
        assert used > 0
        with pytest.raises(ConflictError, match="pass a target class"):
            projects.remove_class(s, p, cat.id)
        with pytest.raises(ValidationError, match="not both"):
            projects.remove_class(s, p, cat.id, move_to=dog.id, delete_labels=True)
        dog_before = s.scalar(select(func.count()).where(TaskAnnotationRow.class_id == dog.id))
        assert projects.remove_class(s, p, cat.id, move_to=dog.id) == used
        assert s.get(LabelClassRow, cat.id) is None
        dog_after = s.scalar(select(func.count()).where(TaskAnnotationRow.class_id == dog.id))
        assert dog_after == dog_before + used
        assert projects.remove_class(s, p, dog.id, delete_labels=True) == dog_after
        assert s.scalar(select(func.count()).where(TaskAnnotationRow.project_id == p.id)) == 0


def test_moving_labels_needs_a_class_of_the_same_kind(team):
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        cat = next(c for c in projects.project_classes(s, p) if c.name == "cat")
        sunny = projects.add_class(s, p, LabelClass("sunny", "category", None))
        with pytest.raises(ValidationError, match="same kind and tool"):
            projects.remove_class(s, p, cat.id, move_to=sunny.id)
        # An unused class goes without asking.
        assert projects.remove_class(s, p, sunny.id) == 0


def test_removing_a_member_returns_their_open_work(team):
    from labelwise.workflow import assignment

    assets = sorted(team.data.files)[:2]
    with team.ws.session() as s, s.begin():
        p = s.get(ProjectRow, team.project_id)
        assignment.assign(s, p, team.user(s, "labeler"), assets, actor=team.user(s, "manager"))
        projects.remove_member(s, p, team.user(s, "labeler"))
        assert all(team.task_for(s, a).assignee_id is None for a in assets)
        with pytest.raises(NotFoundError, match="not a member"):
            projects.remove_member(s, p, team.user(s, "labeler"))
        assert [m["username"] for m in projects.members(s, p)] == [
            "labeler2", "manager", "reviewer"]
