"""Similarity, near-duplicates and the map end to end: real images, the real backbone.

60 Fashion-MNIST images plus three planted edited copies (horizontal flip, JPEG re-encode at
quality 90, centre crop to 90% of the area) are imported and embedded; the copies must come
out as near-duplicates of their originals and rank their original first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

import labelwise
from labelwise.cli.main import app
from labelwise.embeddings import search
from labelwise.embeddings.duplicates import DEFAULT_THRESHOLD
from labelwise.embeddings.verify import VERIFIED_THRESHOLD
from labelwise.errors import ImageError, NotFoundError, ValidationError
from labelwise.samples import write_fashion_mnist_folders
from labelwise.storage import image_key
from tests.helpers import make_image

runner = CliRunner()

DATASET = "fm"
EDITS = ("flip", "jpeg", "crop")


def _crop_area(im: Image.Image, fraction: float) -> Image.Image:
    w, h = im.size
    side = fraction**0.5
    cw, ch = round(w * side), round(h * side)
    x, y = (w - cw) // 2, (h - ch) // 2
    return im.crop((x, y, x + cw, y + ch))


def write_planted(dest: Path) -> dict[str, str]:
    """60 Fashion-MNIST images in class folders plus 3 edited copies; copy path -> original."""
    write_fashion_mnist_folders(dest, n=60, seed=1)
    files = sorted(dest.rglob("*.png"))
    planted = {}
    for how, original in zip(EDITS, (files[0], files[25], files[50]), strict=True):
        im = Image.open(original)
        if how == "flip":
            copy = original.with_name(f"{original.stem}-flip.png")
            ImageOps.mirror(im).save(copy)
        elif how == "jpeg":
            copy = original.with_name(f"{original.stem}-jpeg.jpg")
            im.convert("RGB").save(copy, quality=90)
        else:
            copy = original.with_name(f"{original.stem}-crop.png")
            _crop_area(im, 0.9).save(copy)
        planted[copy.relative_to(dest).as_posix()] = original.relative_to(dest).as_posix()
    return planted


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("planted")
    return folder, write_planted(folder)


def import_and_embed(ws: labelwise.Workspace, folder: Path) -> dict[str, int]:
    """Import the planted folder as DATASET, embed it; asset id by path."""
    ws.import_dataset("classfolders", folder, dataset=DATASET)
    report = ws.embed(DATASET)
    assert report.embedded == 63 and not report.failed
    return {a["path"]: a["id"] for a in ws.list_assets(DATASET, limit=1000)["items"]}


@pytest.fixture
def embedded(workspace, planted_dir):
    folder, planted = planted_dir
    return workspace, import_and_embed(workspace, folder), planted


@pytest.fixture
def embedded_sqlite(sqlite_workspace, planted_dir):
    folder, planted = planted_dir
    return sqlite_workspace, import_and_embed(sqlite_workspace, folder), planted


def test_planted_copies_are_found_and_rank_their_original_first(embedded):
    ws, ids, planted = embedded
    report = search.near_duplicates(ws, DATASET)
    assert report.threshold == VERIFIED_THRESHOLD and report.num_embedded == 63
    groups = {frozenset(m["asset"]["path"] for m in g["members"]) for g in report.groups}
    assert groups == {frozenset(pair) for pair in planted.items()}
    assert report.num_duplicates == 3
    for g in report.groups:
        members = [m["asset_id"] for m in g["members"]]
        assert members == sorted(members) and g["representative"] in members
        assert all(0 <= m["distance"] <= VERIFIED_THRESHOLD for m in g["members"])
    for copy, original in planted.items():
        matches = search.similar_to_asset(ws, ids[copy], k=5)
        assert len(matches) == 5
        assert matches[0]["asset"]["path"] == original, copy
        assert matches[0]["distance"] <= DEFAULT_THRESHOLD < matches[1]["distance"]
        assert ids[copy] not in [m["asset"]["id"] for m in matches]
        distances = [m["distance"] for m in matches]
        assert distances == sorted(distances)


def test_an_uploaded_copy_finds_itself_then_its_original(embedded):
    ws, ids, planted = embedded
    copy, original = next((c, o) for c, o in planted.items() if c.endswith(".jpg"))
    stored = {a["path"]: a for a in ws.list_assets(DATASET, limit=1000)["items"]}
    asset = stored[copy]
    image_bytes = ws.store.get_bytes(image_key(asset["content_hash"], asset["format"]))
    matches = search.similar_to_image(ws, DATASET, image_bytes, k=3)
    assert [m["asset"]["path"] for m in matches[:2]] == [copy, original]
    assert matches[0]["distance"] < 1e-4  # embedded exactly as the pipeline did


def test_the_map_is_stored_and_reused(embedded):
    ws, ids, _ = embedded
    with pytest.raises(NotFoundError, match=f"labelwise embed-map {DATASET}"):
        search.load_map(ws, DATASET)
    made = search.get_or_compute_map(ws, DATASET)
    assert made.method == "umap"
    assert made.points.shape == (63, 2) and made.points.dtype == np.float32
    assert made.points.min() >= 0 and made.points.max() <= 1
    assert sorted(made.ids.tolist()) == sorted(ids.values())
    points_key, ids_key, _ = search.map_keys(made.dataset_id, made.model, made.size)
    assert ws.store.exists(points_key) and ws.store.exists(ids_key)
    loaded = search.load_map(ws, DATASET)
    np.testing.assert_array_equal(loaded.points, made.points)
    np.testing.assert_array_equal(loaded.ids, made.ids)
    again = search.compute_map(ws, DATASET)  # same embeddings, same seed: same map
    np.testing.assert_array_equal(again.points, made.points)
    pca = ws.embedding_map(DATASET, recompute=True, method="pca")
    assert pca.method == "pca" and ws.embedding_map(DATASET).method == "pca"


def test_a_dataset_without_embeddings_says_to_embed_it(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    make_image(tmp_path / "raw" / "a.png", seed=1)
    ws.import_dataset("folder", tmp_path / "raw", dataset="raw")
    for call in (
        lambda: search.near_duplicates(ws, "raw"),
        lambda: search.compute_map(ws, "raw"),
        lambda: search.similar_to_image(ws, "raw", b"not looked at", k=3),
        lambda: ws.similar(ws.list_assets("raw")["items"][0]["id"]),
    ):
        with pytest.raises(NotFoundError, match="labelwise embed raw"):
            call()


def test_an_asset_added_after_embedding_has_no_neighbours_yet(embedded_sqlite, tmp_path):
    ws, ids, _ = embedded_sqlite
    make_image(tmp_path / "late" / "late.png", seed=5)
    ws.import_dataset("folder", tmp_path / "late", dataset=DATASET)
    late = next(a["id"] for a in ws.list_assets(DATASET, limit=1000)["items"]
                if a["path"] == "late.png")
    with pytest.raises(NotFoundError, match=r"late.png\) has no embedding.*labelwise embed fm"):
        search.similar_to_asset(ws, late)
    ws.embed(DATASET)
    assert len(search.similar_to_asset(ws, late, k=3)) == 3


def test_a_trained_index_is_stored_and_rebuilt_when_embeddings_change(
    embedded_sqlite, tmp_path, monkeypatch
):
    ws, ids, planted = embedded_sqlite
    first = search.near_duplicates(ws, DATASET, index="ivf")
    data = search.load_indexed(ws, DATASET, index="ivf")
    key = search.index_key(data.dataset_id, data.model, data.size)
    assert ws.store.exists(key) and data.index.backend == "ivf"

    def no_building(*_args, **_kwargs):
        raise AssertionError("the stored index should have been used")

    monkeypatch.setattr(search, "build_index", no_building)
    assert search.near_duplicates(ws, DATASET, index="ivf").groups == first.groups
    stored = ws.store.get_bytes(key)
    monkeypatch.undo()
    # New images: the embeddings' digest changes and the index is rebuilt and replaced.
    make_image(tmp_path / "more" / "new.png", seed=9)
    ws.import_dataset("folder", tmp_path / "more", dataset=DATASET)
    ws.embed(DATASET)
    rebuilt = search.load_indexed(ws, DATASET, index="ivf")
    assert rebuilt.index.size == 64 and ws.store.get_bytes(key) != stored
    # Exact indexes are a copy of the vectors: nothing is stored for them.
    exact = search.load_indexed(ws, DATASET, index="exact")
    assert exact.index.backend == "exact" and exact.digest == rebuilt.digest


def test_bad_requests_are_clear_errors(embedded_sqlite):
    ws, ids, _ = embedded_sqlite
    with pytest.raises(ImageError, match="uploaded image: not an image"):
        search.similar_to_image(ws, DATASET, b"this is not an image", k=3)
    with pytest.raises(ValidationError, match="k must be between 1 and 1000"):
        search.similar_to_asset(ws, next(iter(ids.values())), k=0)
    with pytest.raises(ValidationError, match="choose one of auto, exact, ivf"):
        search.near_duplicates(ws, DATASET, index="annoy")
    with pytest.raises(ValidationError, match="cosine distance between 0 and 2"):
        search.near_duplicates(ws, DATASET, threshold=3)
    with pytest.raises(ValidationError, match="choose one of umap, pca"):
        search.compute_map(ws, DATASET, method="tsne")
    with pytest.raises(NotFoundError, match="no embeddings .* at 112 px"):
        search.near_duplicates(ws, DATASET, size=112)
    with pytest.raises(NotFoundError, match="no asset with id 999999"):
        search.similar_to_asset(ws, 999_999)


# -- the CLI -------------------------------------------------------------------------------------
def run(*args, ws: labelwise.Workspace):
    return runner.invoke(app, [str(a) for a in args], env={"LABELWISE_WORKSPACE": str(ws.path)})


def test_cli_similar_duplicates_and_map(embedded_sqlite, planted_dir):
    ws, ids, planted = embedded_sqlite
    folder, _ = planted_dir
    copy, original = next(iter(planted.items()))
    r = run("similar", ids[copy], "-k", 3, ws=ws)
    assert r.exit_code == 0, r.output
    [first_row] = [line for line in r.output.splitlines() if line.startswith("│ 1 ")]
    assert original in first_row
    r = run("similar", ids[copy], "-k", 3, "--json", ws=ws)
    matches = json.loads(r.output)
    assert matches[0]["asset"]["path"] == original and len(matches) == 3
    r = run("similar", "--image", folder / copy, "--dataset", DATASET, "--json", ws=ws)
    assert r.exit_code == 0, r.output
    assert [m["asset"]["path"] for m in json.loads(r.output)[:2]] == [copy, original]

    r = run("duplicates", DATASET, ws=ws)
    assert r.exit_code == 0, r.output
    assert "3 near-duplicate groups" in r.output
    assert all(c in r.output and o in r.output for c, o in planted.items())
    r = run("duplicates", DATASET, "--threshold", 0.0001, "--json", ws=ws)
    assert json.loads(r.output)["num_groups"] == 0

    r = run("embed-map", DATASET, "--method", "pca", "--json", ws=ws)
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["method"] == "pca" and len(body["points"]) == 63
    assert {p[0] for p in body["points"]} == set(ids.values())
    r = run("embed-map", DATASET, ws=ws)
    assert r.exit_code == 0 and "mapped 63 images" in r.output and "umap" in r.output


def test_cli_errors_are_advice(embedded_sqlite, tmp_path):
    ws, ids, _ = embedded_sqlite
    r = run("similar", ws=ws)
    assert r.exit_code == 65 and "give an ASSET_ID" in r.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    r = run("similar", "--image", bad, "-d", DATASET, ws=ws)
    assert r.exit_code == 65 and "not an image" in r.output and "Traceback" not in r.output
    r = run("duplicates", "nope", ws=ws)
    assert r.exit_code == 3 and "no dataset 'nope'" in r.output
    r = run("embed-map", DATASET, "--method", "tsne", ws=ws)
    assert r.exit_code == 65 and "choose one of umap, pca" in r.output



def test_pixel_check_is_what_keeps_the_loose_threshold_precise(embedded):
    ws, _ids, planted = embedded
    loose = search.near_duplicates(ws, DATASET, threshold=VERIFIED_THRESHOLD, verify=False)
    checked = search.near_duplicates(ws, DATASET)
    planted_groups = {frozenset(pair) for pair in planted.items()}
    found = {frozenset(m["asset"]["path"] for m in g["members"]) for g in checked.groups}
    assert found == planted_groups
    # Without the pixel check the same threshold merges look-alike garments too.
    assert loose.num_duplicates > checked.num_duplicates
    plain = search.near_duplicates(ws, DATASET, verify=False)
    assert plain.threshold == DEFAULT_THRESHOLD


def test_size_defaults_to_the_size_the_dataset_was_embedded_at(sqlite_workspace, planted_dir):
    from labelwise.embeddings.pipeline import embed_dataset

    ws = sqlite_workspace
    folder, _planted = planted_dir
    ws.import_dataset("classfolders", folder, dataset=DATASET)
    embed_dataset(ws, DATASET, size=112)
    assert search.resolve_size(ws, "efficientnet-lite0", None, dataset=DATASET) == 112
    assert search.load_indexed(ws, DATASET).size == 112
    embed_dataset(ws, DATASET, size=224)  # the model's own size wins once it exists
    assert search.resolve_size(ws, "efficientnet-lite0", None, dataset=DATASET) == 224
