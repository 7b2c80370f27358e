"""What a labeler's request costs the database, and the one-query sign-in's rules.

The labeling loop (next task -> save -> submit) is the server's hot path: these tests pin its
SQL statements and connection checkouts per request, so a change that adds a query to it is
seen; and they check that signing in by token or cookie, now one joined query, keeps every
rule of ``accounts.resolve_token`` / ``accounts.resolve_session``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from labelwise.db.account_models import ApiTokenRow, UserRow, WebSessionRow
from labelwise.workflow import accounts
from tests.server.helpers import make_user
from tests.server.workflow_helpers import make_project

POLICY = accounts.AuthPolicy(password_memory_kib=1024, password_time_cost=1)
#: Most statements each request of the loop may run (SQLite's claim reads its candidates
#: first: one more for "next" than PostgreSQL's single UPDATE ... RETURNING).
BUDGET = {"next": 10, "save": 11, "submit": 5}


class Recorder:
    """SQL statements and pool checkouts of an engine, taken request by request."""

    def __init__(self, engine) -> None:
        self.statements: list[str] = []
        self.checkouts = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine.pool, "checkout", self._checkout)

    def _statement(self, _conn, _cursor, statement, *_args) -> None:
        # A sign-in refreshes its last-seen stamp at most once a minute: not part of the cost.
        if not statement.lstrip().upper().startswith(("UPDATE WEB_SESSIONS", "UPDATE API_TOKENS")):
            self.statements.append(statement)

    def _checkout(self, *_args) -> None:
        self.checkouts += 1

    def take(self) -> tuple[list[str], int]:
        out = self.statements, self.checkouts
        self.statements, self.checkouts = [], 0
        return out


@pytest.fixture
def world(client_for, imported):
    return make_project(client_for, imported.dataset_id)


def test_labeling_loop_stays_within_its_query_budget(world, workspace):
    lara = world.clients["lara"]
    recorder = Recorder(workspace.engine)
    for _round in range(2):
        recorder.take()
        r = lara.post(f"/api/projects/{world.pid}/tasks/next")
        assert r.status_code == 200, r.text
        task = r.json()["task"]
        cost = {"next": recorder.take()}
        kept = [{"id": lb["id"], "class_id": lb["class_id"], "bbox": lb["bbox"]}
                for lb in task["labels"]]
        r = lara.put(f"/api/tasks/{task['id']}/labels", json={
            "version": task["version"], "active_seconds": 2,
            "labels": [*kept, {"class_id": world.class_id("dog"), "bbox": [1, 2, 3, 4]}]})
        assert r.status_code == 200, r.text
        cost["save"] = recorder.take()
        r = lara.post(f"/api/tasks/{task['id']}/submit",
                      json={"version": r.json()["version"], "active_seconds": 1})
        assert r.status_code == 200 and r.json()["status"] == "submitted", r.text
        cost["submit"] = recorder.take()
        for kind, (statements, checkouts) in cost.items():
            assert len(statements) <= BUDGET[kind], (kind, [" ".join(s.split())[:90] for s in statements])
            # One pooled connection per request, however many transactions it runs.
            assert checkouts == 1, (kind, checkouts)


def test_submit_still_settles_model_labels(world, workspace):
    """Submit skips the model-label UPDATE only when the task has no model labels: with them,
    each is settled as accepted (kept as is), edited (moved) or rejected (removed)."""
    from labelwise.db.workflow_models import TaskAnnotationRow
    from labelwise.workflow.labels import label_columns, label_fingerprint, row_geometry

    lara = world.clients["lara"]
    task = lara.post(f"/api/projects/{world.pid}/tasks/next").json()["task"]
    with workspace.session() as s, s.begin():
        for x in (1, 20, 40):
            cols = label_columns({"class_id": world.class_id("cat"), "bbox": [x, 1, 5, 5]})
            fp = label_fingerprint(cols["class_id"], row_geometry(cols))
            s.add(TaskAnnotationRow(task_id=task["id"], project_id=world.pid, source="model",
                                    confidence=0.5, fingerprint=fp, model_fingerprint=fp,
                                    deleted=False, **cols))
    task = lara.get(f"/api/tasks/{task['id']}").json()
    model = [lb for lb in task["labels"] if lb["source"] == "model"]
    keep, move, drop = model[-3:]
    labels = [{"id": lb["id"], "class_id": lb["class_id"], "bbox": lb["bbox"]}
              for lb in task["labels"] if lb["id"] != drop["id"]]
    next(lb for lb in labels if lb["id"] == move["id"])["bbox"] = [25, 5, 3, 3]
    saved = lara.put(f"/api/tasks/{task['id']}/labels",
                     json={"version": task["version"], "labels": labels})
    assert saved.status_code == 200, saved.text
    done = lara.post(f"/api/tasks/{task['id']}/submit",
                     json={"version": saved.json()["version"]})
    assert done.status_code == 200, done.text
    with workspace.session() as s:
        outcome = dict(s.execute(select(TaskAnnotationRow.id, TaskAnnotationRow.model_outcome)
                                 .where(TaskAnnotationRow.task_id == task["id"])).all())
    assert (outcome[keep["id"]], outcome[move["id"]], outcome[drop["id"]]) == (
        "accepted", "edited", "rejected")


def test_token_sign_in_keeps_every_rule(workspace):
    user = make_user(workspace, "tina", "labeler")
    with workspace.session() as s:
        user = s.get(UserRow, user.id)
        valid = accounts.create_token(s, user, "valid").token
        revoked = accounts.create_token(s, user, "revoked")
        accounts.revoke_token(s, user, revoked.row.id)
        expired = accounts.create_token(s, user, "expired", expires_days=1)
        s.execute(update(ApiTokenRow).where(ApiTokenRow.id == expired.row.id)
                  .values(expires_at=accounts.utcnow() - timedelta(seconds=1))
                  .execution_options(synchronize_session=False))
        s.commit()
        s.expire_all()
        cases = {"valid": valid, "revoked": revoked.token, "expired": expired.token,
                 "unknown": "lw_" + "x" * 43, "no prefix": valid[3:], "empty": ""}
        assert accounts.resolve_token(s, valid)[0].id == user.id
        for name, token in cases.items():
            if name != "valid":
                assert accounts.resolve_token(s, token) is None, name
        accounts.deactivate(s, user.id)
        assert accounts.resolve_token(s, valid) is None


def test_session_sign_in_keeps_every_rule(workspace):
    user_id = make_user(workspace, "sven", "labeler").id

    def new_session(**stamps) -> accounts.NewSession:
        with workspace.session() as s:
            made = accounts.create_session(s, s.get(UserRow, user_id), policy=POLICY)
            if stamps:
                s.execute(update(WebSessionRow).where(WebSessionRow.id == made.id)
                          .values(**stamps).execution_options(synchronize_session=False))
                s.commit()
            return made

    live = new_session().token
    with workspace.session() as s:
        found = accounts.resolve_session(s, live, policy=POLICY)
        assert found[0].id == user_id and found[1].token_hash == accounts.digest(live)
    past = accounts.utcnow() - timedelta(hours=POLICY.session_idle_hours + 1)
    for stamp in ("expires_at", "last_seen_at"):  # ended, or idle too long: deleted
        gone = new_session(**{stamp: past})
        with workspace.session() as s:
            assert accounts.resolve_session(s, gone.token, policy=POLICY) is None, stamp
            assert s.get(WebSessionRow, gone.id) is None, stamp
    with workspace.session() as s:
        assert accounts.resolve_session(s, "nonsense", policy=POLICY) is None
        assert accounts.resolve_session(s, None, policy=POLICY) is None
        accounts.deactivate(s, user_id)
    with workspace.session() as s:
        assert accounts.resolve_session(s, live, policy=POLICY) is None
