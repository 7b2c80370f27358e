"""YOLO: reading, writing, round trips through a workspace, Ultralytics' rules, refused input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.geometry import polygon_area
from labelwise.core.schema import LabelClass, LabelSchema, Skeleton, skeleton_template
from labelwise.errors import (
    FormatError,
    ImportValidationError,
    LabelwiseError,
    NotFoundError,
    UnsafePathError,
    ValidationError,
)
from labelwise.io.exporter import load_draft
from labelwise.io.yolo import (
    SKIP_CATEGORY,
    SKIP_CROWD,
    SKIP_DUPLICATE,
    images_dir,
    label_path,
    merge_rings,
    read_yolo,
    write_yolo,
)
from tests.helpers import annotation_set, make_image, write_json

# Image suffixes Ultralytics trains on (its IMG_FORMATS), for the loader check below.
ULTRALYTICS_IMAGES = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm"}


def build(root: Path, files: dict[str, object], data: dict | str) -> Path:
    """A dataset folder: image paths -> (width, height), ``.txt`` paths -> their text."""
    for seed, (rel, content) in enumerate(sorted(files.items()), 1):
        path = root / rel
        if isinstance(content, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        else:
            make_image(path, size=content, seed=seed)
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    (root / "data.yaml").write_text(text)
    return root


DETECT_FILES = {
    "images/train/a.jpg": (64, 48),
    "labels/train/a.txt": "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25\n",
    "images/train/b.png": (80, 60),
    "labels/train/b.txt": "\n1 0.5 0.5 1 1\n",  # a blank line, a full-image box
    "images/train/sub/c.jpg": (64, 48),  # no label file: no objects
    "images/train/d.jpg": (64, 48),
    "labels/train/d.txt": "",
}
SEGMENT_FILES = {
    "images/train/a.jpg": (64, 48),
    "labels/train/a.txt": "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n1 0.6 0.6 0.9 0.6 0.75 0.95\n",
    "images/train/b.jpg": (80, 60),
    "labels/train/b.txt": "1 0 0 1 0 1 1 0 1\n",
}
POSE_FILES = {
    "images/train/a.jpg": (64, 48),
    # visibility 2, 1 and 0 (unlabeled) in a fixed point order
    "labels/train/a.txt": "0 0.5 0.5 0.5 0.5 0.3 0.4 2 0.7 0.4 1 0 0 0\n"
                          "0 0.25 0.25 0.25 0.25 0.2 0.2 1 0 0 0 0.3 0.3 2\n",
    "images/train/b.jpg": (80, 60),
    "labels/train/b.txt": "0 0.5 0.5 1 1 0.1 0.2 2 0.3 0.4 2 0.5 0.6 2\n",
}
POSE_YAML = {"train": "images/train", "val": "images/train", "names": ["hand"],
             "kpt_shape": [3, 3], "flip_idx": [1, 0, 2]}
DATASETS = {
    "detect": (DETECT_FILES, {"names": ["cat", "dog"], "train": "images/train",
                              "val": "images/train"}, 3),
    "segment": (SEGMENT_FILES, {"names": ["leaf", "stem"], "train": "images/train"}, 3),
    "pose": (POSE_FILES, POSE_YAML, 3),
}


def ultralytics_rows(yaml_path: Path, task: str) -> int:
    """Check files the way Ultralytics' ``check_det_dataset`` and ``verify_image_label`` do.

    Returns the number of label rows under ``train``. Written independently of labelwise.
    """
    data = yaml.safe_load(yaml_path.read_text())
    assert "path" not in data  # so loaders resolve the folders against the yaml's folder
    names = data["names"]
    assert isinstance(names, dict) and list(names) == list(range(len(names)))
    assert data["nc"] == len(names)
    kpt_shape = data.get("kpt_shape")
    if task == "pose":
        k, ndim = kpt_shape
        assert ndim == 3 and sorted(data["flip_idx"]) == list(range(k))
    else:
        assert kpt_shape is None
    total = 0
    for key in ("train", "val"):
        folder = yaml_path.parent / data[key]
        images = [p for p in folder.rglob("*.*") if p.suffix[1:].lower() in ULTRALYTICS_IMAGES]
        assert images, f"no images under {folder}"
        for im in images:
            sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
            lb = Path(sb.join(str(im).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")
            assert lb.is_file(), f"no label file {lb} for {im}"
            rows = [x.split() for x in lb.read_text().strip().splitlines() if len(x)]
            values = [[float(v) for v in row] for row in rows]
            for row in values:
                assert row[0].is_integer() and 0 <= row[0] < len(names)
                if task == "pose":
                    assert len(row) == 5 + k * ndim
                    points = row[5:]
                    assert all(v in (0, 1, 2) for v in points[2::3])
                    coords = row[1:5] + [v for i, v in enumerate(points) if i % 3 != 2]
                elif task == "segment":
                    assert len(row) >= 7 and len(row) % 2 == 1
                    coords = row[1:]
                else:
                    assert len(row) == 5
                    coords = row[1:]
                assert all(0 <= v <= 1 for v in coords), row
            assert len({tuple(r) for r in values}) == len(values), f"duplicate rows in {lb}"
            if key == "train":
                total += len(values)
    return total


# -- round trips through a workspace -------------------------------------------------------------

@pytest.mark.parametrize("task", ["detect", "segment", "pose"])
def test_round_trip_per_task(workspace, tmp_path, task):
    files, data, num = DATASETS[task]
    root = build(tmp_path / "src", files, data)
    report = workspace.import_dataset("yolo", root, dataset="a")
    assert report.annotations_added == num
    out = tmp_path / "out"
    exported = workspace.export_dataset("a", "yolo", out)
    assert exported.num_annotations == num and not exported.skipped
    assert ultralytics_rows(out / "data.yaml", task) == num
    workspace.import_dataset("yolo", out, dataset="b")
    a, b = load_draft(workspace, "a"), load_draft(workspace, "b")
    assert len(annotation_set(a)) == num
    assert annotation_set(a) == annotation_set(b)
    assert [(c.name, c.tool) for c in a.schema.classes] == [
        (c.name, c.tool) for c in b.schema.classes
    ]
    assert {r.path for r in a.images} == {r.path for r in b.images}


def test_detect_reads_pixels_and_keeps_empty_images(workspace, tmp_path):
    root = build(tmp_path / "src", DETECT_FILES, DATASETS["detect"][1])
    workspace.import_dataset("yolo", root, dataset="a")
    draft = load_draft(workspace, "a")
    by_path = {r.path: r for r in draft.images}
    assert set(by_path) == {"images/train/a.jpg", "images/train/b.png",
                            "images/train/sub/c.jpg", "images/train/d.jpg"}
    boxes = {(a.label, a.bbox) for a in by_path["images/train/a.jpg"].annotations}
    assert boxes == {("cat", (24.0, 12.0, 16.0, 24.0)), ("dog", (12.0, 6.0, 8.0, 12.0))}
    assert by_path["images/train/b.png"].annotations[0].bbox == (0.0, 0.0, 80.0, 60.0)
    out = tmp_path / "out"
    workspace.export_dataset("a", "yolo", out)
    # every image has a label file; an image without objects gets an empty one
    assert (out / "labels/train/sub/c.txt").read_text() == ""
    assert (out / "labels/train/d.txt").read_text() == ""
    assert (out / "images/train/sub/c.jpg").is_file()
    assert (out / "labels/train/a.txt").read_text() == DETECT_FILES["labels/train/a.txt"]


def test_pose_keeps_point_order_visibility_and_skeleton(workspace, tmp_path):
    root = build(tmp_path / "src", POSE_FILES, POSE_YAML)
    workspace.import_dataset("yolo", root, dataset="a")
    draft = load_draft(workspace, "a")
    rec = next(r for r in draft.images if r.path == "images/train/a.jpg")
    kps = sorted((a.keypoints for a in rec.annotations), key=lambda k: -k[0])
    assert kps[0] == pytest.approx([19.2, 19.2, 2, 44.8, 19.2, 1, 0, 0, 0])
    assert kps[1] == pytest.approx([12.8, 9.6, 1, 0, 0, 0, 19.2, 14.4, 2])
    hand = draft.schema.get("hand")
    assert hand.tool == "keypoints"
    assert hand.skeleton.keypoints == ["kp0", "kp1", "kp2"]
    assert hand.skeleton.flip_pairs == [(0, 1)]
    out = tmp_path / "out"
    workspace.export_dataset("a", "yolo", out)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["kpt_shape"] == [3, 3] and data["flip_idx"] == [1, 0, 2]
    assert data["kpt_names"] == {0: ["kp0", "kp1", "kp2"]}
    assert "0.3 0.4 2 0.7 0.4 1 0 0 0" in (out / "labels/train/a.txt").read_text()


def test_coco_pose_through_yolo_keeps_keypoints(workspace, tmp_path):
    person = skeleton_template("coco-person-17")
    images = tmp_path / "coco" / "images"
    make_image(images / "p1.jpg", size=(64, 48), seed=1)
    make_image(images / "p2.jpg", size=(96, 64), seed=2)

    def points(n_hidden: int, n_unlabeled: int, dx: float) -> list[float]:
        out = []
        for i in range(17):
            v = 0 if i < n_unlabeled else 1 if i < n_unlabeled + n_hidden else 2
            out += [0, 0, 0] if v == 0 else [10 + dx + i * 2.5, 5 + i * 1.25, v]
        return out

    coco = {
        "images": [{"id": 1, "file_name": "p1.jpg", "width": 64, "height": 48},
                   {"id": 2, "file_name": "p2.jpg", "width": 96, "height": 64}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 4, 50, 30],
             "keypoints": points(3, 2, 0), "num_keypoints": 15, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [20.5, 3.25, 60, 40],
             "keypoints": points(0, 0, 20), "num_keypoints": 17, "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": person.keypoints,
                        "skeleton": [[a + 1, b + 1] for a, b in person.edges]}],
    }
    src = write_json(tmp_path / "coco" / "annotations.json", coco)
    workspace.import_dataset("coco", src, dataset="c", images=images)
    out = tmp_path / "yolo"
    workspace.export_dataset("c", "yolo", out)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["kpt_shape"] == [17, 3]
    assert data["flip_idx"] == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert ultralytics_rows(out / "data.yaml", "pose") == 2
    workspace.import_dataset("yolo", out, dataset="d")

    def by_name(dataset: str) -> set[tuple]:
        draft = load_draft(workspace, dataset)
        return {
            (Path(r.path).name, a.label, tuple(round(v, 3) for v in a.keypoints),
             tuple(round(v, 3) for v in a.bbox))
            for r in draft.images for a in r.annotations
        }

    before, after = by_name("c"), by_name("d")
    assert len(before) == 2 and before == after
    visibilities = sorted(v for *_, kps, _b in after for v in kps[2::3])
    assert visibilities.count(0) == 2 and visibilities.count(1) == 3
    skeleton = load_draft(workspace, "d").schema.get("person").skeleton
    assert skeleton.template == "coco-person-17"
    assert skeleton.keypoints == person.keypoints and skeleton.edges == person.edges


def test_splits_become_named_splits_and_reimport_adds_nothing(workspace, tmp_path):
    files = {
        "images/train/a.jpg": (64, 48), "labels/train/a.txt": "0 0.5 0.5 0.5 0.5\n",
        "images/train/b.jpg": (64, 48), "labels/train/b.txt": "0 0.25 0.25 0.5 0.5\n",
        "images/val/c.jpg": (64, 48), "labels/val/c.txt": "0 0.5 0.5 0.25 0.25\n",
        # a list file, lines relative to its folder
        "train.txt": "./images/train/a.jpg\nimages/train/b.jpg\n",
    }
    root = build(tmp_path / "src", files, {"names": ["cat"], "train": "train.txt",
                                           "val": "images/val"})
    first = workspace.import_dataset("yolo", root, dataset="a")
    assert first.splits == {"train": 2, "val": 1}
    splits = {s["name"]: s["num_assets"] for s in workspace.dataset_summary("a")["splits"]}
    assert splits == {"train": 2, "val": 1}
    again = workspace.import_dataset("yolo", root, dataset="a")
    assert (again.assets_added, again.annotations_added) == (0, 0)
    assert again.annotations_existing == 3

    # A split exported under its own name comes back with the same paths.
    out = tmp_path / "val-export"
    workspace.export_dataset("a", "yolo", out, split="val", split_name="val")
    assert (out / "images/val/c.jpg").is_file() and (out / "labels/val/c.txt").is_file()
    workspace.import_dataset("yolo", out, dataset="v")
    assert annotation_set(load_draft(workspace, "v")) == annotation_set(
        load_draft(workspace, "a", split="val")
    )


# -- reading, without a workspace ----------------------------------------------------------------

def test_split_option_reads_one_key(tmp_path):
    files = {"images/train/a.jpg": (64, 48), "images/val/b.jpg": (64, 48)}
    root = build(tmp_path, files, {"names": ["x"], "train": "images/train", "val": "images/val"})
    assert [(r.path, r.split) for r in read_yolo(root, split="val").images] == [
        ("images/val/b.jpg", "val")
    ]
    with pytest.raises(NotFoundError, match="has no 'test' images"):
        read_yolo(root, split="test")
    with pytest.raises(LabelwiseError, match="choose one of detect, segment, pose"):
        read_yolo(root, task="obb")


def test_kpt_shape_2_marks_origin_points_unlabeled_and_reads_kpt_names(tmp_path):
    files = {"images/train/a.jpg": (64, 48),
             "labels/train/a.txt": "0 0.5 0.5 0.5 0.5 0.25 0.5 0 0 0.75 0.5\n"}
    data = {"names": {0: "face"}, "train": "images/train", "kpt_shape": [3, 2],
            "flip_idx": [2, 1, 0], "kpt_names": {0: ["left_eye", "nose", "right_eye"]}}
    draft = read_yolo(build(tmp_path, files, data))
    assert draft.images[0].annotations[0].keypoints == [16.0, 24.0, 2, 0.0, 0.0, 0, 48.0, 24.0, 2]
    skel = draft.schema.get("face").skeleton
    assert skel.keypoints == ["left_eye", "nose", "right_eye"] and skel.flip_pairs == [(0, 2)]


def test_detect_task_reads_polygons_as_boxes(tmp_path):
    files = {"images/train/a.jpg": (64, 48),
             "labels/train/a.txt": "0 0.25 0.25 0.75 0.25 0.5 0.75\n"}
    root = build(tmp_path, files, {"names": ["x"], "train": "images/train"})
    ann = read_yolo(root, task="detect").images[0].annotations[0]
    assert (ann.kind, ann.bbox) == ("bbox", (16.0, 12.0, 32.0, 24.0))
    ann = read_yolo(root).images[0].annotations[0]
    assert ann.kind == "polygon" and ann.polygons == [[16.0, 12.0, 48.0, 12.0, 32.0, 36.0]]


def test_roboflow_layout_and_dataset_yaml(tmp_path):
    files = {"train/images/a.jpg": (64, 48), "train/labels/a.txt": "0 0.5 0.5 0.5 0.5\n"}
    build(tmp_path, files, "")
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "dataset.yaml").write_text("names: ['ball']\nnc: 1\ntrain: ../train/images\n")
    draft = read_yolo(tmp_path)
    assert [r.path for r in draft.images] == ["train/images/a.jpg"]
    assert draft.images[0].annotations[0].bbox == (16.0, 12.0, 32.0, 24.0)
    assert label_path("train/images/a.jpg") == "train/labels/a.txt"


def test_path_key_and_images_option_set_the_root(tmp_path):
    root = build(tmp_path / "data" / "ds", {"images/train/a.jpg": (64, 48)}, "")
    config = tmp_path / "configs" / "ds.yaml"
    config.parent.mkdir()
    config.write_text("path: ../data/ds\nnames: [a]\ntrain: images/train\n")
    draft = read_yolo(config)
    assert (draft.images_root, [r.path for r in draft.images]) == (
        config.parent / "../data/ds", ["images/train/a.jpg"])
    config.write_text("names: [a]\ntrain: images/train\n")
    assert read_yolo(config, images=root).images_root == root


def test_one_pixel_over_the_edge_is_clamped(tmp_path):
    # 0.5 px past the right edge of a 64 px image: within the 1 px tolerance, clamped.
    files = {"images/train/a.jpg": (64, 48),
             "labels/train/a.txt": f"0 {(48 + 64.5) / 2 / 64} 0.5 {16.5 / 64} 0.5\n"}
    draft = read_yolo(build(tmp_path, files, {"names": ["x"], "train": "images/train"}))
    assert draft.images[0].annotations[0].bbox == pytest.approx((48.0, 12.0, 16.0, 24.0))


def test_all_problems_are_listed_with_file_and_line(tmp_path):
    files = {
        "images/train/a.jpg": (64, 48),
        "labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n",
        "images/train/b.jpg": (64, 48),
        "labels/train/b.txt": "\n0 0.5 0.5 -0.2 0.2\n",
    }
    with pytest.raises(ImportValidationError) as info:
        read_yolo(build(tmp_path, files, {"names": ["x"], "train": "images/train"}))
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("labels/train/a.txt: line 2: class index 7 is out of range")
    assert problems[1].startswith("labels/train/a.txt: line 3: has 4 values")
    assert problems[2].startswith("labels/train/b.txt: line 2: box width and height must be > 0")


# -- refused input: the right error, naming file and line, and nothing imported ------------------

GOOD_YAML = "names: [cat, dog]\ntrain: images/train\nval: images/train\n"
BAD_INPUTS = {
    "malformed yaml": (
        {}, "names: [cat, dog\ntrain: images/train\n", FormatError,
        ["data.yaml: line", "malformed YAML"]),
    "yaml not a mapping": ({}, "- cat\n- dog\n", FormatError, ["data.yaml", "must be a mapping"]),
    "missing names": ({}, "nc: 2\ntrain: images/train\n", FormatError,
                      ["data.yaml: no 'names' (nc is 2", "names: [cat, dog]"]),
    "no image folders": ({}, "names: [cat]\ntrain:\n", FormatError,
                         ["data.yaml: lists no images under 'train', 'val' or 'test'"]),
    "nc disagrees": ({}, GOOD_YAML + "nc: 3\n", FormatError,
                     ["data.yaml: line 4 (nc): nc is 3 but 'names' has 2 classes"]),
    "class out of range": (
        {"labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n"}, GOOD_YAML,
        ImportValidationError, ["labels/train/a.txt: line 2: class index 2 is out of range",
                                "(0-1)"]),
    "wrong number of values": (
        {"labels/train/a.txt": "0 0.5 0.5 0.2 0.2 0.1\n"}, GOOD_YAML, ImportValidationError,
        ["labels/train/a.txt: line 1: has 6 values; expected 5"]),
    "non-numeric value": (
        {"labels/train/a.txt": "0 0.5 abc 0.2 0.2\n"}, GOOD_YAML, ImportValidationError,
        ["labels/train/a.txt: line 1: value 'abc' (column 3) is not a number"]),
    "not a whole class index": (
        {"labels/train/a.txt": "0.5 0.5 0.5 0.2 0.2\n"}, GOOD_YAML, ImportValidationError,
        ["labels/train/a.txt: line 1: class index '0.5' is not a whole number"]),
    "pixel values instead of fractions": (
        {"labels/train/a.txt": "0 32 24 16 12\n"}, GOOD_YAML, ImportValidationError,
        ["labels/train/a.txt: line 1: box", "outside 0..1", "divide pixel values"]),
    "polygon point outside 0..1": (
        {"labels/train/a.txt": "1 0.1 0.1 1.2 0.1 0.5 0.5\n"}, GOOD_YAML, ImportValidationError,
        ["labels/train/a.txt: line 1: polygon point 1 (1.2, 0.1) is outside 0..1"]),
    "keypoint count does not match kpt_shape": (
        {"labels/train/a.txt": "0 0.5 0.5 0.2 0.2 0.5 0.5 2 0.5 0.5 2\n"},
        GOOD_YAML + "kpt_shape: [3, 3]\n", ImportValidationError,
        ["labels/train/a.txt: line 1: has 11 values but kpt_shape [3, 3] needs 14"]),
    "bad visibility": (
        {"labels/train/a.txt": "0 0.5 0.5 0.2 0.2 0.5 0.5 3\n"},
        GOOD_YAML + "kpt_shape: [1, 3]\n", ImportValidationError,
        ["labels/train/a.txt: line 1: keypoint 0 has visibility 3"]),
    "bad kpt_shape": ({}, GOOD_YAML + "kpt_shape: [17]\n", FormatError,
                      ["data.yaml: line 4 (kpt_shape): must be [K, 2] or [K, 3]"]),
    "bad flip_idx": ({}, GOOD_YAML + "kpt_shape: [3, 3]\nflip_idx: [1, 2, 0]\n", FormatError,
                     ["data.yaml: line 5 (flip_idx)", "undoes"]),
    "image folder missing": (
        {}, "names: [cat]\ntrain: images/train\nval: images/valid\n", FormatError,
        ["data.yaml: line 3 (val): 'images/valid' does not exist"]),
    "list file escapes the root": (
        {"train.txt": "./images/train/a.jpg\n../outside.jpg\n"},
        "names: [cat]\ntrain: train.txt\n", UnsafePathError,
        ["train.txt: line 2: '../outside.jpg' is outside the dataset root"]),
    "list file names a missing image": (
        {"train.txt": "images/train/a.jpg\nimages/train/gone.jpg\n"},
        "names: [cat]\ntrain: train.txt\n", ImportValidationError,
        ["train.txt line 2 (images/train/gone.jpg): file not found"]),
    "unreadable image header": (
        {"images/train/broken.jpg": "this is not a jpeg"}, GOOD_YAML, ImportValidationError,
        ["images/train/broken.jpg: not an image file Pillow can read"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_nothing_imported(workspace, tmp_path, case):
    extra, data, error, fragments = BAD_INPUTS[case]
    files = {"images/train/a.jpg": (64, 48), "labels/train/a.txt": "0 0.5 0.5 0.2 0.2\n",
             **extra}
    root = build(tmp_path / "src", files, data)
    with pytest.raises(error) as info:
        workspace.import_dataset("yolo", root, dataset="a")
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert workspace.datasets() == []
    with pytest.raises(NotFoundError):
        load_draft(workspace, "a")


def test_symlinked_folder_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    make_image(outside / "x.jpg")
    root = tmp_path / "ds"
    root.mkdir()
    (root / "images").symlink_to(outside, target_is_directory=True)
    (root / "data.yaml").write_text("names: [a]\ntrain: images\n")
    with pytest.raises(UnsafePathError, match=r"line 2 \(train\): 'images' resolves to"):
        read_yolo(root)


def test_symlinked_files_out_of_the_root_are_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    make_image(outside / "x.jpg")
    (outside / "y.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    root = build(tmp_path / "ds", {"images/train/a.jpg": (64, 48)},
                 "names: [a]\ntrain: images/train\n")
    (root / "images/train/x.jpg").symlink_to(outside / "x.jpg")
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").symlink_to(outside / "y.txt")
    with pytest.raises(UnsafePathError) as info:
        read_yolo(root)
    assert [p.split(":")[0] for p in info.value.problems] == [
        "images/train/a.jpg", "images/train/x.jpg"]
    assert all("outside the images folder" in p for p in info.value.problems)


def test_missing_yaml_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="no data.yaml or dataset.yaml"):
        read_yolo(tmp_path)


# -- writing, without a workspace ----------------------------------------------------------------

def _draft(anns: list[Annotation], classes: list[LabelClass], size=(100, 50)) -> DatasetDraft:
    schema = LabelSchema()
    for c in classes:
        schema.add(c)
    rec = ImageRecord(path="a.jpg", width=size[0], height=size[1], annotations=anns)
    return DatasetDraft(schema=schema, images=[rec])


def test_write_counts_what_each_task_cannot_hold(tmp_path):
    classes = [LabelClass("box"), LabelClass("shape", tool="polygon"),
               LabelClass("scene", kind="category")]
    anns = [
        Annotation("scene"),
        Annotation("box", bbox=(10, 10, 20, 20)),
        Annotation("box", bbox=(10, 10, 20, 20)),  # a repeat
        Annotation("box", bbox=(0, 0, 5, 5), iscrowd=True),
        Annotation("shape", polygons=[[0, 0, 10, 0, 10, 10]], bbox=(0, 0, 10, 10)),
        Annotation("shape", rle={"size": [50, 100], "counts": [0, 10]}, bbox=(0, 0, 1, 10)),
    ]
    detect = write_yolo(_draft(anns, classes), tmp_path / "d", task="detect")
    assert detect.num_annotations == 3
    assert detect.skipped == {SKIP_CATEGORY: 1, SKIP_DUPLICATE: 1, SKIP_CROWD: 1}
    assert (tmp_path / "d/labels/train/a.txt").read_text().splitlines() == [
        "0 0.2 0.4 0.2 0.4", "1 0.05 0.1 0.1 0.2", "1 0.005 0.1 0.01 0.2"]

    segment = write_yolo(_draft(anns, classes), tmp_path / "s")  # auto: there is a polygon
    assert segment.num_annotations == 1
    assert segment.skipped == {SKIP_CATEGORY: 1, SKIP_CROWD: 1,
                               "bbox: YOLO segment labels are polygons": 2,
                               "rle: YOLO segment labels are polygons": 1}
    data = yaml.safe_load((tmp_path / "s/data.yaml").read_text())
    assert data["names"] == {0: "shape"} and data["nc"] == 1
    assert (tmp_path / "s/labels/train/a.txt").read_text() == "0 0 0 0.1 0 0.1 0.2\n"


def test_pose_refuses_mixed_keypoint_layouts(tmp_path):
    classes = [LabelClass("a", tool="keypoints", skeleton=Skeleton(["p", "q"])),
               LabelClass("b", tool="keypoints", skeleton=Skeleton(["p", "q", "r"]))]
    with pytest.raises(ValidationError, match="'a' \\(2 points\\), 'b' \\(3 points\\)"):
        write_yolo(_draft([], classes), tmp_path)


def test_multi_ring_polygons_merge_into_one_ring(tmp_path):
    rings = [[0, 0, 10, 0, 10, 10, 0, 10], [20, 0, 30, 0, 30, 10], [40, 0, 50, 0, 50, 10, 40, 10]]
    merged = merge_rings(rings)
    assert polygon_area(merged) == pytest.approx(sum(polygon_area(r) for r in rings))
    merged_points = set(zip(merged[0::2], merged[1::2]))
    assert all((x, y) in merged_points for r in rings for x, y in zip(r[0::2], r[1::2]))
    draft = _draft([Annotation("s", polygons=rings, bbox=(0, 0, 50, 10))],
                   [LabelClass("s", tool="polygon")], size=(50, 10))
    write_yolo(draft, tmp_path)
    (line,) = (tmp_path / "labels/train/a.txt").read_text().splitlines()
    values = [float(v) for v in line.split()[1:]]
    assert len(values) == len(merged)  # one ring: the loader sees one polygon


def test_export_paths_keep_labels_apart(tmp_path):
    schema = LabelSchema([LabelClass("x")])
    records = [ImageRecord(path=p, width=8, height=8) for p in
               ("images/train/a.jpg", "images/train/a.png", "images/val/b.jpg", "c.jpg")]
    result = write_yolo(DatasetDraft(schema=schema, images=records), tmp_path)
    assert [r.path for r in records] == ["a.jpg", "a_1.png", "val/b.jpg", "c.jpg"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in result.files) == [
        "data.yaml", "labels/train/a.txt", "labels/train/a_1.txt", "labels/train/c.txt",
        "labels/train/val/b.txt"]
    assert images_dir({"split_name": "val"}) == "images/val" and images_dir({}) == "images/train"
    with pytest.raises(LabelwiseError, match="plain folder name"):
        write_yolo(DatasetDraft(schema=schema, images=[]), tmp_path, split_name="../x")
