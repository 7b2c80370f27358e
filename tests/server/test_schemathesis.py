"""Property-based robustness of the whole JSON API: schemathesis reads /api/openapi.json from
the in-process app and sends generated requests (valid, boundary and invalid ones) to every
operation, signed in with a Bearer token. No answer may be a 5xx, and every answer must be one
the schema documents, in the documented shape.

The world holds a dataset, a project with members, tasks in several states, an issue and an
export, so ids that exist are there to be hit. Two passes per backend: as the workspace owner
(everything allowed) and as a labeler (mostly refused: the refusals must be clean too).

Bounded for CI (``EXAMPLES`` per operation, fixed seed). A longer hunt by hand:

    LABELWISE_FUZZ_EXAMPLES=200 .venv/bin/pytest tests/server/test_schemathesis.py -n 0 -q
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import labelwise
from labelwise.server import create_app
from labelwise.workflow import accounts
from tests.conftest import _truncate_all
from tests.server.helpers import FAST_HASHING, import_test_dataset, make_client, make_user

EXAMPLES = int(os.environ.get("LABELWISE_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
#: The server only answers to loopback Host names when bound to 127.0.0.1 (its default).
BASE_URL = "http://localhost"


@dataclass
class FuzzWorld:
    ws: labelwise.Workspace
    token: str  # Bearer token of the caller the pass runs as
    token_id: int
    decoy_token_id: int  # another token of the caller, revoked instead of the one in use


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def populate(ws: labelwise.Workspace, folder: Path) -> None:
    """A project on the test dataset with tasks submitted, approved, rejected and skipped, an
    open issue, a class and an export; users owner, boss (manager), rita (reviewer), lara and
    leo (labelers, members), otto (labeler, no member)."""
    data = import_test_dataset(ws, folder)
    owner = make_client(ws, user="owner")
    for name, role in (("boss", "manager"), ("rita", "reviewer"), ("lara", "labeler"),
                       ("leo", "labeler"), ("otto", "labeler")):
        make_user(ws, name, role)
    pid = _ok(owner.post("/api/projects", json={"name": "fuzz", "dataset": data.name}), 201)["id"]
    for name, role in (("boss", "manager"), ("rita", "reviewer"), ("lara", "labeler"),
                       ("leo", "labeler")):
        _ok(owner.put(f"/api/projects/{pid}/members", json={"user": name, "role": role}))
    _ok(owner.post(f"/api/projects/{pid}/assign", json={"users": ["lara"], "spread": 4}))
    _ok(owner.post(f"/api/projects/{pid}/classes", json={"name": "bike"}), 201)
    lara, rita = make_client(ws, user="lara"), make_client(ws, user="rita")
    done = []
    for _ in range(3):
        task = _ok(lara.post(f"/api/projects/{pid}/tasks/next"))["task"]
        class_id = task["labels"][0]["class_id"] if task["labels"] else None
        labels = [{"class_id": class_id, "bbox": [1.0, 2.0, 10.0, 12.0]}] if class_id else []
        saved = _ok(lara.put(f"/api/tasks/{task['id']}/labels",
                             json={"version": task["version"], "labels": labels,
                                   "active_seconds": 4.5}))
        done.append(_ok(lara.post(f"/api/tasks/{task['id']}/submit",
                                  json={"version": saved["version"], "active_seconds": 1.0})))
    _ok(rita.post(f"/api/tasks/{done[0]['id']}/approve", json={"version": done[0]["version"]}))
    _ok(rita.post(f"/api/tasks/{done[1]['id']}/reject",
                  json={"version": done[1]["version"], "reason": "box too loose"}))
    _ok(rita.post(f"/api/tasks/{done[2]['id']}/issues",
                  json={"body": "check the corner", "x": 3.0, "y": 4.0}), 201)
    skipped = _ok(lara.post(f"/api/projects/{pid}/tasks/next"))["task"]
    _ok(lara.post(f"/api/tasks/{skipped['id']}/skip",
                  json={"version": skipped["version"], "comment": "blurred"}))
    _ok(owner.post(f"/api/projects/{pid}/exports", json={"format": "coco",
                                                         "approved_only": False}), 201)


@pytest.fixture(scope="module", params=[
    pytest.param(("sqlite", "owner"), id="sqlite-owner"),
    pytest.param(("sqlite", "lara"), id="sqlite-labeler"),
    pytest.param(("postgresql", "owner"), id="postgresql-owner", marks=pytest.mark.postgres),
    pytest.param(("postgresql", "lara"), id="postgresql-labeler", marks=pytest.mark.postgres),
])
def fuzz_world(request, tmp_path_factory) -> FuzzWorld:
    backend, caller = request.param
    folder = tmp_path_factory.mktemp(f"fuzz-{backend}-{caller}")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FAST_HASHING.items():
            mp.setenv(name, value)
        url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
        ws = labelwise.init(folder / "ws", database_url=url)
        if url:
            _truncate_all(ws)
        populate(ws, folder / "src")
        with ws.session() as s:
            user = accounts.get_user(s, caller)
            decoy = accounts.create_token(s, user, "decoy").row.id
            made = accounts.create_token(s, user, "schemathesis")
            world = FuzzWorld(ws, made.token, made.row.id, decoy)
        yield world
    ws.close()


def fuzz_operation(operation, world: FuzzWorld, mode: GenerationMode) -> str | None:
    """Run ``EXAMPLES`` generated requests against one operation; the smallest failing one,
    described, or None."""
    auth = {"Authorization": f"Bearer {world.token}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    def fuzz(case) -> None:
        # Revoking the token the pass signs in with would turn the rest of it into 401s.
        if case.path_parameters and case.path_parameters.get("token_id") == world.token_id:
            case.path_parameters["token_id"] = world.decoy_token_id
        case.call_and_validate(base_url=BASE_URL, headers=auth, checks=CHECKS)

    try:
        fuzz()
    except Unsatisfiable:  # negative mode on an operation without parameters: nothing to send
        return None
    except (Exception, FailureGroup) as err:  # noqa: BLE001 - report every failure, go on
        return f"{operation.label} ({mode.value}): {_shorten(str(err))}"
    return None


def _shorten(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the longer hunts by hand take minutes per pass
def test_api_answers_without_server_errors(fuzz_world: FuzzWorld):
    app = create_app(fuzz_world.ws)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app,
                                            headers={"Host": "localhost"})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := fuzz_operation(operation, fuzz_world, mode)) is not None
    ]
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
