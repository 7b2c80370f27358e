"""The web server: a FastAPI app over a workspace, and ``serve`` to run it with uvicorn.

    from labelwise.config import Settings
    from labelwise.server import serve
    serve(Settings(workspace="my-workspace"))        # http://127.0.0.1:8000/
"""

from __future__ import annotations

import logging
import os

from labelwise.config import Settings
from labelwise.errors import ConfigError
from labelwise.server.app import create_app, open_from_settings
from labelwise.server.security import is_loopback

__all__ = ["create_app", "serve", "settings_env"]

log = logging.getLogger("labelwise.server")


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as LABELWISE_* variables, so worker processes rebuild the same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name == "workspace":
            value = value.resolve()
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env[f"LABELWISE_{name.upper()}"] = text
    return env


def serve(settings: Settings, *, workers: int = 1, reload: bool = False) -> None:
    """Run the web server on ``settings.host:settings.port`` until interrupted.

    Workers are separate processes that each open the workspace (use PostgreSQL for more
    than one: SQLite allows one writer at a time). ``reload`` restarts on code changes.
    """
    import uvicorn

    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, got {workers}")
    # Open once up front: migrations run once, and a wrong path or URL fails here, not in
    # every worker.
    open_from_settings(settings).close()
    os.environ.update(settings_env(settings))
    if not is_loopback(settings.host):
        log.warning(
            "listening on %s: labelwise has no sign-in yet, so anyone who can reach this "
            "address can read every dataset in the workspace",
            settings.host,
        )
    uvicorn.run(
        "labelwise.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        reload=reload,
        reload_dirs=[os.path.dirname(os.path.dirname(__file__))] if reload else None,
        server_header=False,
    )
