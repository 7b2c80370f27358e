"""Opaque keyset cursors for workflow lists: a small JSON object, base64url-encoded."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from labelwise.errors import LabelwiseError


def encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode(cursor: str | None, *, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The position a cursor holds, or None for the first page; a bad cursor is a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(position, dict) or set(position) != set(keys):
            raise ValueError(position)
        for key in keys:
            value = position[key]
            if value is not None and not isinstance(value, int | float | str):
                raise ValueError(value)
        if not isinstance(position.get("id", 0), int) or not 0 <= position.get("id", 0) < 2**63:
            raise ValueError(position)
        return position
    except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError) as err:
        raise LabelwiseError(
            f"invalid cursor {cursor[:80]!r}; pass the next_cursor of the previous page"
        ) from err
