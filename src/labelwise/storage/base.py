"""The blob-store interface, its backends and the registry that picks one by URL scheme."""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from labelwise.errors import ConfigError, StorageError


def image_key(content_hash: str, fmt: str) -> str:
    """Where an image's bytes live: 256 folders by the hash's first byte (as git does)."""
    return f"images/{content_hash[:2]}/{content_hash}.{fmt.lower()}"


class BlobStore(ABC):
    """Bytes by key. Keys are relative, '/'-separated, and never start with '/' or contain '..'."""

    url: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def put_file(self, key: str, path: Path) -> None:
        self.put_bytes(key, Path(path).read_bytes())

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for the key when the store is a local folder, else None."""
        return None

    @staticmethod
    def _check_key(key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/") or "\\" in key:
            raise StorageError(f"invalid blob key {key!r}")
        return key


class LocalBlobStore(BlobStore):
    """A folder on disk. Writes go to a temporary file first, then rename: no torn blobs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = str(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root_str = str(self.root)
        self._made: set[str] = set()
        self._seq = itertools.count()

    def _path(self, key: str) -> Path:
        return self.root / self._check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        # Plain strings, a cached folder set and a cheap unique temp name: imports store
        # hundreds of thousands of small files, where pathlib and mkstemp dominate.
        path = os.path.join(self._root_str, self._check_key(key))
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        tmp = f"{folder}/.tmp-{os.getpid()}-{threading.get_ident()}-{next(self._seq)}"
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as err:
            raise StorageError(f"blob {key!r} is missing from {self.root}") from err

    def exists(self, key: str) -> bool:
        return os.path.exists(os.path.join(self._root_str, self._check_key(key)))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


class FsspecBlobStore(BlobStore):
    """Any fsspec filesystem (s3://, gcs://, memory://, ...)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url.rstrip("/")
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as err:
            raise ConfigError(
                f"storage URL {url!r} cannot be opened: {err}. Install the fsspec backend "
                "for its scheme (s3fs for s3://, gcsfs for gcs://)."
            ) from err

    def _path(self, key: str) -> str:
        return f"{self.base}/{self._check_key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError as err:
            raise StorageError(f"blob {key!r} is missing from {self.url}") from err

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm_file(path)


#: Backends by URL scheme; the empty scheme is a plain path.
BACKENDS: dict[str, Callable[[str], BlobStore]] = {
    "": LocalBlobStore,
    "file": lambda url: LocalBlobStore(urlparse(url).path),
}


def open_store(url: str) -> BlobStore:
    """Open the blob store at ``url`` (a folder path or any fsspec URL)."""
    scheme = urlparse(url).scheme if "://" in url else ""
    factory = BACKENDS.get(scheme, FsspecBlobStore)
    return factory(url)
