"""The team workflow: projects, members, tasks and their audit log, review issues."""

from __future__ import annotations

from labelwise.db.models import Base  # noqa: F401
