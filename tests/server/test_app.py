"""The app as a whole: OpenAPI schema, landing page, security baseline, lifecycle, serve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from sqlalchemy import create_engine

import labelwise
from labelwise.config import Settings
from labelwise.db.engine import make_sessionmaker
from labelwise.errors import ConfigError
from labelwise.server import app as app_module
from labelwise.server import create_app, serve, settings_env
from labelwise.server.errors import redact
from labelwise.server.routes import ROUTERS
from labelwise.server.security import PAGE_CSP, default_allowed_hosts, host_name
from tests.server.helpers import (
    NUM_IMAGES,
    Imported,
    assert_error,
    import_test_dataset,
    login,
    make_client,
    make_user,
)

SECRET = "s3cret-Pa55"


# -- OpenAPI ----------------------------------------------------------------------------------
def api_routes() -> list[APIRoute]:
    """Every route the app includes (from the routers, since the app nests them)."""
    routes = [r for router in ROUTERS for r in router.routes]
    assert routes and all(isinstance(r, APIRoute) for r in routes)
    return routes


def test_openapi_schema_is_valid_and_lists_every_route(sqlite_workspace):
    app = create_app(sqlite_workspace)
    schema = app.openapi()
    validate(schema)
    routes = api_routes()
    hidden = [r for r in routes if not r.include_in_schema]
    # only HEAD twins of GET routes, and the docs page (Swagger UI) over the schema
    assert all(r.methods == {"HEAD"} or r.path == "/api/docs" for r in hidden)
    routes = [r for r in routes if r.include_in_schema]
    for route in routes:
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            assert operation["summary"], route.path
            assert operation["tags"], route.path
    paths = set(schema["paths"])
    assert {
        "/", "/api/health", "/api/datasets", "/api/datasets/{dataset_id}",
        "/api/datasets/{dataset_id}/assets", "/api/assets/{asset_id}",
        "/api/assets/{asset_id}/image", "/api/assets/{asset_id}/thumbnail",
    } <= paths
    assert paths == {r.path_format for r in routes}


def is_envelope(schema: dict, ref: str) -> bool:
    """The error envelope, or a model extending it (a 409 that adds the current version)."""
    components = schema["components"]["schemas"]
    model = components[ref.rsplit("/", 1)[-1]]
    detail_ref = model.get("properties", {}).get("error", {}).get("$ref", "")
    detail = components.get(detail_ref.rsplit("/", 1)[-1], {})
    return {"type", "message", "problems"} <= set(detail.get("properties", {}))


def test_every_api_route_declares_its_response(sqlite_workspace):
    app = create_app(sqlite_workspace)
    schema = app.openapi()
    for route in api_routes():
        if not route.path.startswith("/api") or not route.include_in_schema:
            continue
        [method] = route.methods
        responses = schema["paths"][route.path_format][method.lower()]["responses"]
        success = str(route.status_code or 200)
        assert success in responses, route.path
        ok = responses[success].get("content")
        if success == "204":  # no content to describe
            assert ok is None, route.path
        elif route.response_model is None:  # binary routes document their media type
            assert ok and "application/json" not in ok, route.path
        else:
            assert "application/json" in ok and "$ref" in str(ok), route.path
        errors = schema["paths"][route.path_format][method.lower()]["responses"]
        documented = [c for c in errors if c.startswith(("4", "5"))]
        assert documented, f"{route.path} documents no error response"
        assert "503" in documented, route.path
        for code in documented:
            ref = errors[code]["content"]["application/json"]["schema"]["$ref"]
            assert is_envelope(schema, ref), (route.path, code)
    # FastAPI's default 422 model is not what the API answers; the envelope replaced it.
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_openapi_schema_is_served_under_api(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200 and r.json()["info"]["title"] == "labelwise"


# -- landing page ---------------------------------------------------------------------------
def test_landing_page_shows_version_database_and_datasets(client, imported: Imported, backend):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert labelwise.__version__ in html
    assert {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend] in html
    assert "street" in html and f">{NUM_IMAGES}<" in html
    assert f'href="/api/datasets/{imported.dataset_id}"' in html
    assert f'href="/api/datasets/{imported.dataset_id}/assets"' in html
    assert "<script" not in html
    assert r.headers["content-security-policy"] == PAGE_CSP
    assert "default-src 'none'" in PAGE_CSP and "unsafe-inline" not in PAGE_CSP
    assert r.headers["x-frame-options"] == "DENY"
    css = client.get("/static/labelwise.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert 'href="/static/labelwise.css"' in html
    assert client.head("/").status_code == 200


def test_landing_page_escapes_dataset_names(sqlite_workspace, tmp_path):
    import_test_dataset(sqlite_workspace, tmp_path / "src", name="<b>x</b> & co")
    html = make_client(sqlite_workspace).get("/").text
    assert "&lt;b&gt;x&lt;/b&gt; &amp; co" in html and "<b>x</b>" not in html


def test_landing_page_without_datasets_says_how_to_add_one(sqlite_workspace):
    html = make_client(sqlite_workspace).get("/").text
    assert "No datasets yet" in html and "labelwise import" in html


# -- security baseline ----------------------------------------------------------------------
def _unreachable_database(ws: labelwise.Workspace, monkeypatch) -> None:
    """Point the workspace's sessions at a PostgreSQL port nothing listens on."""
    url = f"postgresql+psycopg://labelwise:{SECRET}@127.0.0.1:1/nowhere"
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    monkeypatch.setattr(ws, "_sessions", make_sessionmaker(engine))


