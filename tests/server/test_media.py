"""Image bytes and thumbnails: exact bytes, media types, caching headers, lazy thumbnails."""

from __future__ import annotations

import uuid
from io import BytesIO

import pytest
from PIL import Image

import labelwise
from labelwise.server import media
from labelwise.storage import image_key
from tests.server.helpers import Imported, assert_error, import_test_dataset, make_client

IMMUTABLE = "public, max-age=31536000, immutable"


def asset_json(client, asset_id: int) -> dict:
    return client.get(f"/api/assets/{asset_id}").json()


def test_image_is_the_original_file_with_its_media_type(client, imported: Imported):
    for aid, path in imported.files.items():
        r = client.get(f"/api/assets/{aid}/image")
        assert r.status_code == 200
        assert r.content == path.read_bytes()
        expected = "image/jpeg" if path.suffix == ".jpg" else "image/png"
        assert r.headers["content-type"] == expected
        assert r.headers["x-content-type-options"] == "nosniff"


def test_image_url_with_content_version_is_cached_forever(client, imported: Imported):
    aid = next(iter(imported.files))
    asset = asset_json(client, aid)
    r = client.get(asset["image_url"])
    assert r.headers["cache-control"] == IMMUTABLE
    assert r.headers["etag"] == f'"{asset["content_hash"]}"'
    # Without the version (or with a stale one) the id alone names the image: revalidate.
    for url in (f"/api/assets/{aid}/image", f"/api/assets/{aid}/image?v=0123456789abcdef"):
        r = client.get(url)
        assert r.headers["cache-control"] == "public, no-cache"
        assert r.headers["etag"] == f'"{asset["content_hash"]}"'


@pytest.mark.parametrize("header", ['"{h}"', 'W/"{h}"', '"other", "{h}"', "*"])
def test_image_etag_answers_304(client, imported: Imported, header):
    aid = next(iter(imported.files))
    asset = asset_json(client, aid)
    r = client.get(asset["image_url"],
                   headers={"If-None-Match": header.format(h=asset["content_hash"])})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == f'"{asset["content_hash"]}"'
    assert r.headers["cache-control"] == IMMUTABLE


def test_image_with_another_etag_is_sent(client, imported: Imported):
    aid, path = next(iter(imported.files.items()))
    r = client.get(f"/api/assets/{aid}/image", headers={"If-None-Match": '"stale"'})
    assert r.status_code == 200 and r.content == path.read_bytes()


def test_thumbnail_is_smaller_webp_and_cached_in_the_blob_store(
    client, workspace, imported: Imported, monkeypatch
):
    aid, path = next((a, p) for a, p in imported.files.items() if p.suffix == ".png")
    asset = asset_json(client, aid)
    key = media.thumbnail_key(asset["content_hash"], 64)
    assert not workspace.store.exists(key)

    version = asset["content_hash"][:16]
    r = client.get(f"/api/assets/{aid}/thumbnail", params={"size": 64, "v": version})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/webp"
    assert r.headers["cache-control"] == IMMUTABLE
    thumb = Image.open(BytesIO(r.content))
    assert thumb.format == "WEBP"
    original = Image.open(path)
    assert max(thumb.size) == 64 and max(original.size) > 64
    aspect = original.size[0] / original.size[1]
    assert thumb.size[0] / thumb.size[1] == pytest.approx(aspect, abs=0.05)
    assert workspace.store.exists(key)
    assert workspace.store.get_bytes(key) == r.content

    def must_not_render(*_args, **_kwargs):
        raise AssertionError("the cached thumbnail was rendered again")

    monkeypatch.setattr(media, "render_thumbnail", must_not_render)
    again = client.get(f"/api/assets/{aid}/thumbnail", params={"size": 64})
    assert again.status_code == 200 and again.content == r.content
    assert again.headers["etag"] == r.headers["etag"]
    assert again.headers["cache-control"] == "public, no-cache"  # no version in the URL
    not_modified = client.get(f"/api/assets/{aid}/thumbnail", params={"size": 64},
                              headers={"If-None-Match": r.headers["etag"]})
    assert not_modified.status_code == 304


def test_thumbnail_of_a_jpeg_and_sizes_differ_by_etag(client, imported: Imported):
    aid = next(a for a, p in imported.files.items() if p.suffix == ".jpg")
    small = client.get(f"/api/assets/{aid}/thumbnail", params={"size": 32})
    default = client.get(asset_json(client, aid)["thumbnail_url"])
    assert max(Image.open(BytesIO(small.content)).size) == 32
    assert max(Image.open(BytesIO(default.content)).size) == 240  # never upscaled past 240x160
    assert small.headers["etag"] != default.headers["etag"]


@pytest.mark.parametrize("size", [31, 1025, 0])
def test_thumbnail_size_out_of_range_answers_422(client, imported: Imported, size):
    aid = next(iter(imported.files))
    err = assert_error(client.get(f"/api/assets/{aid}/thumbnail", params={"size": size}),
                       422, "RequestValidationError")
    assert err["problems"][0].startswith("query.size: ")


def test_missing_blob_answers_500_without_revealing_the_store_path(
    client, workspace, imported: Imported
):
    aid = next(iter(imported.files))
    asset = asset_json(client, aid)
    workspace.store.delete(image_key(asset["content_hash"], asset["format"]))
    for url in (f"/api/assets/{aid}/image", f"/api/assets/{aid}/thumbnail"):
        err = assert_error(client.get(url), 500, "StorageError", contains="missing")
        assert str(workspace.path) not in err["message"]


def test_damaged_blob_answers_500_for_thumbnails(client, workspace, imported: Imported):
    aid = next(iter(imported.files))
    asset = asset_json(client, aid)
    workspace.store.put_bytes(image_key(asset["content_hash"], asset["format"]), b"not an image")
    assert_error(client.get(f"/api/assets/{aid}/thumbnail"), 500, "StorageError",
                 contains="cannot be decoded")


def test_images_and_thumbnails_from_a_non_local_blob_store(tmp_path):
    """A store without local files (fsspec memory://) is read into memory instead."""
    ws = labelwise.init(tmp_path / "ws", storage_url=f"memory://lw-{uuid.uuid4().hex}")
    try:
        assert ws.store.local_path("x") is None
        imported = import_test_dataset(ws, tmp_path / "src")
        client = make_client(ws)
        aid, path = next(iter(imported.files.items()))
        assert client.get(f"/api/assets/{aid}/image").content == path.read_bytes()
        r = client.get(f"/api/assets/{aid}/thumbnail", params={"size": 40})
        assert max(Image.open(BytesIO(r.content)).size) == 40
        assert client.get(f"/api/assets/{aid}/thumbnail", params={"size": 40}).content == r.content
    finally:
        ws.close()


def test_render_thumbnail_keeps_transparency_and_aspect():
    buf = BytesIO()
    Image.new("RGBA", (300, 100), (255, 0, 0, 0)).save(buf, "PNG")
    thumb = Image.open(BytesIO(media.render_thumbnail(buf.getvalue(), size=150)))
    assert thumb.size == (150, 50)
    assert thumb.mode == "RGBA" and thumb.getpixel((10, 10))[3] == 0


@pytest.mark.parametrize(
    "header, expected",
    [(None, False), ("", False), ('"a"', True), ('W/"a"', True), ('"b", "a"', True),
     ('"b"', False), ("*", True), ('"ab"', False)],
)
def test_etag_matches(header, expected):
    assert media.etag_matches(header, '"a"') is expected
