"""/api/docs: Swagger UI served from local files, under the page CSP, with nothing from a CDN."""

from __future__ import annotations

import re

from labelwise.server.security import PAGE_CSP
from labelwise.web import STATIC_DIR
from tests.server.helpers import make_client

URL_ATTRIBUTE = re.compile(r'\b(?:src|href)="([^"]*)"')
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL)


def test_api_docs_page_references_only_local_files_that_exist(sqlite_workspace):
    anon = make_client(sqlite_workspace, user=None)
    page = anon.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP
    html = page.text
    assert 'data-openapi-url="/api/openapi.json"' in html
    urls = URL_ATTRIBUTE.findall(html)
    assert sorted(urls) == ["/static/api-docs.js", "/static/vendor/swagger-ui/swagger-ui-bundle.js",
                            "/static/vendor/swagger-ui/swagger-ui.css"]
    assert "http://" not in html and "https://" not in html and "//" not in "".join(urls)
    for url in urls:
        r = anon.get(url)
        assert r.status_code == 200, url
        assert len(r.content) > 400, url
    # the CSP allows no inline code: every script is a file
    for attributes, body in SCRIPT_TAG.findall(html):
        assert "src=" in attributes and not body.strip()
    assert anon.get(urls[1]).headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))
    assert anon.get("/api/openapi.json").status_code == 200


def test_api_docs_start_swagger_ui_on_our_schema():
    script = (STATIC_DIR / "api-docs.js").read_text()
    assert "SwaggerUIBundle(" in script and "dataset.openapiUrl" in script
    assert "X-CSRF-Token" in script  # "Try it out" works from a signed-in browser
    vendored = STATIC_DIR / "vendor" / "swagger-ui"
    assert "Apache License" in (vendored / "LICENSE").read_text()  # shipped with its licence
    assert "`swagger-ui-dist` 5." in (vendored / "README.md").read_text()


def test_cdn_backed_default_docs_pages_are_off(sqlite_workspace):
    anon = make_client(sqlite_workspace, user=None)
    for path in ("/docs", "/redoc", "/api/redoc"):
        assert anon.get(path).status_code == 404, path
