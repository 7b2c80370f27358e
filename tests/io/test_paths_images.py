"""Safe paths (io/paths.py) and image probing (io/images.py), tested directly."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelwise.errors import ImageError, UnsafePathError
from labelwise.io.images import is_image_name, probe_bytes, probe_file
from labelwise.io.paths import MAX_PATH_CHARS, PathResolver, normalize_relpath, resolve_inside

LIMIT = 178_956_970


# -- paths --------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,normal", [
    ("a.jpg", "a.jpg"),
    ("./a.jpg", "a.jpg"),
    ("sub/dir/a.jpg", "sub/dir/a.jpg"),
    ("sub//dir/./a.jpg", "sub/dir/a.jpg"),
    ("sub\\dir\\a.jpg", "sub/dir/a.jpg"),  # Windows separators
    ("name with spaces ü.png", "name with spaces ü.png"),
    ("..a.jpg", "..a.jpg"),  # dots inside a name are fine
    ("a..b/c.jpg", "a..b/c.jpg"),
])
def test_normalize_relpath(raw, normal):
    assert normalize_relpath(raw) == normal


@pytest.mark.parametrize("raw,fragment", [
    ("../x.jpg", "escapes the images folder (uses '..')"),
    ("a/../../x.jpg", "escapes the images folder"),
    ("a/../x.jpg", "escapes the images folder"),  # even when it would land inside: no '..' at all
    ("..\\x.jpg", "escapes the images folder"),
    ("/etc/passwd", "is absolute; image paths must be relative to the images folder"),
    ("\\\\server\\share\\x.jpg", "is absolute"),
    ("C:\\images\\x.jpg", "is absolute"),
    ("c:x.jpg", "is absolute"),
    ("", "names no file"),
    (".", "names no file"),
    ("./", "names no file"),
    ("a\x00.jpg", "holds a NUL character; rename the file"),
    ("d/" * 600 + "x.jpg", f"characters long; the limit is {MAX_PATH_CHARS}"),
])
def test_unsafe_paths(raw, fragment):
    with pytest.raises(UnsafePathError) as info:
        normalize_relpath(raw)
    assert fragment in str(info.value)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with a file, a subfolder, links inside and links out; outside/ beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    (root / "sub/b.jpg").write_bytes(b"b")
    (outside / "secret.jpg").write_bytes(b"s")
    (root / "link-in.jpg").symlink_to(root / "sub/b.jpg")
    (root / "link-out.jpg").symlink_to(outside / "secret.jpg")
    (root / "relative-out.jpg").symlink_to(Path("..") / "outside" / "secret.jpg")
    (root / "dir-in").symlink_to(root / "sub", target_is_directory=True)
    (root / "dir-out").symlink_to(outside, target_is_directory=True)
    (root / "sub/up").symlink_to(Path(".."), target_is_directory=True)  # back to root: fine
    return root


INSIDE = {"a.jpg": "a.jpg", "sub/b.jpg": "sub/b.jpg", "link-in.jpg": "sub/b.jpg",
          "dir-in/b.jpg": "sub/b.jpg", "sub/up/a.jpg": "a.jpg", "missing.jpg": "missing.jpg"}
OUTSIDE = ["link-out.jpg", "relative-out.jpg", "dir-out/secret.jpg"]


def test_resolve_inside(tree):
    real_root = tree.resolve()
    for rel, target in INSIDE.items():
        assert resolve_inside(tree, rel) == real_root / target
    for rel in OUTSIDE:
        with pytest.raises(UnsafePathError) as info:
            resolve_inside(tree, rel)
        text = str(info.value)
        assert f"path {rel!r} resolves to" in text and "outside the images folder" in text
        assert "copy the file into the folder instead" in text
    with pytest.raises(UnsafePathError, match="escapes"):
        resolve_inside(tree, "../outside/secret.jpg")


def test_path_resolver_agrees_with_resolve_inside(tree):
    resolver = PathResolver(tree)
    for _ in range(2):  # the second round answers from its folder cache
        for rel in INSIDE:
            assert resolver.resolve(rel).resolve() == resolve_inside(tree, rel).resolve()
        for rel in OUTSIDE:
            with pytest.raises(UnsafePathError):
                resolver.resolve(rel)


def test_a_root_that_is_itself_a_link_is_fine(tree, tmp_path):
    alias = tmp_path / "alias"
    alias.symlink_to(tree, target_is_directory=True)
    assert resolve_inside(alias, "a.jpg") == tree.resolve() / "a.jpg"
    assert PathResolver(alias).resolve("sub/b.jpg").read_bytes() == b"b"
    with pytest.raises(UnsafePathError):
        resolve_inside(alias, "link-out.jpg")


# -- images -------------------------------------------------------------------------------------

def _encode(fmt: str, size=(40, 30), mode="RGB", **save) -> bytes:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def png_header(width: int, height: int, tail: bytes | None = None) -> bytes:
    """A valid PNG signature and IHDR claiming ``width`` x ``height``, then ``tail``.

    The default tail is a tiny IDAT and IEND: almost no pixels, whatever the header says.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    if tail is None:
        tail = chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + tail


