"""Routes, one module per resource. ``ROUTERS`` is what the app includes, in order."""

from labelwise.server.routes import assets, datasets, embeddings, health, pages

ROUTERS = [health.router, datasets.router, assets.router, embeddings.router, pages.router]

__all__ = ["ROUTERS"]
