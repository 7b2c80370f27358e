"""Routes, one module per resource. ``ROUTERS`` is what the app includes, in order."""

from labelwise.server.routes import assets, curate, datasets, docs, embeddings, health, pages
from labelwise.server.routes import auth, users
from labelwise.server.routes import analytics, projects, review, tasks
from labelwise.server.routes import autolabel

ROUTERS = [health.router, datasets.router, assets.router, embeddings.router, pages.router]
ROUTERS += [curate.router, docs.router]
ROUTERS += [auth.router, users.router]
ROUTERS += [projects.router, tasks.router, review.router, analytics.router]
ROUTERS += [autolabel.router]

__all__ = ["ROUTERS"]
