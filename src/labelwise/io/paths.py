"""Keep every path a dataset names inside the folder it belongs to."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from labelwise.errors import UnsafePathError

#: Longest relative image path a workspace keeps (the database column's size).
MAX_PATH_CHARS = 1024


def normalize_relpath(path: str) -> str:
    """'./a\\b/c.jpg' -> 'a/b/c.jpg'. Raises UnsafePathError for absolute or escaping paths."""
    if "\x00" in path:
        raise UnsafePathError(f"path {path!r} holds a NUL character; rename the file")
    if len(path) > MAX_PATH_CHARS:
        raise UnsafePathError(
            f"path {path[:60]!r}... is {len(path)} characters long; the limit is "
            f"{MAX_PATH_CHARS}: move the image to a shorter path"
        )
    raw = path.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise UnsafePathError(
            f"path {path!r} is absolute; image paths must be relative to the images folder"
        )
    parts = [p for p in PurePosixPath(raw).parts if p not in ("", ".")]
    if not parts:
        raise UnsafePathError(f"path {path!r} names no file; give the image's file name")
    if ".." in parts:
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


class PathResolver:
    """``resolve_inside`` for many files under one root, fast.

    ``os.path.realpath`` stats every component of every path; here each folder is resolved once
    and each file costs one ``lstat`` (a symlinked file is then resolved and checked in full).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_real = Path(os.path.realpath(root))
        self._dirs: dict[str, Path] = {}

    def resolve(self, relpath: str) -> Path:
        rel = normalize_relpath(relpath)
        parent, _, name = rel.rpartition("/")
        real_dir = self._dirs.get(parent)
        if real_dir is None:
            real_dir = resolve_inside(self.root, parent) if parent else self.root_real
            self._dirs[parent] = real_dir
        target = real_dir / name
        if os.path.islink(target):
            return resolve_inside(self.root, rel)
        return target