def test_unreachable_database_answers_503_without_the_password(sqlite_workspace, monkeypatch):
    client = make_client(sqlite_workspace)
    _unreachable_database(sqlite_workspace, monkeypatch)
    r = client.get("/api/health")
    err = assert_error(r, 503, "DatabaseUnavailableError", contains="LABELWISE_DATABASE_URL")
    assert r.headers["retry-after"]
    assert SECRET not in r.text and SECRET not in err["message"]
    assert_error(client.get("/api/datasets"), 503, "DatabaseUnavailableError")
    page = client.get("/")
    assert page.status_code == 503 and "Database unavailable" in page.text
    assert SECRET not in page.text


def test_unexpected_errors_answer_500_in_the_envelope_without_details(sqlite_workspace):
    app = create_app(sqlite_workspace)

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError(f"internal detail {SECRET}")

    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False)
    r = client.get("/api/boom")
    assert_error(r, 500, "InternalServerError", contains="server log")
    assert SECRET not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_secrets_are_never_echoed():
    assert redact(f"postgresql+psycopg://u:{SECRET}@db:5432/x failed") == (
        "postgresql+psycopg://u:***@db:5432/x failed"
    )
    harmless = "s3://bucket/key and sqlite:////tmp/a.db"
    assert redact(harmless) == harmless
    assert SECRET not in redact(f"a https://me:{SECRET}@host/ b ftp://x:{SECRET}@h c")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST:1"])
def test_loopback_server_answers_loopback_hosts(sqlite_workspace, host):
    client = make_client(sqlite_workspace)
    assert client.get("/api/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", ""]
)
def test_loopback_server_refuses_other_hosts(sqlite_workspace, host):
    """DNS rebinding: a page on evil.example must not read a server bound to 127.0.0.1."""
    client = make_client(sqlite_workspace)
    r = client.get("/api/datasets", headers={"host": host})
    assert_error(r, 400, "HostNotAllowedError", contains="DNS rebinding")
    assert r.headers["x-content-type-options"] == "nosniff"


def test_public_bind_answers_any_host(sqlite_workspace):
    settings = sqlite_workspace.settings.model_copy(update={"host": "0.0.0.0"})
    client = TestClient(create_app(sqlite_workspace, settings=settings))
    assert client.get("/api/health", headers={"host": "labels.example.org"}).status_code == 200


def test_default_bind_is_loopback():
    assert Settings().host == "127.0.0.1"
    assert default_allowed_hosts("127.0.0.1") >= {"localhost", "127.0.0.1", "::1"}
    assert default_allowed_hosts("::1") is not None
    assert default_allowed_hosts("0.0.0.0") is None
    assert host_name("[::1]:80") == "::1" and host_name("Example.org:80") == "example.org"


# -- lifecycle and serving ------------------------------------------------------------------
def test_app_opens_workspace_from_settings_and_closes_it_on_shutdown(tmp_path, monkeypatch):
    ws = labelwise.init(tmp_path / "ws")
    import_test_dataset(ws, tmp_path / "src")
    ws.close()
    closed = []
    monkeypatch.setattr(labelwise.Workspace, "close", lambda self: closed.append(self))
    app = create_app(settings=Settings(workspace=tmp_path / "ws"))
    with TestClient(app, base_url="http://localhost") as client:
        make_user(app.state.workspace, "owner", "owner")
        login(client, "owner")
        assert len(client.get("/api/datasets").json()["items"]) == 1
        assert closed == []
    assert closed == [app.state.workspace]


def test_app_leaves_a_given_workspace_open(sqlite_workspace, monkeypatch):
    closed = []
    monkeypatch.setattr(labelwise.Workspace, "close", lambda self: closed.append(self))
    with TestClient(create_app(sqlite_workspace), base_url="http://localhost") as client:
        client.get("/api/health")
    assert closed == []


def test_app_from_env_reads_labelwise_settings(tmp_path, monkeypatch):
    labelwise.init(tmp_path / "ws").close()
    settings = Settings(workspace=tmp_path / "ws", port=8123)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    app = app_module.app_from_env()
    try:
        assert app.state.workspace.path == (tmp_path / "ws").resolve()
        assert app.state.settings.port == 8123
        assert app.state.settings.model_dump() == settings.model_dump() | {
            "workspace": (tmp_path / "ws").resolve()
        }
    finally:
        app.state.workspace.close()


def test_serve_runs_uvicorn_in_factory_mode(tmp_path, monkeypatch):
    import uvicorn

    labelwise.init(tmp_path / "ws").close()
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    # serve() exports the settings for its workers; keep that out of the other tests.
    monkeypatch.setattr(os, "environ", {**os.environ, "LABELWISE_WORKSPACE": "elsewhere"})
    settings = Settings(workspace=tmp_path / "ws", port=8124)
    serve(settings, workers=3)
    [(target, kw)] = calls
    assert target == "labelwise.server.app:app_from_env"
    assert kw["factory"] is True and kw["workers"] == 3
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8124
    assert Path(os.environ["LABELWISE_WORKSPACE"]) == (tmp_path / "ws").resolve()
    assert os.environ["LABELWISE_PORT"] == "8124"


def test_serve_refuses_zero_workers_and_missing_workspace(tmp_path):
    with pytest.raises(ConfigError, match="workers"):
        serve(Settings(workspace=tmp_path), workers=0)
    with pytest.raises(labelwise.LabelwiseError, match="no labelwise workspace"):
        serve(Settings(workspace=tmp_path / "missing"))
