"""The embedding pipeline on both databases, on real Fashion-MNIST images and photos: cached by
content, resumable, robust to unreadable images, and for annotated objects too."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sqlalchemy import func, select

from labelwise.db.models import AnnotationRow, AssetRow, EmbeddingRow
from labelwise.embeddings import (
    OnnxEmbedder,
    embed_dataset,
    get_model,
    load_embeddings,
    load_object_embeddings,
    register_onnx_model,
)
from labelwise.embeddings.preprocess import crop_box, load_square
from labelwise.errors import NotFoundError, ValidationError
from labelwise.storage import image_key
from tests.embeddings.conftest import channel_means, tiny_onnx, write_cat_coco

SIZE = 32  # small inputs keep the suite fast; the network runs the same at any size


@pytest.fixture
def fm(workspace, fmnist_dir):
    """A workspace with dataset ``fm``: 24 Fashion-MNIST images."""
    workspace.import_dataset("classfolders", fmnist_dir, dataset="fm")
    return workspace


def asset_rows(ws, dataset_id: int = 1) -> list:
    with ws.session() as s:
        return s.execute(
            select(AssetRow.id, AssetRow.path, AssetRow.content_hash, AssetRow.format)
            .where(AssetRow.dataset_id == dataset_id).order_by(AssetRow.id)
        ).all()


def stored_bytes(ws, row) -> bytes:
    return ws.store.get_bytes(image_key(row.content_hash, row.format))


def count_cached(ws) -> int:
    with ws.session() as s:
        return s.scalar(select(func.count()).select_from(EmbeddingRow))


def test_embeds_every_image_once_then_serves_the_cache(fm):
    seen = []
    report = embed_dataset(fm, "fm", size=SIZE, batch_size=8,
                           progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert (report.total, report.unique, report.embedded, report.cached) == (24, 24, 24, 0)
    assert report.failed == [] and report.images_per_second > 0
    assert seen[0] == ("embed", 0, 24) and seen[-1] == ("embed", 24, 24)
    ids, X = load_embeddings(fm, "fm", size=SIZE)
    rows = asset_rows(fm)
    assert ids.tolist() == [r.id for r in rows] and X.shape == (24, 1280)
    # The same vectors as running the model directly on the stored images.
    direct = OnnxEmbedder(get_model(fm)).embed(np.stack([
        load_square(stored_bytes(fm, r), size=SIZE, name=r.path, max_pixels=10**8) for r in rows]))
    np.testing.assert_allclose(X, direct, atol=1e-5)
    again = embed_dataset(fm, "fm", size=SIZE)
    assert (again.embedded, again.cached) == (0, 24)
    assert count_cached(fm) == 24


def test_identical_bytes_are_embedded_once_across_assets_and_datasets(workspace, fmnist_dir,
                                                                     tmp_path):
    src = tmp_path / "src"
    shutil.copytree(fmnist_dir, src)
    first = sorted(src.rglob("*.png"))[0]
    shutil.copy(first, first.parent / "copy-of-first.png")
    workspace.import_dataset("classfolders", src, dataset="a")
    report = embed_dataset(workspace, "a", size=SIZE)
    assert (report.total, report.unique, report.embedded) == (25, 24, 24)
    ids, X = load_embeddings(workspace, "a", size=SIZE)
    by_path = {r.path: r.id for r in asset_rows(workspace)}
    twin = {p: i for p, i in by_path.items() if p.endswith("copy-of-first.png")}
    original = by_path[str(first.relative_to(src))]
    rows = ids.tolist()
    np.testing.assert_array_equal(X[rows.index(original)], X[rows.index(next(iter(twin.values())))])
    workspace.import_dataset("classfolders", fmnist_dir, dataset="b")
    assert embed_dataset(workspace, "b", size=SIZE).embedded == 0  # same bytes, other dataset
    assert load_embeddings(workspace, "b", size=SIZE)[1].shape == (24, 1280)


def test_an_interrupted_run_resumes_where_it_stopped(fm):
    def stop_after_twelve(stage, done, total):
        if done >= 12:
            raise KeyboardInterrupt("stopped by the user")

    with pytest.raises(KeyboardInterrupt):
        embed_dataset(fm, "fm", size=SIZE, batch_size=4, shard_size=4, progress=stop_after_twelve)
    kept = count_cached(fm)
    assert 12 <= kept < 24
    report = embed_dataset(fm, "fm", size=SIZE, batch_size=4, shard_size=4)
    assert (report.embedded, report.cached) == (24 - kept, kept)
    ids, X = load_embeddings(fm, "fm", size=SIZE)
    assert len(ids) == 24 and np.isfinite(X).all()


def test_unreadable_images_are_reported_and_skipped(fm):
    rows = asset_rows(fm)
    corrupt, missing = rows[3], rows[10]
    key = image_key(corrupt.content_hash, corrupt.format)
    data = fm.store.get_bytes(key)
    fm.store.put_bytes(key, data[: len(data) // 2])  # a truncated PNG
    fm.store.delete(image_key(missing.content_hash, missing.format))
    report = embed_dataset(fm, "fm", size=SIZE, batch_size=5)
    assert report.embedded == 22
    failed = {f.asset_id: f for f in report.failed}
    assert set(failed) == {corrupt.id, missing.id}
    assert failed[corrupt.id].path == corrupt.path
    assert "corrupt or truncated" in failed[corrupt.id].reason
    assert "cannot be read" in failed[missing.id].reason and "import the image again" in \
        failed[missing.id].reason
    ids, _ = load_embeddings(fm, "fm", size=SIZE)
    assert corrupt.id not in ids and missing.id not in ids and len(ids) == 22
    again = embed_dataset(fm, "fm", size=SIZE)
    assert again.embedded == 0 and len(again.failed) == 2  # still reported, never cached


def test_a_custom_model_gives_its_planted_answer(fm, tmp_path):
    spec = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.5, 1.0), "scale": 1 / 255}
    register_onnx_model(fm, "means", tiny_onnx(tmp_path / "m.onnx"), input_size=40,
                        output="feat", **spec)
    report = embed_dataset(fm, "fm", model="means")
    assert report.size == 40 and report.embedded == 24
    ids, X = load_embeddings(fm, "fm", model="means", size=40)
    images = np.stack([load_square(stored_bytes(fm, r), size=40, name=r.path, max_pixels=10**8)
                       for r in asset_rows(fm)])
    np.testing.assert_allclose(X, channel_means(images, **spec), atol=1e-5)
    # Re-registering under the same name drops the old vectors with it.
    register_onnx_model(fm, "means", tiny_onnx(tmp_path / "m.onnx"), input_size=40,
                        output="feat", mean=127, std=128, replace=True)
    with pytest.raises(NotFoundError, match="labelwise embed fm --model means --size 40"):
        load_embeddings(fm, "fm", model="means", size=40)


@pytest.fixture
def objects_ws(workspace, tmp_path):
    workspace.import_dataset("coco", write_cat_coco(tmp_path / "coco"), dataset="cats")
    return workspace


def test_object_crops_are_embedded_and_loaded_by_annotation(objects_ws):
    ws = objects_ws
    report = embed_dataset(ws, "cats", size=SIZE, objects=True)
    assert report.objects and (report.total, report.embedded) == (4, 3)
    [hidden] = report.failed  # keypoints all unlabelled and no box: nothing to crop
    assert hidden.path == "cat.jpg" and "no visible keypoints" in hidden.reason
    ann_ids, X = load_object_embeddings(ws, "cats", size=SIZE)
    with ws.session() as s:
        anns = {a.id: a for a in s.scalars(select(AnnotationRow))}
        asset = s.scalar(select(AssetRow))
    objects = sorted(i for i, a in anns.items() if a.bbox_x is not None)
    assert hidden.annotation_id not in objects and len(anns) == 5
    assert ann_ids.tolist() == objects and X.shape == (3, 1280)
    # Box; polygon bounds; bounds of the labelled keypoints (in annotation order).
    expected_bounds = dict(zip(objects, [(120, 20, 300, 270), (140, 50, 120, 130),
                                         (170, 90, 70, 30)], strict=True))
    data = stored_bytes(ws, asset)
    embedder = OnnxEmbedder(get_model(ws))
    for row, ann_id in enumerate(ann_ids.tolist()):
        box = crop_box(expected_bounds[ann_id], width=451, height=300)
        crop = load_square(data, size=SIZE, name="cat.jpg", max_pixels=10**8, box=box)
        np.testing.assert_allclose(X[row], embedder.embed(crop[None])[0], atol=1e-5)
    assert embed_dataset(ws, "cats", size=SIZE, objects=True).embedded == 0
    # Whole-image embeddings are a separate cache.
    with pytest.raises(NotFoundError, match="images of dataset 'cats'"):
        load_embeddings(ws, "cats", size=SIZE)
    assert embed_dataset(ws, "cats", size=SIZE).embedded == 1


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"engine": "spark"}, ValidationError,
         r"unknown engine 'spark'; choose one of: local, ray"),
        ({"size": 8}, ValidationError, "size 8 is not usable"),
        ({"batch_size": 0}, ValidationError, "batch size 0"),
        ({"ray_address": "auto"}, ValidationError, "needs engine='ray'"),
        ({"model": "clip"}, NotFoundError, r"no embedding model 'clip' \(models: "),
        ({"split": "val"}, NotFoundError, "has no split 'val'"),
    ],
)
def test_bad_options_are_refused_before_any_work(fm, options, error, message):
    with pytest.raises(error, match=message):
        embed_dataset(fm, "fm", **options)
    assert count_cached(fm) == 0


def test_workspace_method_and_splits(fm):
    fm.create_split("fm", "val", fraction=0.25, seed=1)
    report = fm.embed("fm", size=SIZE, split="val")
    assert report.total == report.embedded == 6
    ids, _ = load_embeddings(fm, "fm", size=SIZE, split="val")
    assert len(ids) == 6
    with pytest.raises(NotFoundError):
        embed_dataset(fm, "nope", size=SIZE)
