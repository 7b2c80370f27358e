"""COCO import -> export -> import keeps every annotation; pycocotools loads and scores exports.

Each round trip compares three things: the draft read straight from the input file, the
dataset it was imported as, and the dataset imported back from our export.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sqlalchemy import select

from labelwise.core.schema import skeleton_template
from labelwise.db.models import ExportRow
from labelwise.io.coco import read_coco
from labelwise.io.exporter import load_draft
from tests.helpers import annotation_set, make_image, write_json

W, H = 64, 48

COCO17_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# As in person_keypoints_*.json: 1-based.
COCO17_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8],
    [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]


# -- fixtures built inline ----------------------------------------------------------------------

def _coco(images: list[dict], annotations: list[dict], categories: list[dict], **extra) -> dict:
    return {"images": images, "annotations": annotations, "categories": categories, **extra}


def _image(iid: int, name: str, **meta) -> dict:
    return {"id": iid, "file_name": name, "width": W, "height": H, **meta}


def _write_source(root: Path, coco: dict) -> Path:
    """Write the images ``coco`` names (distinct content each) and its annotations.json."""
    for i, img in enumerate(coco["images"]):
        make_image(root / "images" / img["file_name"], (img["width"], img["height"]), seed=i + 1)
    return write_json(root / "annotations.json", coco)


def _round_trip(ws, tmp_path: Path, coco: dict) -> tuple[dict, Any, Any]:
    """Import ``coco``, export it, import the export; return (exported json, orig, copy) drafts.

    Asserts the three annotation sets are equal.
    """
    src = _write_source(tmp_path / "src", coco)
    from_file = read_coco(src)
    report = ws.import_dataset("coco", src, dataset="orig")
    assert report.assets_added == len(coco["images"])
    out = tmp_path / "export"
    ws.export_dataset("orig", "coco", out)
    exported = json.loads((out / "annotations.json").read_text())
    ws.import_dataset("coco", out / "annotations.json", dataset="copy")
    orig, back = load_draft(ws, "orig"), load_draft(ws, "copy")
    assert annotation_set(from_file) == annotation_set(orig) == annotation_set(back)
    assert sum(len(r.annotations) for r in back.images) == sum(
        len(r.annotations) for r in from_file.images
    )
    return exported, orig, back


def _anns_by_path(draft) -> dict[str, list]:
    return {r.path: r.annotations for r in draft.images}


def _mask(box: tuple[int, int, int, int], hole: tuple[int, int, int, int] | None = None):
    """A (H, W) uint8 mask, Fortran order, with ``box`` (x, y, w, h) set and ``hole`` cleared."""
    m = np.zeros((H, W), dtype=np.uint8, order="F")
    x, y, w, h = box
    m[y : y + h, x : x + w] = 1
    if hole:
        x, y, w, h = hole
        m[y : y + h, x : x + w] = 0
    return m


def _rle_string(m: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _rle_list(m: np.ndarray) -> dict:
    """Uncompressed RLE (what COCO uses for iscrowd=1): column-major run lengths, 0s first."""
    flat = np.asfortranarray(m).flatten(order="F")
    runs, current, n = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    runs.append(n)
    return {"size": [H, W], "counts": [int(r) for r in runs]}


def _person(kps: list[tuple[float, float, int]]) -> list[float]:
    assert len(kps) == 17
    return [v for p in kps for v in p]


def _people() -> list[list[float]]:
    """Two people: every visibility (0 hidden-unlabeled, 1 labeled-hidden, 2 visible) present."""
    a = [(10 + i, 5 + 2 * i, 2) for i in range(17)]
    a[3] = (0, 0, 0)
    a[4] = (14, 13, 1)
    b = [(40 + (i % 5), 6 + 2 * i, (i % 3)) for i in range(17)]
    return [_person(a), _person(b)]


def _keypoint_coco() -> dict:
    people = _people()
    anns = []
    for i, kps in enumerate(people):
        xs = [kps[j] for j in range(0, 51, 3) if kps[j + 2] > 0]
        ys = [kps[j + 1] for j in range(0, 51, 3) if kps[j + 2] > 0]
        box = [min(xs) - 1, min(ys) - 1, max(xs) - min(xs) + 2, max(ys) - min(ys) + 2]
        anns.append({
            "id": i + 1, "image_id": 1, "category_id": 1, "keypoints": kps,
            "num_keypoints": sum(1 for j in range(2, 51, 3) if kps[j] > 0),
            "bbox": box, "area": float(box[2] * box[3]), "iscrowd": 0,
        })
    cats = [{"id": 1, "name": "person", "supercategory": "person",
             "keypoints": COCO17_NAMES, "skeleton": COCO17_SKELETON}]
    return _coco([_image(1, "crowd.png")], anns, cats)


def _box_coco() -> dict:
    images = [_image(1, "a.png"), _image(2, "b.png"), _image(3, "sub/c.png")]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 12], "area": 120,
         "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20.5, 3.25, 30.75, 40.5],
         "area": 1245.375, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, W, H], "area": W * H,
         "iscrowd": 0},
        {"id": 4, "image_id": 2, "category_id": 1, "bbox": [5, 5, 3, 3], "area": 9,
         "iscrowd": 0},
    ]
    cats = [{"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "dog", "supercategory": "animal"}]
    return _coco(images, anns, cats)


def _polygon_coco() -> dict:
    tri = [2, 2, 30, 2, 16, 20]
    square = [35, 5, 50, 5, 50, 20, 35, 20]
    notch = [5.5, 25.5, 20.25, 25.5, 20.25, 40.75, 12.5, 33, 5.5, 40.75]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [tri], "iscrowd": 0},
        # Two rings: one object seen in two parts (occluded in the middle).
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [square, notch],
         "iscrowd": 0},
    ]
    return _coco([_image(1, "shapes.png")], anns, [{"id": 1, "name": "shape"}])


# -- round trips per kind -----------------------------------------------------------------------

def test_boxes_round_trip(workspace, tmp_path):
    exported, orig, _ = _round_trip(workspace, tmp_path, _box_coco())
    boxes = {(a["image_id"], tuple(a["bbox"])) for a in exported["annotations"]}
    assert boxes == {(a["image_id"], tuple(float(v) for v in a["bbox"]))
                     for a in _box_coco()["annotations"]}
    for a in exported["annotations"]:
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3])
        assert a["iscrowd"] == 0
    assert [r.path for r in orig.images] == ["a.png", "b.png", "sub/c.png"]
    assert _anns_by_path(orig)["sub/c.png"] == []


def test_polygons_round_trip_keep_every_ring(workspace, tmp_path):
    source = _polygon_coco()
    exported, orig, back = _round_trip(workspace, tmp_path, source)
    segs = [a["segmentation"] for a in exported["annotations"]]
    assert segs == [a["segmentation"] for a in source["annotations"]]
    two_rings = exported["annotations"][1]
    assert len(two_rings["segmentation"]) == 2
    # The box missing from the input is derived from both rings, the area from the shoelace sum.
    assert two_rings["bbox"] == [5.5, 5, 44.5, 35.75]
    assert two_rings["area"] == pytest.approx(15 * 15 + mask_area_of_notch())
    for draft in (orig, back):
        (rec,) = draft.images
        assert [len(a.polygons) for a in rec.annotations] == [1, 2]
        assert {c.tool for c in draft.schema.classes} == {"polygon"}


def mask_area_of_notch() -> float:
    """Shoelace area of the notch ring of ``_polygon_coco``, computed independently."""
    pts = [(5.5, 25.5), (20.25, 25.5), (20.25, 40.75), (12.5, 33), (5.5, 40.75)]
    s = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]))
    return abs(s) / 2


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools
def test_rle_masks_round_trip_in_both_count_forms(workspace, tmp_path):
    compressed_mask = _mask((5, 10, 25, 20), hole=(10, 15, 5, 5))
    list_mask = _mask((30, 2, 20, 30))
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": _rle_string(compressed_mask),
         "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": _rle_list(list_mask),
         "iscrowd": 1},
    ]
    source = _coco([_image(1, "masks.png")], anns, [{"id": 1, "name": "blob"}])
    exported, orig, back = _round_trip(workspace, tmp_path, copy.deepcopy(source))

    out = {a["id"]: a for a in exported["annotations"]}
    assert isinstance(out[1]["segmentation"]["counts"], str)
    assert isinstance(out[2]["segmentation"]["counts"], list)
    for ann, m in ((out[1], compressed_mask), (out[2], list_mask)):
        seg = ann["segmentation"]
        rle = mask_utils.frPyObjects(seg, H, W) if isinstance(seg["counts"], list) else {
            "size": seg["size"], "counts": seg["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle), m)
        assert ann["area"] == m.sum()
        assert ann["bbox"] == pytest.approx(mask_utils.toBbox(rle).tolist())
    assert out[2]["iscrowd"] == 1
    for draft in (orig, back):
        rles = [a.rle for a in draft.images[0].annotations]
        assert rles == [a["segmentation"] for a in source["annotations"]]


def test_keypoints_round_trip_with_skeleton_order_and_visibility(workspace, tmp_path):
    source = _keypoint_coco()
    exported, orig, back = _round_trip(workspace, tmp_path, source)

    (cat,) = exported["categories"]
    assert cat["keypoints"] == COCO17_NAMES
    assert cat["skeleton"] == COCO17_SKELETON
    people = _people()
    for ann, kps in zip(exported["annotations"], people, strict=True):
        assert ann["keypoints"] == kps  # order and visibility 0/1/2 as given
        assert ann["num_keypoints"] == sum(1 for v in kps[2::3] if v > 0)
    assert {v for kps in people for v in kps[2::3]} == {0, 1, 2}

    template = skeleton_template("coco-person-17")
    for draft in (orig, back):
        (cls,) = draft.schema.classes
        assert (cls.kind, cls.tool) == ("object", "keypoints")
        assert cls.skeleton.keypoints == template.keypoints
        assert cls.skeleton.edges == template.edges
        assert cls.skeleton.flip_pairs == template.flip_pairs
        assert [a.keypoints for a in draft.images[0].annotations] == people


@pytest.mark.parametrize("multi", [False, True], ids=["single-label", "multi-label"])
def test_image_level_categories_round_trip(workspace, tmp_path, multi):
    images = [
        _image(1, "a.png", category_ids=[1]),
        _image(2, "b.png", category_ids=[1, 2] if multi else [2]),
        _image(3, "c.png"),
    ]
    # Image 3's label comes as an annotation without geometry, the other COCO spelling.
    anns = [{"id": 1, "image_id": 3, "category_id": 2}]
    cats = [{"id": 1, "name": "indoor"}, {"id": 2, "name": "outdoor"}]
    exported, orig, back = _round_trip(workspace, tmp_path, _coco(images, anns, cats))

    assert exported["annotations"] == []  # COCOeval never meets a box-less annotation
    assert [i.get("category_ids") for i in exported["images"]] == [
        [1], [1, 2] if multi else [2], [2]]
    for draft in (orig, back):
        assert draft.schema.multi_label is multi
        assert {(c.name, c.kind) for c in draft.schema.classes} == {
            ("indoor", "category"), ("outdoor", "category")}
        labels = {r.path: sorted(a.label for a in r.annotations) for r in draft.images}
        assert labels == {"a.png": ["indoor"],
                          "b.png": ["indoor", "outdoor"] if multi else ["outdoor"],
                          "c.png": ["outdoor"]}
        assert all(a.is_category for r in draft.images for a in r.annotations)


def test_attributes_iscrowd_and_model_scores_round_trip(workspace, tmp_path):
    attrs = {"occluded": True, "truncated": False, "color": "red", "parts": ["head", "tail"]}
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100,
         "iscrowd": 0, "attributes": attrs},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 20, 20], "area": 400,
         "iscrowd": 1},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [2, 30, 12, 12], "area": 144,
         "iscrowd": 0, "score": 0.875},
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [40, 2, 5, 5], "area": 25,
         "iscrowd": 0, "score": 0.0625, "attributes": {"reviewed": False}},
    ]
    source = _coco([_image(1, "a.png")], anns, [{"id": 1, "name": "cat"}])
    exported, orig, back = _round_trip(workspace, tmp_path, source)

    out = {tuple(a["bbox"]): a for a in exported["annotations"]}
    assert out[(1.0, 1.0, 10.0, 10.0)]["attributes"] == attrs
    assert out[(20.0, 20.0, 20.0, 20.0)]["iscrowd"] == 1
    assert out[(2.0, 30.0, 12.0, 12.0)]["score"] == 0.875
    assert out[(40.0, 2.0, 5.0, 5.0)]["score"] == 0.0625
    assert "score" not in out[(1.0, 1.0, 10.0, 10.0)]
    for draft in (orig, back):
        by_box = {a.bbox: a for a in draft.images[0].annotations}
        assert by_box[(1, 1, 10, 10)].attributes == attrs
        assert by_box[(1, 1, 10, 10)].source == "human"
        assert by_box[(20, 20, 20, 20)].iscrowd is True
        assert (by_box[(2, 30, 12, 12)].source, by_box[(2, 30, 12, 12)].confidence) == (
            "model", 0.875)
        assert by_box[(40, 2, 5, 5)].attributes == {"reviewed": False}


def test_ids_info_licenses_and_image_metadata_survive(workspace, tmp_path):
    meta = {"license": 3, "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg",
            "flickr_url": "http://farm9.staticflickr.com/8035/8024364858_9c41dc1666_z.jpg",
            "date_captured": "2013-11-21 01:34:01"}
    images = [_image(139, "000000000139.png", **meta), _image(7001, "x.png")]
    anns = [
        {"id": 55, "image_id": 139, "category_id": 18, "bbox": [1, 1, 5, 5], "area": 25,
         "iscrowd": 0},
        {"id": 56, "image_id": 7001, "category_id": 44, "bbox": [2, 2, 6, 6], "area": 36,
         "iscrowd": 0},
    ]
    cats = [{"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 44, "name": "bottle", "supercategory": "kitchen"},
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"}]  # unused: kept anyway
    info = {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017,
            "contributor": "COCO Consortium", "date_created": "2017/09/01"}
    licenses = [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 3,
                 "name": "Attribution License"}]
    source = _coco(images, anns, cats, info=info, licenses=licenses)
    exported, _, _ = _round_trip(workspace, tmp_path, source)

    assert [c["id"] for c in exported["categories"]] == [18, 44, 90]
    assert {c["name"]: c["supercategory"] for c in exported["categories"]} == {
        "dog": "animal", "bottle": "kitchen", "toothbrush": "indoor"}
    assert [i["id"] for i in exported["images"]] == [139, 7001]
    assert {(a["image_id"], a["category_id"]) for a in exported["annotations"]} == {
        (139, 18), (7001, 44)}
    assert exported["info"] == info
    assert exported["licenses"] == licenses
    first = exported["images"][0]
    assert {k: first[k] for k in meta} == meta
    # The re-import of our export keeps them again.
    out2 = tmp_path / "export2"
    workspace.export_dataset("copy", "coco", out2)
    again = json.loads((out2 / "annotations.json").read_text())
    assert again["categories"] == exported["categories"]
    assert again["images"] == exported["images"]
    assert again["info"] == info and again["licenses"] == licenses


def test_images_are_exported_next_to_the_json(workspace, tmp_path):
    src = _write_source(tmp_path / "src", _box_coco())
    workspace.import_dataset("coco", src, dataset="d")
    out = tmp_path / "out"
    workspace.export_dataset("d", "coco", out)
    for name in ("a.png", "b.png", "sub/c.png"):
        assert (out / "images" / name).read_bytes() == (tmp_path / "src/images" / name).read_bytes()


# -- pycocotools loads and scores our exports ---------------------------------------------------

def _export(ws, tmp_path: Path, coco: dict) -> Path:
    src = _write_source(tmp_path / "src", coco)
    ws.import_dataset("coco", src, dataset="d")
    ws.export_dataset("d", "coco", tmp_path / "out")
    return tmp_path / "out" / "annotations.json"


def _evaluate(path: Path, iou_type: str, field: str) -> COCOeval:
    gt = COCO(str(path))
    # Mask results are RLEs; pycocotools turns our polygons into them itself.
    value = (lambda a: gt.annToRLE(a)) if field == "segmentation" else (lambda a: a[field])
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], field: value(a),
             "score": 1.0} for a in gt.dataset["annotations"]]
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev


def test_pycocotools_loads_and_scores_boxes(workspace, tmp_path):
    path = _export(workspace, tmp_path, _box_coco())
    gt = COCO(str(path))
    assert len(gt.getImgIds()) == 3 and len(gt.getAnnIds()) == 4
    assert gt.loadCats(gt.getCatIds()) == [
        {"id": 1, "name": "cat", "supercategory": "animal", "color": gt.cats[1]["color"]},
        {"id": 2, "name": "dog", "supercategory": "animal", "color": gt.cats[2]["color"]}]
    ev = _evaluate(path, "bbox", "bbox")
    assert ev.stats[0] == pytest.approx(1.0)  # AP @[.5:.95]


def test_pycocotools_scores_polygons_as_segm(workspace, tmp_path):
    path = _export(workspace, tmp_path, _polygon_coco())
    ev = _evaluate(path, "segm", "segmentation")
    assert ev.stats[0] == pytest.approx(1.0)


def test_pycocotools_scores_keypoints(workspace, tmp_path):
    path = _export(workspace, tmp_path, _keypoint_coco())
    gt = COCO(str(path))
    assert all(a["area"] > 0 for a in gt.dataset["annotations"])  # OKS divides by it
    ev = _evaluate(path, "keypoints", "keypoints")
    assert ev.stats[0] == pytest.approx(1.0)


# -- every export is kept as a frozen snapshot --------------------------------------------------

def test_export_records_a_snapshot_with_the_json_and_a_manifest(workspace, tmp_path):
    src = _write_source(tmp_path / "src", _box_coco())
    workspace.import_dataset("coco", src, dataset="d")
    report = workspace.export_dataset("d", "coco", tmp_path / "out")

    with workspace.session() as s:
        row = s.scalars(select(ExportRow)).one()
        assert row.id == report.export_id
        assert (row.format, row.num_assets, row.num_annotations) == ("coco", 3, 4)
        key, digest = row.storage_key, row.sha256
    data = workspace.store.get_bytes(key)
    assert hashlib.sha256(data).hexdigest() == digest
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["annotations.json", "manifest.json"]
        assert zf.read("annotations.json") == (tmp_path / "out/annotations.json").read_bytes()
        manifest = json.loads(zf.read("manifest.json"))
    assert sorted(manifest) == ["a.png", "b.png", "sub/c.png"]
    for name, blob_key in manifest.items():
        assert workspace.store.get_bytes(blob_key) == (tmp_path / "src/images" / name).read_bytes()

    # The snapshot is frozen: later label changes leave it as it was.
    extra = _box_coco()
    extra["annotations"].append({"id": 9, "image_id": 3, "category_id": 2,
                                 "bbox": [3, 3, 4, 4], "area": 16, "iscrowd": 0})
    workspace.import_dataset("coco", write_json(tmp_path / "src/more.json", extra),
                             dataset="d", images=tmp_path / "src/images")
    assert workspace.store.get_bytes(key) == data
    workspace.export_dataset("d", "coco", tmp_path / "out2")
    with workspace.session() as s:
        rows = s.scalars(select(ExportRow).order_by(ExportRow.id)).all()
        assert [r.num_annotations for r in rows] == [4, 5]
        assert rows[0].storage_key != rows[1].storage_key
