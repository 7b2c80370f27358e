"""Every route, for every role and for anonymous callers, against an explicit expected table.

The table ``EXPECTED`` names each route (method and path as in the OpenAPI schema, plus the
HTML pages and HEAD probes) with who may call it. A route missing from the table fails
``test_every_route_has_an_entry``: add one when you add a route. Path parameters are filled
with real ids from a fixture world (``path_values``); add a value there for a new parameter.

The callers: anonymous, one user per workspace role, and ``outsider`` (a labeler in no
project). In the world's project, manager-user is the project manager (it made it),
reviewer-user a reviewer, labeler-user a labeler with one task; owners and admins manage every
project.

How a caller is judged, per table cell:
- ``OK``: the route let the caller through and answered: a GET below 400; another method
  anything but 401, 403 and 5xx (the walk sends an empty JSON body, which most answer 422).
- ``REACHED``: let through, whatever the answer but 401, 403 and 5xx (e.g. a similarity
  search answers 404 while the dataset has no embeddings).
- ``HIDDEN``: 404, as for a record that does not exist.
- a number: exactly that status.

Beyond the walk: CSRF, Bearer tokens, wrong passwords, throttling, and secrets in the database
and in the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

import labelwise
from labelwise.db.account_models import ApiTokenRow, LoginAttemptRow
from labelwise.db.models import Base
from labelwise.workflow.accounts import ROLE_RANK, ROLES, as_utc
from tests.server.helpers import (
    PASSWORD,
    Imported,
    assert_error,
    login,
    make_client,
    make_user,
)

OK = "ok"
REACHED = "reached"
HIDDEN = "hidden"
CALLERS = ("anonymous", *ROLES, "outsider")
#: The workspace role of each signed-in caller.
WORKSPACE_ROLE = {**{role: role for role in ROLES}, "outsider": "labeler"}
#: Each caller's role in the world's project (owners and admins manage every project).
PROJECT_ROLE = {"owner": "manager", "admin": "manager", "manager": "manager",
                "reviewer": "reviewer", "labeler": "labeler", "outsider": None}
PROJECT_RANK = {"labeler": 1, "reviewer": 2, "manager": 3}

Rule = dict[str, int | str]


def at_least(minimum: str, *, denied: int | str = 403, ok: str = OK) -> Rule:
    """Workspace roles ranked ``minimum`` or higher get through; lower ones get ``denied``."""
    rule: Rule = {"anonymous": 401}
    for caller, role in WORKSPACE_ROLE.items():
        rule[caller] = ok if ROLE_RANK[role] >= ROLE_RANK[minimum] else denied
    return rule


def member(minimum: str, *, ok: str = OK) -> Rule:
    """Project routes: members whose project role ranks ``minimum`` or higher get through,
    lower members 403, non-members 404 (the project is invisible to them)."""
    rule: Rule = {"anonymous": 401}
    for caller, role in PROJECT_ROLE.items():
        if role is None:
            rule[caller] = HIDDEN
        else:
            rule[caller] = ok if PROJECT_RANK[role] >= PROJECT_RANK[minimum] else 403
    return rule


def signed_in(ok: str = OK) -> Rule:
    return {"anonymous": 401, **{caller: ok for caller in WORKSPACE_ROLE}}


def public() -> Rule:
    return {caller: OK for caller in CALLERS}


def exactly(anonymous: int, **by_caller: int) -> Rule:
    return {"anonymous": anonymous, **by_caller}


#: (method, path) -> who may call it. Keep in step with the routes.
EXPECTED: dict[tuple[str, str], Rule] = {
    # public probes and the sign-in itself
    ("GET", "/api/health"): public(),
    ("HEAD", "/api/health"): public(),
    ("POST", "/api/auth/login"): public(),
    ("GET", "/static/labelwise.css"): public(),
    # the API docs page (Swagger UI from local files), public like /api/openapi.json
    ("GET", "/api/docs"): public(),
    # pages: everyone signed in; the page itself hides datasets below manager
    ("GET", "/"): signed_in(),
    ("HEAD", "/"): signed_in(),
    # whole datasets: managers and above
    ("GET", "/api/datasets"): at_least("manager"),
    ("GET", "/api/datasets/{dataset_id}"): at_least("manager"),
    ("GET", "/api/datasets/{dataset_id}/assets"): at_least("manager"),
    # (no embeddings in the world: allowed callers get 404 with advice)
    ("GET", "/api/datasets/{dataset_id}/duplicates"): at_least("manager", ok=REACHED),
    ("GET", "/api/datasets/{dataset_id}/map"): at_least("manager", ok=REACHED),
    ("POST", "/api/datasets/{dataset_id}/similar"): at_least("manager"),
    ("GET", "/api/assets/{asset_id}/similar"): at_least("manager", ok=REACHED),
    # Auto-Curate: managers and above (no embeddings in the world: 404 with advice)
    ("GET", "/api/datasets/{dataset_id}/curation/scores"): at_least("manager"),
    ("POST", "/api/datasets/{dataset_id}/curation/scores"): at_least("manager"),
    ("POST", "/api/datasets/{dataset_id}/curation/select"): at_least("manager"),
    ("POST", "/api/datasets/{dataset_id}/curation/validation"): at_least("manager"),
    ("GET", "/api/datasets/{dataset_id}/curation/mislabels"): at_least("manager", ok=REACHED),
    ("POST", "/api/datasets/{dataset_id}/curation/mislabels/review"): at_least("manager"),
    # one asset: managers and above, and whoever a project gives it to (the asset in the path
    # is labeler-user's task, so reviewer- and labeler-user see it); others see nothing
    ("GET", "/api/assets/{asset_id}"): {**at_least("manager"), "reviewer": OK, "labeler": OK,
                                        "outsider": HIDDEN},
    ("GET", "/api/assets/{asset_id}/image"): {**at_least("manager"), "reviewer": OK,
                                              "labeler": OK, "outsider": HIDDEN},
    ("GET", "/api/assets/{asset_id}/thumbnail"): {**at_least("manager"), "reviewer": OK,
                                                  "labeler": OK, "outsider": HIDDEN},
    # my account
    ("GET", "/api/auth/me"): signed_in(),
    ("POST", "/api/auth/password"): signed_in(),
    ("POST", "/api/auth/logout"): signed_in(),
    ("GET", "/api/auth/tokens"): signed_in(),
    ("POST", "/api/auth/tokens"): signed_in(),
    # the token in the path is the owner's: everyone else is told it is not theirs
    ("DELETE", "/api/auth/tokens/{token_id}"): exactly(
        401, owner=204, admin=404, manager=404, reviewer=404, labeler=404, outsider=404
    ),
    # users: managers read, admins write
    ("GET", "/api/users"): at_least("manager"),
    ("GET", "/api/users/{user_id}"): at_least("manager"),
    ("POST", "/api/users"): at_least("admin"),
    ("PATCH", "/api/users/{user_id}"): at_least("admin"),
    # projects: everyone lists the ones they see; managers and above create them
    ("GET", "/api/projects"): signed_in(),
    ("POST", "/api/projects"): at_least("manager"),
    ("GET", "/api/projects/{project_id}"): member("labeler"),
    ("GET", "/api/projects/{project_id}/members"): member("labeler"),
    ("PUT", "/api/projects/{project_id}/members"): member("manager"),
    ("DELETE", "/api/projects/{project_id}/members/{member_id}"): member("manager"),
    ("POST", "/api/projects/{project_id}/classes"): member("manager"),
    ("PATCH", "/api/projects/{project_id}/classes/{class_id}"): member("manager"),
    ("DELETE", "/api/projects/{project_id}/classes/{class_id}"): member("manager"),
    ("POST", "/api/projects/{project_id}/assign"): member("manager"),
    ("POST", "/api/projects/{project_id}/exports"): member("manager"),
    ("GET", "/api/projects/{project_id}/exports"): member("manager"),
    ("GET", "/api/projects/{project_id}/exports/{export_id}/download"): member("manager"),
    ("GET", "/api/projects/{project_id}/tasks"): member("labeler"),
    ("POST", "/api/projects/{project_id}/tasks/next"): member("labeler"),
    ("GET", "/api/projects/{project_id}/review-queue"): member("reviewer"),
    ("GET", "/api/projects/{project_id}/analytics/progress"): member("manager"),
    ("GET", "/api/projects/{project_id}/analytics/throughput"): member("manager"),
    ("GET", "/api/projects/{project_id}/analytics/time-per-label"): member("manager"),
    ("GET", "/api/projects/{project_id}/analytics/rejections"): member("manager"),
    ("GET", "/api/projects/{project_id}/analytics/review-turnaround"): member("manager"),
    ("GET", "/api/projects/{project_id}/analytics/auto-label"): member("manager"),
    # tasks (the one in the path is labeler-user's) and review
    ("GET", "/api/tasks/{task_id}"): member("labeler"),
    ("GET", "/api/tasks/{task_id}/events"): member("labeler"),
    ("PUT", "/api/tasks/{task_id}/labels"): member("labeler"),
    ("POST", "/api/tasks/{task_id}/start"): member("labeler"),
    ("POST", "/api/tasks/{task_id}/submit"): member("labeler"),
    ("POST", "/api/tasks/{task_id}/skip"): member("labeler"),
    ("POST", "/api/tasks/{task_id}/reopen"): member("manager"),
    ("POST", "/api/tasks/{task_id}/approve"): member("reviewer"),
    ("POST", "/api/tasks/{task_id}/reject"): member("reviewer"),
    ("GET", "/api/tasks/{task_id}/issues"): member("labeler"),
    ("POST", "/api/tasks/{task_id}/issues"): member("labeler"),
    ("POST", "/api/issues/{issue_id}/comments"): member("labeler"),
    ("PATCH", "/api/issues/{issue_id}"): member("labeler"),
    # Auto-Label: reviewers read models and review pre-labels, managers train and apply (the
    # world has no model and no pre-labels: allowed callers get 404 with advice)
    ("GET", "/api/autolabel/models"): at_least("reviewer"),
    ("GET", "/api/autolabel/models/{name}"): at_least("reviewer", ok=REACHED),
    ("GET", "/api/autolabel/models/{name}/versions/{version}/onnx"): at_least(
        "manager", ok=REACHED),
    ("POST", "/api/datasets/{dataset_id}/autolabel/train"): at_least("manager"),
    ("POST", "/api/datasets/{dataset_id}/autolabel/apply"): at_least("manager"),
    ("POST", "/api/datasets/{dataset_id}/autolabel/next"): at_least("manager"),
    ("GET", "/api/datasets/{dataset_id}/autolabel/review-queue"): at_least("reviewer",
                                                                          ok=REACHED),
    ("POST", "/api/datasets/{dataset_id}/autolabel/review/accept"): at_least("reviewer"),
    ("POST", "/api/datasets/{dataset_id}/autolabel/review/reject"): at_least("reviewer"),
}

#: Routes outside the OpenAPI schema that the walk covers too.
EXTRA_ROUTES = [("HEAD", "/api/health"), ("HEAD", "/"), ("GET", "/static/labelwise.css"),
                ("GET", "/api/docs")]
#: Run last for each caller: signing out ends the session the walk uses.
LAST = [("POST", "/api/auth/logout")]


@dataclass
class World:
    ws: labelwise.Workspace
    data: Imported
    users: dict[str, int] = field(default_factory=dict)  # caller -> user id
    owner_token_id: int = 0
    ids: dict[str, int] = field(default_factory=dict)  # path parameter -> value


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def world(workspace: labelwise.Workspace, imported: Imported) -> World:
    w = World(workspace, imported)
    for caller, role in WORKSPACE_ROLE.items():
        w.users[caller] = make_user(workspace, f"{caller}-user", role).id
    make_user(workspace, "leaver-user", "labeler")
    owner = make_client(workspace, user="owner-user")
    w.owner_token_id = _ok(owner.post("/api/auth/tokens", json={"name": "matrix"}), 201)["id"]
    # The project, made by manager-user (its project manager), with a reviewer, a labeler
    # who has one task, a member to remove, a class to remove, an issue and an export.
    boss = make_client(workspace, user="manager-user")
    project = _ok(boss.post("/api/projects", json={"name": "matrix", "dataset": w.data.name}),
                  201)
    pid = project["id"]
    for username, role in (("reviewer-user", "reviewer"), ("labeler-user", "labeler"),
                           ("leaver-user", "labeler")):
        _ok(boss.put(f"/api/projects/{pid}/members", json={"user": username, "role": role}))
    asset_id = min(w.data.files)
    _ok(boss.post(f"/api/projects/{pid}/assign",
                  json={"users": ["labeler-user"], "asset_ids": [asset_id]}))
    tasks = _ok(make_client(workspace, user="labeler-user").get(f"/api/projects/{pid}/tasks"))
    [task] = [t for t in tasks["items"] if t["asset_id"] == asset_id]
    spare = _ok(boss.post(f"/api/projects/{pid}/classes", json={"name": "spare"}), 201)
    reviewer = make_client(workspace, user="reviewer-user")
    issue = _ok(reviewer.post(f"/api/tasks/{task['id']}/issues",
                              json={"body": "check", "x": 3.0, "y": 4.0}), 201)
    export = _ok(boss.post(f"/api/projects/{pid}/exports",
                           json={"format": "coco", "approved_only": False}), 201)
    w.ids = {
        "dataset_id": w.data.dataset_id,
        "asset_id": asset_id,
        "user_id": w.users["labeler"],
        "token_id": w.owner_token_id,
        "project_id": pid,
        "member_id": make_user(workspace, "leaver-user", "labeler").id,
        "class_id": spare["id"],
        "task_id": task["id"],
        "issue_id": issue["id"],
        "export_id": export["id"],
        "name": "no-such-model",
        "version": 1,
    }
    return w


def path_values(w: World) -> dict[str, int]:
    """A real id for every path parameter name the app uses."""
    return w.ids


def schema_routes(client: TestClient) -> list[tuple[str, str]]:
    schema = client.get("/api/openapi.json").json()
    return [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]


def app_routes(client: TestClient) -> set[tuple[str, str]]:
    """Every method and path the app serves, schema or not (the static mount aside)."""
    return {
        (method, route.path_format)
        for route in client.app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def walk_order(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [r for r in routes if r not in LAST] + [r for r in routes if r in LAST]


def judge(rule: int | str, method: str, status: int) -> bool:
    reached = status not in (401, 403) and status < 500
    if rule == OK:
        return status < 400 if method in ("GET", "HEAD") else reached
    if rule == REACHED:
        return reached
    if rule == HIDDEN:
        return status == 404
    return status == rule


def call(client: TestClient, method: str, url: str):
    if method in ("POST", "PUT", "PATCH"):
        return client.request(method, url, json={})
    return client.request(method, url)


def test_every_route_has_an_entry(client):
    served = set(schema_routes(client)) | app_routes(client) | set(EXTRA_ROUTES)
    missing = sorted(served - set(EXPECTED))
    assert not missing, (
        f"routes without an entry in EXPECTED of {__file__}: {missing}. Add one per route "
        "saying who may call it (at_least(role), signed_in(), public(), exactly(...))."
    )
    stale = sorted(set(EXPECTED) - served)
    assert not stale, f"EXPECTED names routes the app no longer has: {stale}"
    for key, rule in EXPECTED.items():
        assert set(rule) == set(CALLERS), f"{key}: the rule must name every caller"


def test_role_matrix(world: World):
    values = path_values(world)
    clients: dict[str, TestClient] = {"anonymous": make_client(world.ws, user=None)}
    for caller in WORKSPACE_ROLE:
        clients[caller] = make_client(world.ws, user=f"{caller}-user")
    routes = walk_order(schema_routes(clients["owner"]) + EXTRA_ROUTES)
    wrong = []
    for caller in CALLERS:
        for method, path in routes:
            rule = EXPECTED[(method, path)][caller]
            url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
            assert "{" not in url, f"add a value for the parameters of {path} to path_values()"
            r = call(clients[caller], method, url)
            if not judge(rule, method, r.status_code):
                wrong.append(f"{caller:9} {method:6} {url}: expected {rule}, got "
                             f"{r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_denied_single_asset_looks_like_a_missing_one(world: World):
    outsider = make_client(world.ws, user="outsider-user")
    asset_id = world.ids["asset_id"]
    hidden = assert_error(outsider.get(f"/api/assets/{asset_id}"), 404, "NotFoundError")
    missing = assert_error(outsider.get("/api/assets/999999"), 404, "NotFoundError")
    assert hidden["message"] == missing["message"].replace("999999", str(asset_id))


def test_a_labeler_sees_only_the_assets_assigned_to_them(world: World):
    labeler = make_client(world.ws, user="labeler-user")
    given = world.ids["asset_id"]
    assert labeler.get(f"/api/assets/{given}").status_code == 200
    assert labeler.get(f"/api/assets/{given}/image").status_code == 200
    for other in set(world.data.files) - {given}:
        assert_error(labeler.get(f"/api/assets/{other}"), 404, "NotFoundError")
        assert_error(labeler.get(f"/api/assets/{other}/thumbnail"), 404, "NotFoundError")
    # A single asset never opens its dataset.
    assert_error(labeler.get(f"/api/datasets/{world.data.dataset_id}/assets"), 403,
                 "PermissionDeniedError")


# -- CSRF and Bearer tokens ----------------------------------------------------------------
def test_cookie_post_without_or_with_wrong_csrf_is_refused(world: World):
    c = make_client(world.ws, user="labeler-user")
    good = c.headers.pop("X-CSRF-Token")
    assert_error(c.post("/api/auth/tokens", json={"name": "x"}), 403, "PermissionDeniedError",
                 contains="X-CSRF-Token")
    bad = c.post("/api/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": good + "x"})
    assert_error(bad, 403, "PermissionDeniedError", contains="X-CSRF-Token")
    assert c.get("/api/auth/tokens").status_code == 200  # reads need no CSRF token
    ok = c.post("/api/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": good})
    assert ok.status_code == 201


def test_csrf_token_of_another_session_is_refused(world: World):
    a = make_client(world.ws, user="labeler-user")
    b = make_client(world.ws, user="reviewer-user")
    r = a.post("/api/auth/tokens", json={"name": "x"},
               headers={"X-CSRF-Token": b.headers["X-CSRF-Token"]})
    assert_error(r, 403, "PermissionDeniedError")


def test_bearer_token_needs_no_csrf_and_no_cookie(world: World):
    owner = make_client(world.ws, user="owner-user")
    token = owner.post("/api/auth/tokens", json={"name": "script"}).json()["token"]
    script = make_client(world.ws, user=None)
    auth = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/auth/me", headers=auth).json()["auth"] == "token"
    made = script.post("/api/auth/tokens", json={"name": "another"}, headers=auth)
    assert made.status_code == 201
    assert script.get("/api/datasets", headers=auth).status_code == 200


@pytest.mark.parametrize(
    "header", ["Bearer lw_not-a-real-token", "Bearer ", "Basic b3duZXI6eA==", "lw_abc"]
)
def test_bad_authorization_header_answers_401(world: World, header: str):
    anon = make_client(world.ws, user=None)
    r = anon.get("/api/datasets", headers={"Authorization": header})
    assert_error(r, 401, "AuthenticationError", contains="token")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_revoked_token_stops_working(world: World):
    owner = make_client(world.ws, user="owner-user")
    made = owner.post("/api/auth/tokens", json={"name": "short-lived"}).json()
    auth = {"Authorization": f"Bearer {made['token']}"}
    anon = make_client(world.ws, user=None)
    assert anon.get("/api/auth/me", headers=auth).status_code == 200
    assert owner.delete(f"/api/auth/tokens/{made['id']}").status_code == 204
    assert_error(anon.get("/api/auth/me", headers=auth), 401, "AuthenticationError")


# -- passwords and throttling --------------------------------------------------------------
def test_wrong_password_does_not_say_whether_the_user_exists(world: World):
    anon = make_client(world.ws, user=None)
    wrong = anon.post("/api/auth/login", json={"username": "labeler-user", "password": "nope!"})
    unknown = anon.post("/api/auth/login", json={"username": "nobody", "password": "nope!"})
    a = assert_error(wrong, 401, "AuthenticationError")
    b = assert_error(unknown, 401, "AuthenticationError")
    assert a == b and "wrong username or password" in a["message"]


def test_login_accepts_json_only(world: World):
    """A cross-site HTML form cannot send JSON, so it cannot sign a browser in."""
    anon = make_client(world.ws, user=None)
    r = anon.post("/api/auth/login", data={"username": "owner-user", "password": PASSWORD})
    assert r.status_code == 422
    assert "labelwise_session" not in r.cookies


def test_failed_logins_are_throttled_per_username(world: World):
    anon = make_client(world.ws, user=None)
    limit = world.ws.settings.login_user_limit
    for _ in range(limit):
        r = anon.post("/api/auth/login", json={"username": "admin-user", "password": "bad-pw!"})
        assert r.status_code == 401
    # Now even the right password waits: the check comes before the password is looked at.
    r = anon.post("/api/auth/login", json={"username": "ADMIN-user", "password": PASSWORD})
    err = assert_error(r, 429, "TooManyRequestsError", contains="wait")
    window = world.ws.settings.login_window_minutes * 60
    assert 0 < int(r.headers["retry-after"]) <= window + 1
    # Other users are unaffected.
    assert login(make_client(world.ws, user=None), "manager-user")
    # Once the failures leave the window, the user signs in again.
    with world.ws.session() as s:
        for row in s.scalars(select(LoginAttemptRow)):
            row.attempted_at = as_utc(row.attempted_at) - timedelta(seconds=window)
        s.commit()
    assert login(anon, "admin-user")
    assert "admin-user" not in err["message"]


def test_failed_logins_are_throttled_per_address(world: World):
    anon = make_client(world.ws, user=None)
    limit = world.ws.settings.login_address_limit
    for i in range(limit):
        r = anon.post("/api/auth/login", json={"username": f"guess{i}", "password": "bad-pw!"})
        assert r.status_code == 401
    r = anon.post("/api/auth/login", json={"username": "owner-user", "password": PASSWORD})
    assert_error(r, 429, "TooManyRequestsError", contains="address")
    assert int(r.headers["retry-after"]) >= 1


# -- secrets -------------------------------------------------------------------------------
def test_secrets_are_not_stored_or_logged_in_plain_text(world: World, caplog):
    caplog.set_level(logging.DEBUG)
    anon = make_client(world.ws, user=None)
    secret_password = "Very-secret-pa55word"
    owner = make_client(world.ws, user="owner-user")
    made = owner.post("/api/users", json={"username": "sam", "password": secret_password,
                                          "role": "labeler"})
    assert made.status_code == 201
    r = anon.post("/api/auth/login", json={"username": "sam", "password": secret_password})
    session_token, csrf = r.cookies["labelwise_session"], r.json()["csrf_token"]
    anon.headers["X-CSRF-Token"] = csrf
    token = anon.post("/api/auth/tokens", json={"name": "ci"}).json()["token"]
    anon.post("/api/auth/login", json={"username": "sam", "password": secret_password + "x"})
    # A password typed into the username field by mistake is not kept either.
    anon.post("/api/auth/login", json={"username": secret_password, "password": "x"})
    secrets = [secret_password, session_token, csrf, token, token.removeprefix("lw_")]
    dump = []
    with world.ws.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            dump.extend(repr(tuple(row)) for row in conn.execute(select(table)))
    text_dump = "\n".join(dump)
    assert "argon2id" in text_dump  # the hash is there ...
    for secret in secrets:
        assert secret not in text_dump  # ... the secrets are not
        assert secret not in caplog.text
    with world.ws.session() as s:
        prefixes = [t.prefix for t in s.scalars(select(ApiTokenRow))]
    assert token[:10] in prefixes and all(len(p) == 10 for p in prefixes)


def test_clients_helpers_cover_every_role(client_for: Callable[..., TestClient]):
    for role in ROLES:
        assert client_for(role).get("/api/auth/me").json()["role"] == role
