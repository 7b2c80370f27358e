"""Auto-Curate on real workspaces (SQLite and PostgreSQL): stored scores, splits, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

import labelwise
from labelwise.curate import service
from labelwise.db.models import AssetScoreRow, ObjectScoreRow, SplitRow
from labelwise.embeddings.pipeline import embed_dataset
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from labelwise.samples import load_fashion_mnist, write_fashion_mnist_folders
from tests.helpers import write_json

SIZE = 64


@pytest.fixture(scope="module")
def labeled_src(tmp_path_factory) -> Path:
    """120 Fashion-MNIST images by class, plus an exact copy of a sneaker filed as trouser."""
    src = write_fashion_mnist_folders(tmp_path_factory.mktemp("fm"), n=120, seed=5)
    sneaker = min((src / "sneaker").iterdir())
    shutil.copy(sneaker, src / "trouser" / "copy-of-a-sneaker.png")
    return src


@pytest.fixture
def labeled(workspace: labelwise.Workspace, labeled_src: Path) -> labelwise.Workspace:
    workspace.import_dataset("classfolders", labeled_src, dataset="fm")
    embed_dataset(workspace, "fm", size=SIZE)
    return workspace


def _asset_id(ws: labelwise.Workspace, path: str) -> int:
    page = ws.list_assets("fm", limit=1000)
    return next(a["id"] for a in page["items"] if a["path"] == path)


def _split_ids(ws: labelwise.Workspace, name: str) -> set[int]:
    ids, cursor = set(), None
    while True:
        page = ws.list_assets("fm", split=name, limit=1000, cursor=cursor)
        ids |= {a["id"] for a in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


# -- scores ---------------------------------------------------------------------------------------
def test_scores_are_stored_for_every_image_and_find_the_planted_copy(labeled):
    run = service.compute_scores(labeled, "fm")
    assert run.items == 121 and run.labeled == 121 and not run.objects
    with labeled.session() as s:
        assert s.scalar(select(func.count()).select_from(AssetScoreRow)) == 121
    copy = _asset_id(labeled, "trouser/copy-of-a-sneaker.png")
    page = labeled.curation_scores("fm", duplicates_only=True)
    groups = {it["asset_id"]: it["duplicate_group"] for it in page["items"]}
    assert copy in groups
    partner = [a for a, g in groups.items() if g == groups[copy] and a != copy]
    assert len(partner) == 1
    assert labeled.list_assets("fm", limit=1000)  # the copy's twin is a real sneaker image
    twin_path = next(a["path"] for a in labeled.list_assets("fm", limit=1000)["items"]
                     if a["id"] == partner[0])
    assert twin_path.startswith("sneaker/")


def test_the_planted_mislabel_ranks_first_with_the_right_suggestion(labeled):
    items = labeled.mislabels("fm", top=3)
    assert items[0]["path"] == "trouser/copy-of-a-sneaker.png"
    assert items[0]["label"] == "trouser" and items[0]["suggested"] == "sneaker"
    assert items[0]["score"] > 0.8
    assert [it["score"] for it in items] == sorted((it["score"] for it in items), reverse=True)


def test_marking_flags_tags_and_survives_a_recompute(labeled):
    items = labeled.mislabels("fm", top=2)
    assert labeled.mark_for_review("fm", items) == 2
    tagged = labeled.list_assets("fm", tag=service.REVIEW_TAG, limit=10)["items"]
    assert {a["id"] for a in tagged} == {it["asset_id"] for it in items}
    service.compute_scores(labeled, "fm")
    page = labeled.curation_scores("fm", flagged=True)
    assert {it["asset_id"] for it in page["items"]} == {it["asset_id"] for it in items}


def test_listing_sorts_filters_and_pages_without_gaps(labeled):
    service.compute_scores(labeled, "fm")
    seen, cursor, values = [], None, []
    while True:
        page = labeled.curation_scores("fm", sort="rarity", limit=7, cursor=cursor)
        seen += [it["asset_id"] for it in page["items"]]
        values += [it["rarity"] for it in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 121
    assert values == sorted(values, reverse=True)
    one = labeled.curation_scores("fm", cluster=0, limit=1000)["items"]
    assert one and all(it["cluster"] == 0 for it in one)
    assert len(one) == one[0]["cluster_size"]
    with pytest.raises(ValidationError, match="sort key"):
        labeled.curation_scores("fm", sort="color")
    with pytest.raises(ValidationError, match="cursor"):
        labeled.curation_scores("fm", sort="rarity", cursor="not-a-cursor")


# -- selection ------------------------------------------------------------------------------------
def test_unlabeled_selection_makes_a_reproducible_split_with_a_summary(labeled):
    a = labeled.curate("fm", budget="10%", name="pick-a", mode="unlabeled", seed=3)
    b = labeled.curate("fm", budget=12, name="pick-b", mode="unlabeled", seed=3)
    assert a.asset_ids == b.asset_ids and len(a.asset_ids) == 12
    assert _split_ids(labeled, "pick-a") == set(a.asset_ids)
    s = a.summary
    assert s["pool"] == 121 and s["selected"] == 12 and s["duplicates_selected_twice"] == 0
    assert s["clusters_covered"] >= 10
    assert sum(c["selected"] for c in s["classes"]) == 12
    with labeled.session() as sess:
        info = sess.scalar(select(SplitRow.info).where(SplitRow.name == "pick-a"))
    assert info["curate"]["mode"] == "unlabeled" and info["curate"]["seed"] == 3


def test_labeled_selection_is_balanced_and_leaves_out_the_mislabel(labeled):
    sel = labeled.curate("fm", budget=40, name="small")  # auto: the images are labeled
    assert sel.mode == "labeled"
    per_class = {c["class"]: c["selected"] for c in sel.summary["classes"]}
    # Every class keeps at least half of its balanced share (4); the rest of the budget
    # goes to the examples nearest the decision boundaries, of any class.
    assert len(per_class) == 10 and min(per_class.values()) >= 2
    assert sum(per_class.values()) == 40
    assert _asset_id(labeled, "trouser/copy-of-a-sneaker.png") not in sel.asset_ids


def test_validation_set_is_disjoint_covers_every_class_and_skips_the_mislabel(labeled):
    train = labeled.curate("fm", budget=60, name="train", mode="labeled")
    val = labeled.curate_validation("fm", size=30, exclude="train")
    assert val.split == "val" and len(val.asset_ids) == 30
    assert not set(val.asset_ids) & set(train.asset_ids)
    assert len([c for c in val.summary["classes"] if c["selected"]]) == 10
    assert _asset_id(labeled, "trouser/copy-of-a-sneaker.png") not in val.asset_ids


@pytest.mark.parametrize(
    ("budget", "message"),
    [(0, "at least 1"), ("-5", "at least 1"), ("0%", "at least 1"), ("150%", "at most 100%"),
     (500, "larger than the pool"), ("lots", "neither a count")],
)
def test_bad_budgets_are_refused_before_anything_is_written(labeled, budget, message):
    with pytest.raises(ValidationError, match=message):
        labeled.curate("fm", budget=budget, name="never")
    with labeled.session() as s:
        assert s.scalar(select(func.count()).select_from(SplitRow)) == 0


def test_unknown_split_taken_name_and_missing_embeddings_say_what_to_do(labeled, tmp_path):
    with pytest.raises(NotFoundError, match="split"):
        labeled.curate("fm", budget=5, name="x", from_split="nope")
    with pytest.raises(NotFoundError, match="split"):
        labeled.curate_validation("fm", size=5, exclude="nope")
    labeled.curate("fm", budget=5, name="taken")
    with pytest.raises(ConflictError, match="--replace"):
        labeled.curate("fm", budget=5, name="taken")
    assert len(labeled.curate("fm", budget=6, name="taken", replace=True).asset_ids) == 6
    other = write_fashion_mnist_folders(tmp_path / "other", n=10, split="test", seed=9)
    labeled.import_dataset("classfolders", other, dataset="bare")  # never embedded
    with pytest.raises(NotFoundError, match="labelwise embed bare"):
        labeled.curate("bare", budget=5, name="x")
    with pytest.raises(NotFoundError, match="labelwise embed bare"):
        labeled.mislabels("bare")


# -- detection data -----------------------------------------------------------------------------
def _scene_dataset(root: Path) -> Path:
    """24 scenes of two Fashion-MNIST items each: 22 with sneakers and shirts, 2 with a bag."""
    images, labels = load_fashion_mnist("test")
    pools = {c: np.flatnonzero(labels == c) for c in (6, 7, 8)}  # shirt, sneaker, bag
    names = {6: "shirt", 7: "sneaker", 8: "bag"}
    coco = {"images": [], "annotations": [], "categories": [
        {"id": c, "name": n} for c, n in names.items()]}
    rng = np.random.default_rng(0)
    for i in range(24):
        canvas = Image.new("RGB", (128, 128), tuple(int(v) for v in rng.integers(0, 60, 3)))
        kinds = (8, 7) if i in (5, 17) else (7, 6)
        for j, cls in enumerate(kinds):
            item = Image.fromarray(images[pools[cls][i]]).resize((56, 56)).convert("RGB")
            x, y = 4 + 64 * j, int(rng.integers(4, 68))
            canvas.paste(item, (x, y))
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1,
                                        "category_id": cls, "bbox": [x, y, 56, 56],
                                        "area": 56 * 56, "iscrowd": 0})
        (root / "images").mkdir(parents=True, exist_ok=True)
        canvas.save(root / "images" / f"scene-{i:02d}.png")
        coco["images"].append({"id": i + 1, "file_name": f"scene-{i:02d}.png", "width": 128,
                               "height": 128})
    write_json(root / "coco.json", coco)
    return root


def test_detection_data_is_chosen_by_object_with_the_rare_class_kept(workspace, tmp_path):
    src = _scene_dataset(tmp_path / "scenes")
    workspace.import_dataset("coco", src / "coco.json", dataset="fm", images=src / "images")
    embed_dataset(workspace, "fm", size=SIZE)
    embed_dataset(workspace, "fm", size=SIZE, objects=True)
    sel = workspace.curate("fm", budget=4, name="detect")
    assert sel.mode == "objects" and len(sel.asset_ids) == 4
    paths = {a["id"]: a["path"] for a in workspace.list_assets("fm", limit=100)["items"]}
    chosen = {paths[a] for a in sel.asset_ids}
    assert chosen & {"scene-05.png", "scene-17.png"}  # the rare bag is in
    with workspace.session() as s:
        assert s.scalar(select(func.count()).select_from(ObjectScoreRow)) == 48
    items = workspace.mislabels("fm", objects=True, top=3)
    assert len(items) == 3 and all("annotation_id" in it for it in items)
