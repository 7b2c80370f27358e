"""Routes, one module per resource. ``ROUTERS`` is what the app includes, in order."""

from labelwise.server.routes import assets, curate, datasets, embeddings, health, pages
from labelwise.server.routes import auth, users
from labelwise.server.routes import analytics, projects, review, tasks

ROUTERS = [health.router, datasets.router, assets.router, embeddings.router, pages.router]
ROUTERS += [curate.router]
ROUTERS += [auth.router, users.router]
ROUTERS += [projects.router, tasks.router, review.router, analytics.router]

__all__ = ["ROUTERS"]
