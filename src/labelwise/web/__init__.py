"""Browser assets served by ``labelwise.server``: Jinja2 templates and static files.

No build step: templates render on the server, CSS and (later) plain ES modules are served
as they are from ``static/`` under ``/static``.
"""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "WEB_DIR"]
