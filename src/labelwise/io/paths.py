"""Keep every path a dataset names inside the folder it belongs to."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from labelwise.errors import UnsafePathError


def normalize_relpath(path: str) -> str:
    """'./a\\b/c.jpg' -> 'a/b/c.jpg'. Raises UnsafePathError for absolute or escaping paths."""
    raw = path.replace("\\", "/")
    if not raw or raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise UnsafePathError(
            f"path {path!r} is absolute; image paths must be relative to the images folder"
        )
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePathError(
            f"path {path!r} escapes the images folder (uses '..'); "
            "move the image inside the folder and use a path relative to it"
        )
    return "/".join(parts)


def resolve_inside(root: Path, relpath: str) -> Path:
    """The real file for ``relpath`` under ``root``; symlinks that lead outside are refused."""
    rel = normalize_relpath(relpath)
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root_real / rel))
    if target != root_real and root_real not in target.parents:
        raise UnsafePathError(
            f"path {relpath!r} resolves to {target}, outside the images folder {root_real} "
            "(a symlink out?); copy the file into the folder instead"
        )
    return target
