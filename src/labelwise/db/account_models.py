"""Accounts: users, API tokens, web sessions, login throttling."""

from __future__ import annotations

from labelwise.db.models import Base  # noqa: F401