@pytest.mark.parametrize("fmt,ext,mode", [
    ("JPEG", "jpg", "RGB"), ("PNG", "png", "RGBA"), ("WEBP", "webp", "RGB"),
    ("BMP", "bmp", "RGB"), ("TIFF", "tiff", "RGB"), ("GIF", "gif", "P"), ("PNG", "png", "L"),
])
def test_probe_reads_size_format_and_hash(fmt, ext, mode):
    data = _encode(fmt, mode=mode)
    info = probe_bytes(data, name="x", max_pixels=LIMIT)
    assert (info.width, info.height, info.format, info.size_bytes) == (40, 30, ext, len(data))
    assert info.content_hash == hashlib.sha256(data).hexdigest()


def test_camera_jpegs_with_a_preview_are_jpegs():
    """Pillow calls a JPEG with an embedded second image MPO; it is stored as a .jpg."""
    im = Image.new("RGB", (40, 30), (200, 10, 10))
    buf = io.BytesIO()
    im.save(buf, format="MPO", save_all=True, append_images=[im.resize((20, 15))])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    assert probe_bytes(buf.getvalue(), name="x", max_pixels=LIMIT).format == "jpg"


@pytest.mark.parametrize("data,fragments", [
    (b"", ["x.png: the file is empty; replace it with the real image"]),
    (b"name,label\ncat.jpg,cat\n", ["not an image file Pillow can read", "JPEG/PNG/WebP"]),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, ["x.png: "]),
    (_encode("PPM"), ["PPM images are not supported; convert it to JPEG or PNG"]),
    (_encode("PNG")[:-100], ["corrupt or truncated", "re-export or re-download it"]),
    (_encode("JPEG")[:400], ["corrupt or truncated"]),
])
def test_probe_refuses_broken_files(data, fragments):
    with pytest.raises(ImageError) as info:
        probe_bytes(data, name="x.png", max_pixels=LIMIT)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_truncation_goes_unnoticed_without_decoding():
    cut = _encode("PNG")[:-100]
    info = probe_bytes(cut, name="x", max_pixels=LIMIT, verify=False)
    assert (info.width, info.height) == (40, 30)


@pytest.fixture
def pillow_limit(monkeypatch):
    """Restore Pillow's global limit after a test that makes the probe raise it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def test_decompression_bomb_is_refused_from_the_header(pillow_limit):
    with pytest.raises(ImageError) as info:
        probe_bytes(png_header(20_000, 20_000), name="bomb.png", max_pixels=LIMIT)
    text = str(info.value)
    assert "bomb.png: 400,000,000 pixels exceeds the limit of 178,956,970 pixels" in text
    assert "(a decompression bomb?)" in text and "raise LABELWISE_MAX_IMAGE_PIXELS" in text


def test_a_lower_limit_is_ours_to_set():
    data = _encode("PNG")  # 40 x 30 = 1,200 pixels
    with pytest.raises(ImageError, match="40x30 = 1,200 pixels exceeds the limit of 1,000 pixels"):
        probe_bytes(data, name="x", max_pixels=1000)
    assert probe_bytes(data, name="x", max_pixels=1200).width == 40


def test_a_higher_limit_is_ours_too_not_pillows(pillow_limit):
    """Pillow alone refuses anything over ~89M pixels; the configured limit must decide."""
    header = png_header(10_000, 10_000)  # 100M pixels: over Pillow's default, under ours
    info = probe_bytes(header, name="big.png", max_pixels=LIMIT, verify=False)
    assert (info.width, info.height) == (10_000, 10_000)
    huge = png_header(30_000, 30_000)  # 900M
    assert probe_bytes(huge, name="h", max_pixels=10**9, verify=False).width == 30_000
    with pytest.raises(ImageError, match="exceeds the limit of 800,000,000"):
        probe_bytes(huge, name="h", max_pixels=800_000_000, verify=False)


def test_probe_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(_encode("PNG"))
    assert probe_file(path, name="a.png", max_pixels=LIMIT).width == 40
    with pytest.raises(ImageError, match="gone.png: file not found at .*; check the images folder"):
        probe_file(tmp_path / "gone.png", name="gone.png", max_pixels=LIMIT)
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        probe_file(tmp_path, name="dir", max_pixels=LIMIT)


def test_is_image_name():
    assert all(is_image_name(n) for n in ["a.jpg", "b.JPEG", "c.png", "d.webp", "e.tif", "f.GIF"])
    assert not any(is_image_name(n) for n in ["a.txt", "b.json", "jpg", "c.jpg.xml", ".png.bak"])
