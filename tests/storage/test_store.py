"""Blob stores: a local folder and any fsspec URL (memory:// here) behave the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labelwise.errors import ConfigError, StorageError
from labelwise.storage import image_key, open_store
from labelwise.storage.base import BlobStore, FsspecBlobStore, LocalBlobStore

BAD_KEYS = ["", "/etc/passwd", "../x", "a/../../x", "a/..", "..", "a\\b", "/abs/key"]


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    s = FsspecBlobStore(f"memory://labelwise-test-{uuid.uuid4().hex}")
    yield s
    if s.fs.exists(s.base):  # the memory filesystem lives as long as the process
        s.fs.rm(s.base, recursive=True)


def test_put_get_exists_delete(store):
    key = "images/ab/abcdef.png"
    assert not store.exists(key)
    store.put_bytes(key, b"\x89PNG data")
    assert store.exists(key)
    assert store.get_bytes(key) == b"\x89PNG data"
    store.put_bytes(key, b"replaced")  # same key again: the last write wins, whole
    assert store.get_bytes(key) == b"replaced"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting what is gone is not an error: cleanup paths rely on it


def test_put_file_and_empty_blobs(store, tmp_path):
    src = tmp_path / "photo.jpg"
    src.write_bytes(b"jpeg bytes" * 1000)
    store.put_file("exports/x.zip", src)
    assert store.get_bytes("exports/x.zip") == src.read_bytes()
    store.put_bytes("empty", b"")
    assert store.exists("empty") and store.get_bytes("empty") == b""


def test_missing_blob_is_a_storage_error_naming_the_key(store):
    with pytest.raises(StorageError) as info:
        store.get_bytes("images/00/missing.jpg")
    assert "blob 'images/00/missing.jpg' is missing from" in str(info.value)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_leave_the_store_are_refused(store, key):
    for call in (lambda: store.put_bytes(key, b"x"), lambda: store.get_bytes(key),
                 lambda: store.exists(key), lambda: store.delete(key)):
        with pytest.raises(StorageError, match="invalid blob key"):
            call()


def test_local_store_never_writes_outside_its_root(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    for key in BAD_KEYS:
        with pytest.raises(StorageError):
            store.put_bytes(key, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs"]
    assert list((tmp_path / "blobs").iterdir()) == []


def test_local_store_writes_whole_files_and_leaves_no_temporaries(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    for i in range(20):
        store.put_bytes(f"images/{i % 3:02d}/{i}.png", bytes([i]) * 100)
    files = sorted(p for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    assert len(files) == 20
    assert not [p for p in files if p.name.startswith(".tmp-")]
    path = store.local_path("images/01/4.png")
    assert path == tmp_path / "blobs" / "images/01/4.png" and path.read_bytes() == b"\x04" * 100


def test_local_path_only_for_local_stores(tmp_path):
    assert FsspecBlobStore(f"memory://lp-{uuid.uuid4().hex}").local_path("a") is None
    assert LocalBlobStore(tmp_path).local_path("a/b") == tmp_path.resolve() / "a/b"


def test_open_store_picks_the_backend_by_scheme(tmp_path):
    assert isinstance(open_store(str(tmp_path / "a")), LocalBlobStore)
    local = open_store(f"file://{tmp_path / 'b'}")
    assert isinstance(local, LocalBlobStore) and local.root == (tmp_path / "b").resolve()
    mem = open_store(f"memory://os-{uuid.uuid4().hex}/prefix/")
    assert isinstance(mem, FsspecBlobStore) and not mem.url.endswith("/")
    mem.put_bytes("k", b"v")
    assert open_store(mem.url).get_bytes("k") == b"v"  # the same place when reopened


def test_unknown_scheme_is_a_config_error_with_advice():
    with pytest.raises(ConfigError) as info:
        open_store("nosuchscheme://bucket/prefix")
    assert "storage URL 'nosuchscheme://bucket/prefix' cannot be opened" in str(info.value)
    assert "Install the fsspec backend" in str(info.value)


def test_image_key_fans_out_by_hash():
    digest = "ab" + "0" * 62
    key = image_key(digest, "PNG")
    assert key.startswith("images/ab/") and key.endswith(f"{digest}.png")
    assert BlobStore._check_key(key) == key
