"""Signing in and out, cookies, sessions, passwords, API tokens and user management over HTTP,
on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import labelwise
from labelwise.db.account_models import ApiTokenRow, WebSessionRow
from labelwise.server import create_app
from labelwise.workflow.accounts import as_utc, utcnow
from tests.server.helpers import PASSWORD, assert_error, login, make_client, make_user


def cookie_headers(response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/api/auth/login", json={"username": username, "password": password})


# -- sign in and out -----------------------------------------------------------------------
def test_login_sets_an_httponly_session_cookie_and_a_readable_csrf_cookie(anon, workspace):
    make_user(workspace, "ana", "labeler")
    r = sign_in(anon, "ANA")
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["username"] == "ana" and body["user"]["role"] == "labeler"
    assert "password_hash" not in body["user"]
    cookies = cookie_headers(r)
    session, csrf = cookies["labelwise_session"].lower(), cookies["labelwise_csrf"].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert "httponly" not in csrf and "samesite=lax" in csrf
    assert "secure" not in session  # plain http here
    assert r.cookies["labelwise_csrf"] == body["csrf_token"]
    assert r.headers["cache-control"] == "no-store"
    assert anon.get("/api/auth/me").json()["auth"] == "session"


def test_cookies_are_secure_over_https_or_when_configured(workspace):
    make_user(workspace, "ana", "labeler")
    https = TestClient(create_app(workspace), base_url="https://localhost")
    assert "secure" in cookie_headers(sign_in(https, "ana"))["labelwise_session"].lower()
    settings = workspace.settings.model_copy(update={"secure_cookies": True})
    forced = TestClient(create_app(workspace, settings=settings), base_url="http://localhost")
    assert "secure" in cookie_headers(sign_in(forced, "ana"))["labelwise_session"].lower()


def test_logout_ends_the_session_for_good(client):
    old_cookie = client.cookies["labelwise_session"]
    r = client.post("/api/auth/logout")
    assert r.status_code == 204
    assert 'labelwise_session=""' in r.headers["set-cookie"] or "max-age=0" in r.headers[
        "set-cookie"].lower()
    replay = TestClient(client.app, base_url="http://localhost",
                        cookies={"labelwise_session": old_cookie})
    assert_error(replay.get("/api/auth/me"), 401, "AuthenticationError", contains="sign in")


def test_signing_in_again_replaces_the_session(client):
    first = client.cookies["labelwise_session"]
    login(client, "owner")
    assert client.cookies["labelwise_session"] != first
    stale = TestClient(client.app, base_url="http://localhost",
                       cookies={"labelwise_session": first})
    assert stale.get("/api/auth/me").status_code == 401


def test_login_validates_its_body(anon):
    r = anon.post("/api/auth/login", json={"username": "a", "pasword": "typo"})
    err = assert_error(r, 422, "RequestValidationError")
    assert any("pasword" in p for p in err["problems"])


# -- sessions end on their own -------------------------------------------------------------
@pytest.mark.parametrize("how", ["lifetime", "idle"])
def test_sessions_end_after_their_lifetime_or_when_idle(client, workspace, how):
    with workspace.session() as s:
        for row in s.scalars(select(WebSessionRow)):
            if how == "lifetime":
                row.expires_at = utcnow() - timedelta(seconds=1)
            else:
                idle = workspace.settings.session_idle_hours
                row.last_seen_at = utcnow() - timedelta(hours=idle, seconds=1)
        s.commit()
    assert_error(client.get("/api/auth/me"), 401, "AuthenticationError")
    with workspace.session() as s:
        assert s.scalars(select(WebSessionRow)).all() == []  # swept on sight


def test_active_sessions_record_when_they_were_last_seen(client, workspace):
    past = utcnow() - timedelta(hours=1)
    with workspace.session() as s:
        s.scalars(select(WebSessionRow)).one().last_seen_at = past
        s.commit()
    assert client.get("/api/auth/me").status_code == 200
    with workspace.session() as s:
        assert as_utc(s.scalars(select(WebSessionRow)).one().last_seen_at) > past


# -- passwords -----------------------------------------------------------------------------
def test_password_change_needs_the_current_one_and_ends_other_sessions(workspace, imported):
    make_user(workspace, "ana", "labeler")
    here, elsewhere = make_client(workspace, user="ana"), make_client(workspace, user="ana")
    wrong = here.post("/api/auth/password",
                      json={"current_password": "not-it-1", "new_password": "New-pa55word"})
    assert_error(wrong, 401, "AuthenticationError", contains="current password")
    short = here.post("/api/auth/password",
                      json={"current_password": PASSWORD, "new_password": "short"})
    assert_error(short, 422, "ValidationError", contains="at least 8")
    ok = here.post("/api/auth/password",
                   json={"current_password": PASSWORD, "new_password": "New-pa55word"})
    assert ok.status_code == 204
    assert here.get("/api/auth/me").status_code == 200  # this session stays
    assert elsewhere.get("/api/auth/me").status_code == 401  # the other one ended
    anon = make_client(workspace, user=None)
    assert sign_in(anon, "ana").status_code == 401
    assert sign_in(anon, "ana", "New-pa55word").status_code == 200


# -- API tokens ----------------------------------------------------------------------------
def test_tokens_are_listed_without_their_secret(client):
    made = client.post("/api/auth/tokens", json={"name": "ci", "expires_days": 7})
    assert made.status_code == 201
    body = made.json()
    assert body["token"].startswith("lw_") and body["prefix"] == body["token"][:10]
    assert body["active"] is True and body["expires_at"] is not None
    assert made.headers["cache-control"] == "no-store"
    listed = client.get("/api/auth/tokens").json()["items"]
    assert [t["name"] for t in listed] == ["ci"]
    assert "token" not in listed[0] and body["token"] not in str(listed)


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"name": "x" * 101}, {"name": "ci", "expires_days": 0},
             {"name": "ci", "expires_days": 100000}, {"name": "ci", "scope": "all"}],
)
def test_bad_token_requests_are_refused(client, body):
    assert_error(client.post("/api/auth/tokens", json=body), 422, "RequestValidationError")


def test_expired_tokens_answer_401(client, workspace):
    token = client.post("/api/auth/tokens", json={"name": "ci", "expires_days": 1}).json()
    auth = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/auth/me", headers=auth).status_code == 200
    with workspace.session() as s:
        s.get(ApiTokenRow, token["id"]).expires_at = utcnow() - timedelta(seconds=1)
        s.commit()
    assert_error(client.get("/api/auth/me", headers=auth), 401, "AuthenticationError",
                 contains="expired")
    assert client.get("/api/auth/tokens").json()["items"][0]["active"] is False


def test_revoking_a_missing_token_is_404(client):
    assert_error(client.delete("/api/auth/tokens/12345"), 404, "NotFoundError",
                 contains="no API token with id 12345")


# -- users ---------------------------------------------------------------------------------
def test_admins_manage_users_but_not_owners(workspace, imported):
    make_user(workspace, "adam", "admin")
    admin = make_client(workspace, user="adam")
    made = admin.post("/api/users", json={"username": "Lena", "password": "pw-Lena-123",
                                          "role": "labeler", "display_name": "Lena K."})
    assert made.status_code == 201
    lena = made.json()
    assert lena["username"] == "lena" and lena["display_name"] == "Lena K."
    assert_error(admin.post("/api/users", json={"username": "o2", "password": "pw-long-12",
                                                "role": "owner"}),
                 403, "PermissionDeniedError", contains="only an owner")
    assert_error(admin.post("/api/users", json={"username": "LENA", "password": "pw-long-12",
                                                "role": "labeler"}),
                 409, "ConflictError", contains="taken")
    r = admin.patch(f"/api/users/{lena['id']}", json={"role": "reviewer"})
    assert r.status_code == 200 and r.json()["role"] == "reviewer"
    owner_id = make_user(workspace, "owner", "owner").id
    assert_error(admin.patch(f"/api/users/{owner_id}", json={"is_active": False}),
                 403, "PermissionDeniedError", contains="only an owner")
    assert_error(admin.patch(f"/api/users/{lena['id']}", json={"role": "owner"}),
                 403, "PermissionDeniedError")
    assert_error(admin.get("/api/users/99999"), 404, "NotFoundError", contains="no user")


def test_the_last_owner_stays_an_active_owner(client, workspace):
    me = client.get("/api/auth/me").json()
    assert_error(client.patch(f"/api/users/{me['id']}", json={"role": "admin"}),
                 409, "ConflictError", contains="last owner")
    assert_error(client.patch(f"/api/users/{me['id']}", json={"is_active": False}),
                 409, "ConflictError", contains="last owner")
    other = client.post("/api/users", json={"username": "o2", "password": "pw-long-12",
                                            "role": "owner"})
    assert other.status_code == 201  # an owner may make an owner
    r = client.patch(f"/api/users/{me['id']}", json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"


def test_deactivated_users_lose_sessions_and_tokens(client, workspace):
    make_user(workspace, "ana", "manager")
    ana = make_client(workspace, user="ana")
    token = ana.post("/api/auth/tokens", json={"name": "ci"}).json()["token"]
    ana_id = ana.get("/api/auth/me").json()["id"]
    r = client.patch(f"/api/users/{ana_id}", json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert ana.get("/api/auth/me").status_code == 401
    anon = make_client(workspace, user=None)
    assert anon.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code \
        == 401
    assert_error(sign_in(anon, "ana"), 401, "AuthenticationError", contains="deactivated")
    assert client.patch(f"/api/users/{ana_id}", json={"is_active": True}).status_code == 200
    assert sign_in(anon, "ana").status_code == 200


def test_an_admin_password_reset_ends_the_users_sessions(client, workspace):
    make_user(workspace, "ana", "labeler")
    ana = make_client(workspace, user="ana")
    ana_id = ana.get("/api/auth/me").json()["id"]
    assert_error(client.patch(f"/api/users/{ana_id}", json={"password": "short"}),
                 422, "ValidationError")
    assert ana.get("/api/auth/me").status_code == 200  # a refused reset changes nothing
    r = client.patch(f"/api/users/{ana_id}", json={"password": "Reset-pa55", "display_name": "A"})
    assert r.status_code == 200 and r.json()["display_name"] == "A"
    assert ana.get("/api/auth/me").status_code == 401
    assert sign_in(make_client(workspace, user=None), "ana", "Reset-pa55").status_code == 200


def test_managers_read_users_and_labelers_do_not(client_for):
    manager = client_for("manager")
    names = [u["username"] for u in manager.get("/api/users").json()["items"]]
    assert "manager-user" in names
    assert_error(manager.post("/api/users", json={"username": "x1", "password": "pw-long-12",
                                                  "role": "labeler"}),
                 403, "PermissionDeniedError", contains="admin role")
    assert_error(client_for("labeler").get("/api/users"), 403, "PermissionDeniedError",
                 contains="manager role")


# -- the landing page ----------------------------------------------------------------------
def test_landing_page_asks_anonymous_visitors_to_sign_in(anon, imported):
    r = anon.get("/")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert "Sign in required" in r.text and "labelwise user add" in r.text
    assert imported.name not in r.text and "SQLite" not in r.text


def test_landing_page_shows_datasets_to_managers_only(client_for, imported):
    labeler = client_for("labeler").get("/")
    assert labeler.status_code == 200 and "labeler-user (labeler)" in labeler.text
    assert imported.name not in labeler.text and "managers and above" in labeler.text
    manager = client_for("manager").get("/")
    assert manager.status_code == 200 and imported.name in manager.text


def test_openapi_documents_both_ways_to_sign_in(client):
    schema = client.get("/api/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert schemes["SessionCookie"]["name"] == "labelwise_session"
    assert "security" not in schema["paths"]["/api/health"]["get"]
    assert schema["paths"]["/api/datasets"]["get"]["security"]


def test_health_needs_no_sign_in_and_tells_nothing_else(workspace: labelwise.Workspace):
    r = make_client(workspace, user=None).get("/api/health")
    assert r.status_code == 200 and set(r.json()) == {"status", "version"}


def test_control_characters_are_refused_not_crashed_on(client, anon):
    """PostgreSQL cannot store NUL; such input is a clear 4xx, never a 500."""
    r = anon.post("/api/auth/login", json={"username": "ana\x00", "password": "whatever-1"})
    assert_error(r, 401, "AuthenticationError")
    assert_error(client.post("/api/auth/tokens", json={"name": "ci\x00"}), 422,
                 "ValidationError", contains="control characters")
    made = client.post("/api/users", json={"username": "nul", "password": "pw-long-123",
                                           "role": "labeler", "display_name": "a\nb"})
    assert_error(made, 422, "ValidationError", contains="display name")
    assert_error(client.post("/api/users", json={"username": "n\x00l", "password": "pw-long-1",
                                                 "role": "labeler"}),
                 422, "ValidationError", contains="not allowed")
