"""Task uncertainty set in bulk by asset id, as ``autolabel apply`` does for each project."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labelwise.db.workflow_models import ProjectRow, TaskRow
from labelwise.errors import ValidationError
from labelwise.workflow import projects


def _uncertainties(s, project_id: int) -> dict[int, float | None]:
    return dict(s.execute(select(TaskRow.asset_id, TaskRow.uncertainty)
                          .where(TaskRow.project_id == project_id)).all())


def test_sets_the_given_tasks_and_ignores_unknown_assets(team):
    assets = sorted(team.data.files)
    with team.ws.session() as s, s.begin():
        before = _uncertainties(s, team.project_id)
        other = projects.create_project(s, team.user(s, "manager"), name="p2",
                                        dataset=team.data.name)
        p = s.get(ProjectRow, team.project_id)
        scores = {assets[0]: 0.25, assets[2]: 1.0, assets[3]: 0.0,
                  10**9: 0.5, 2**70: 0.5}  # no such assets (the last beyond 64 bits)
        assert projects.set_uncertainty(s, p, scores) == 3
        assert projects.set_uncertainty(s, p, {}) == 0
        other_id = other.id
    with team.ws.session() as s:
        after = _uncertainties(s, team.project_id)
        assert after == {**before, assets[0]: 0.25, assets[2]: 1.0, assets[3]: 0.0}
        assert after[assets[1]] == pytest.approx(0.3)  # not named: unchanged
        # Another project on the same images keeps its own values.
        assert _uncertainties(s, other_id)[assets[2]] is None


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_a_bad_value_is_refused_and_nothing_changes(team, bad):
    assets = sorted(team.data.files)
    with team.ws.session() as s, s.begin():
        before = _uncertainties(s, team.project_id)
        p = s.get(ProjectRow, team.project_id)
        with pytest.raises(ValidationError, match=r"must be in \[0, 1\]") as err:
            projects.set_uncertainty(s, p, {assets[0]: 0.5, assets[1]: bad})
        assert err.value.problems == [f"asset {assets[1]}: {bad}"]
        assert _uncertainties(s, team.project_id) == before
