"""Bad input: a clear LabelwiseError naming file, record and fix, and nothing half-imported.

Every failing case checks three things: the exception is a LabelwiseError subclass of the
expected kind, its message names the file and the record and says what to do, and the
workspace is exactly as before: no rows in any table and no new files in the blob store
(the importer stores image bytes before it writes rows, and removes them when it fails).
"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

import labelwise
from labelwise.db.models import Base
from labelwise.errors import (
    ConflictError,
    FormatError,
    ImportValidationError,
    LabelwiseError,
)
from labelwise.io.exporter import load_draft
from tests.helpers import annotation_set, make_image, write_json
from tests.io.test_paths_images import png_header

W, H = 64, 48
KEYPOINT_NAMES = ["nose", "left_eye", "right_eye"]


# -- fixtures built inline ----------------------------------------------------------------------

def _coco() -> dict:
    """Two images; a box class and a 3-point keypoints class; one annotation of each."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": W, "height": H},
            {"id": 2, "file_name": "b.png", "width": W, "height": H},
        ],
        "categories": [
            {"id": 1, "name": "cat"},
            {"id": 2, "name": "face", "keypoints": KEYPOINT_NAMES, "skeleton": [[1, 2], [1, 3]]},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10]},
            {"id": 2, "image_id": 2, "category_id": 2,
             "keypoints": [30, 20, 2, 25, 15, 1, 0, 0, 0]},
        ],
    }


def _source(root: Path, coco: dict | None = None, *, seed: int = 0) -> Path:
    """Write the (good) images ``coco`` names and its annotations.json under ``root``.

    Names that are absolute or climb out with '..' are skipped: a test plants those files
    itself, and this helper never writes outside ``root``.
    """
    coco = _coco() if coco is None else coco
    for i, img in enumerate(coco.get("images", [])):
        name = img.get("file_name")
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
            continue
        if not (root / "images" / name).exists():
            make_image(root / "images" / name, (W, H), seed=seed + i + 1)
    return write_json(root / "annotations.json", coco)


def _noisy_image(path: Path, fmt: str, *, seed: int = 0) -> Path:
    """A real photo-like image (noise), big enough that cutting it loses pixel data."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


# -- what "nothing was written" means -----------------------------------------------------------

def _state(ws) -> tuple[dict[str, int], frozenset[str]]:
    """Row count of every table, and every file in the blob store."""
    with ws.session() as s:
        counts = {t.name: s.scalar(select(func.count()).select_from(t))
                  for t in Base.metadata.sorted_tables}
    root = ws.store.root
    blobs = frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return counts, blobs


def _assert_empty(ws) -> None:
    counts, blobs = _state(ws)
    assert {k: v for k, v in counts.items() if v} == {}
    assert blobs == frozenset()


def _fails(ws, src: Path, expected: type[LabelwiseError], *fragments: str, **options):
    """Import ``src``; assert it raises ``expected`` naming ``fragments`` and changes nothing."""
    before = _state(ws)
    options.setdefault("dataset", "d")
    with pytest.raises(LabelwiseError) as info:
        ws.import_dataset("coco", src, **options)
    err = info.value
    assert isinstance(err, expected), f"{type(err).__name__}: {err}"
    text = str(err)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert _state(ws) == before
    return err


# -- image files --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png")])
def test_corrupt_image_bytes(workspace, tmp_path, fmt, suffix):
    coco = _with(lambda c: c["images"][1].update(file_name=f"b.{suffix}"))
    path = _noisy_image(tmp_path / "images" / f"b.{suffix}", fmt)
    data = bytearray(path.read_bytes())
    # JPEG decoders shrug off garbage in the scan, not in the Huffman tables; PNG checks CRCs.
    at = data.find(b"\xff\xc4") + 5 if fmt == "JPEG" else len(data) // 2
    data[at : at + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    src = _source(tmp_path, coco)
    _fails(workspace, src, ImportValidationError,
           "annotations.json", f"images[1] (b.{suffix})", f"b.{suffix}: the image is corrupt",
           "re-export or re-download it")
    _assert_empty(workspace)


def test_garbage_after_an_image_signature(workspace, tmp_path):
    src = _source(tmp_path)
    (tmp_path / "images/b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    _fails(workspace, src, ImportValidationError, "images[1] (b.png)", "b.png: ")
    _assert_empty(workspace)


@pytest.mark.parametrize("fmt,suffix", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_image(workspace, tmp_path, fmt, suffix):
    coco = _coco()
    coco["images"][0]["file_name"] = f"a.{suffix}"
    path = _noisy_image(tmp_path / "images" / f"a.{suffix}", fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    src = _source(tmp_path, coco)
    _fails(workspace, src, ImportValidationError,
           str(src), f"images[0] (a.{suffix})", "corrupt or truncated", "re-download it")
    _assert_empty(workspace)


def test_truncated_image_passes_when_decoding_is_off(workspace, tmp_path):
    """verify_images=False trusts the header: the documented trade of safety for speed."""
    path = _noisy_image(tmp_path / "images" / "a.png", "PNG")
    path.write_bytes(path.read_bytes()[:-200])
    src = _source(tmp_path)
    _fails(workspace, src, ImportValidationError, "truncated")
    report = workspace.import_dataset("coco", src, dataset="d", verify_images=False)
    assert report.assets_added == 2


def test_non_image_file_with_an_image_extension(workspace, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/a.png").write_text("name,label\ncat.jpg,cat\n")
    src = _source(tmp_path)
    _fails(workspace, src, ImportValidationError,
           "images[0] (a.png)", "not an image file", "replace it with a JPEG/PNG/WebP")
    _assert_empty(workspace)


def test_empty_and_missing_image_files(workspace, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/a.png").write_bytes(b"")
    coco = _coco()
    coco["images"].append({"id": 3, "file_name": "gone.png"})
    src = write_json(tmp_path / "annotations.json", coco)
    make_image(tmp_path / "images/b.png", (W, H), seed=2)
    err = _fails(workspace, src, ImportValidationError,
                 "a.png: the file is empty", "images[2] (gone.png)", "file not found",
                 "check the images folder")
    assert len(err.problems) == 2


def test_decompression_bomb_is_refused_before_decoding(workspace, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/a.png").write_bytes(png_header(20_000, 20_000))
    src = _source(tmp_path)
    _fails(workspace, src, ImportValidationError,
           "images[0] (a.png)", "400,000,000 pixels", "exceeds the limit of 178,956,970",
           "decompression bomb", "raise LABELWISE_MAX_IMAGE_PIXELS")
    _assert_empty(workspace)


def test_pixel_limit_is_configurable(workspace, tmp_path, monkeypatch):
    src = _source(tmp_path)
    monkeypatch.setenv("LABELWISE_MAX_IMAGE_PIXELS", "1000")
    with labelwise.open_workspace(workspace.path) as strict:
        assert strict.settings.max_image_pixels == 1000
        err = _fails(strict, src, ImportValidationError,
                     "a.png: 64x48 = 3,072 pixels exceeds the limit of 1,000 pixels")
        assert len(err.problems) == 2  # both images, not only the first
    monkeypatch.delenv("LABELWISE_MAX_IMAGE_PIXELS")
    assert workspace.import_dataset("coco", src, dataset="d").assets_added == 2


def test_declared_size_must_match_the_file(workspace, tmp_path):
    coco = _coco()
    coco["images"][1]["width"] = 640
    src = _source(tmp_path, coco)
    _fails(workspace, src, ImportValidationError,
           "images[1] (b.png): declared size 640x48 but the file b.png is 64x48",
           "fix width/height")
    _assert_empty(workspace)


def test_one_bad_image_among_many_imports_nothing(workspace, tmp_path):
    coco = {"images": [{"id": i, "file_name": f"img{i:02d}.png", "width": W, "height": H}
                       for i in range(30)],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]}
                            for i in range(30)]}
    src = _source(tmp_path, coco)
    (tmp_path / "images/img17.png").write_bytes(b"GIF89a" + b"\x00" * 20)
    stored_during: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "images" and done == total:
            stored_during.append(len(_state(workspace)[1]))

    _fails(workspace, src, ImportValidationError, "images[17] (img17.png)", progress=progress)
    assert stored_during and stored_during[-1] >= 29  # the good ones were stored, then removed
    _assert_empty(workspace)


# -- files that are not COCO --------------------------------------------------------------------

@pytest.mark.parametrize("content,fragment", [
    (b'{"images": [{"id": 1,', "malformed JSON"),
    (b"", "malformed JSON"),
    (b"\xff\xfe\x00garbage", "malformed JSON"),
    (b"[1, 2, 3]", "top level must be a JSON object"),
    (b'"annotations"', "top level must be a JSON object"),
    (b'{"info": {}, "licenses": []}', "no 'images' list; is this a COCO annotation file?"),
    (b'{"images": {"1": "a.png"}}', "'images' must be a list"),
    (b'{"images": [], "annotations": 7}', "'annotations' must be a list"),
])
def test_files_that_are_not_coco(workspace, tmp_path, content, fragment):
    src = tmp_path / "labels.json"
    src.write_bytes(content)
    _fails(workspace, src, FormatError, str(src), fragment)
    _assert_empty(workspace)


def test_missing_annotation_file(workspace, tmp_path):
    _fails(workspace, tmp_path / "nope.json", FormatError, "nope.json: file not found",
           "check the path")


def test_nul_in_a_string_is_refused(workspace, tmp_path):
    coco = _coco()
    coco["categories"][0]["name"] = "ca\u0000t"
    src = _source(tmp_path, coco)
    _fails(workspace, src, FormatError, "line 1", "NUL character", "remove it")
    # An escaped backslash followed by 'u0000' is plain text, not a NUL.
    coco["categories"][0]["name"] = "ca\\u0000t"
    src = write_json(src, coco)
    workspace.import_dataset("coco", src, dataset="d")
    assert workspace.dataset_summary("d")


# -- records that do not fit --------------------------------------------------------------------

def _with(mutate) -> dict:
    coco = copy.deepcopy(_coco())
    mutate(coco)
    return coco


def _ann(coco: dict, i: int) -> dict:
    return coco["annotations"][i]


CASES = {
    "unknown category id": (
        lambda c: _ann(c, 0).update(category_id=99),
        ["annotations[0] (id 1): category_id 99 is not in 'categories' (known: 1-2)",
         "fix the file or add the category"]),
    "unknown image category id": (
        lambda c: c["images"][0].update(category_ids=[1, 12]),
        ["images[0] (a.png): category_ids has 12", "(known: 1-2)"]),
    "unknown image id": (
        lambda c: _ann(c, 0).update(image_id=42),
        ["annotations[0] (id 1): image_id 42 is not in 'images'", "add the image"]),
    "box outside the image": (
        lambda c: _ann(c, 0).update(bbox=[50, 40, 20, 20]),
        ["images[0] (a.png): annotation 0: bbox [50, 40, 20, 20] lies outside the 64x48 image",
         "right edge 70", "fix the box"]),
    "box left of the image": (
        lambda c: _ann(c, 0).update(bbox=[-5, 0, 10, 10]),
        ["images[0] (a.png): annotation 0", "lies outside", "fix the box"]),
    "box with negative size": (
        lambda c: _ann(c, 0).update(bbox=[30, 30, -10, 5]),
        ["images[0] (a.png): annotation 0", "non-positive size (width -10, height 5)",
         "[x, y, width, height]"]),
    "box with zero size": (
        lambda c: _ann(c, 0).update(bbox=[30, 30, 10, 0]),
        ["images[0] (a.png): annotation 0", "non-positive size (width 10, height 0)"]),
    "box with three numbers": (
        lambda c: _ann(c, 0).update(bbox=[1, 2, 3]),
        ["annotations[0] (id 1): bbox must be [x, y, width, height] numbers, got [1, 2, 3]"]),
    "box of strings": (
        lambda c: _ann(c, 0).update(bbox=["1", "2", "3", "4"]),
        ["annotations[0] (id 1): bbox must be [x, y, width, height] numbers"]),
    "keypoints too short": (
        lambda c: _ann(c, 1).update(keypoints=[30, 20, 2, 25, 15, 1]),
        ["annotations[1] (id 2): keypoints has 6 numbers but category 'face' has 3 points "
         "(expected 9)", "in the category's order"]),
    "keypoints too long": (
        lambda c: _ann(c, 1).update(keypoints=[1, 1, 2] * 17),
        ["annotations[1] (id 2): keypoints has 51 numbers", "(expected 9)"]),
    "keypoints on a class without names": (
        lambda c: _ann(c, 0).update(keypoints=[1, 1, 2]),
        ["annotations[0] (id 1): has keypoints but category 'cat' defines no 'keypoints'"]),
    "visibility 3": (
        lambda c: _ann(c, 1).update(keypoints=[30, 20, 3, 25, 15, 1, 0, 0, 0]),
        ["images[1] (b.png): annotation 0: keypoint 0 has visibility 3; it must be 0, 1 or 2"]),
    "visibility -1": (
        lambda c: _ann(c, 1).update(keypoints=[30, 20, 2, 25, 15, -1, 0, 0, 0]),
        ["keypoint 1 has visibility -1; it must be 0, 1 or 2"]),
    "visibility 0.5": (
        lambda c: _ann(c, 1).update(keypoints=[30, 20, 2, 25, 15, 0.5, 0, 0, 0]),
        ["keypoint 1 has visibility 0.5; it must be 0, 1 or 2"]),
    "visible keypoint outside": (
        lambda c: _ann(c, 1).update(keypoints=[30, 20, 2, 99, 15, 2, 0, 0, 0]),
        ["keypoint 1 at (99, 15) lies outside the 64x48 image", "set its visibility to 0"]),
    "polygon outside": (
        lambda c: _ann(c, 0).update(segmentation=[[1, 1, 90, 1, 40, 20]]),
        ["images[0] (a.png): annotation 0: polygon spans x 1..90", "fix the polygon"]),
    "polygon of two points": (
        lambda c: _ann(c, 0).update(segmentation=[[1, 1, 9, 9]]),
        ["polygon needs at least 3 points"]),
    "RLE for another image size": (
        lambda c: _ann(c, 0).update(segmentation={"size": [10, 10], "counts": [50, 50]}),
        ["images[0] (a.png): annotation 0: RLE mask size [10, 10] does not match the "
         "image's [height, width] [48, 64]"]),
    "RLE runs that do not add up": (
        lambda c: _ann(c, 0).update(segmentation={"size": [H, W], "counts": [10, 20]}),
        ["annotations[0] (id 1): RLE segmentation: RLE runs cover 30 pixels but the mask is "
         "48x64 = 3072"]),
    "RLE string that is not COCO's encoding": (
        lambda c: _ann(c, 0).update(segmentation={"size": [H, W], "counts": "\u00e9\u00e9"}),
        ["annotations[0] (id 1): RLE segmentation: RLE 'counts' string has an invalid character"]),
    "score above 1": (
        lambda c: _ann(c, 0).update(score=1.5),
        ["images[0] (a.png): annotation 0: confidence 1.5 must be between 0 and 1"]),
    "negative area": (
        lambda c: _ann(c, 0).update(area=-3),
        ["annotations[0] (id 1): area must be a number >= 0"]),
    "category id too large": (
        lambda c: c["categories"][0].update(id=2**63),
        ["categories[0]: category id 9223372036854775808 does not fit in 64 bits"]),
    "category name too long": (
        lambda c: c["categories"][0].update(name="x" * 201),
        ["categories[0] ('xxxx", "name is longer than 200 characters; shorten it"]),
    "supercategory not a string": (
        lambda c: c["categories"][0].update(supercategory={"a": 1}),
        ["categories[0] ('cat'): 'supercategory' must be a string"]),
    "image size as text": (
        lambda c: c["images"][0].update(width="64"),
        ["images[0] (a.png): width and height must be positive integers, got '64'"]),
    "category_ids not a list": (
        lambda c: c["images"][0].update(category_ids=1),
        ["images[0] (a.png): 'category_ids' must be a list of category ids, got int"]),
    "image_id of the wrong type": (
        lambda c: _ann(c, 0).update(image_id=[1]),
        ["annotations[0] (id 1): image_id [1] is not in 'images'"]),
    "duplicate image id": (
        lambda c: c["images"][1].update(id=1),
        ["images[1] (b.png): image id 1 is used twice"]),
    "duplicate category name": (
        lambda c: c["categories"][1].update(name="cat"),
        ["categories[1]: category name 'cat' is used twice (ids 1 and 2)"]),
    "skeleton edge out of range": (
        lambda c: c["categories"][1].update(skeleton=[[1, 4]]),
        ["categories[1]: bad skeleton: skeleton edge (0, 3) must join two different points"]),
    "tag too long": (
        lambda c: c["images"][0].update(tags=["t" * 201]),
        ["images[0] (a.png): 'tags' must be a list of non-empty strings"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_records(workspace, tmp_path, case):
    mutate, fragments = CASES[case]
    src = _source(tmp_path, _with(mutate))
    err = _fails(workspace, src, ImportValidationError, str(src), *fragments)
    assert "nothing was imported" in err.message
    assert err.problems and all(p.startswith(str(src)) for p in err.problems)
    _assert_empty(workspace)


def test_every_problem_is_listed_at_once(workspace, tmp_path):
    def mutate(c):
        _ann(c, 0).update(bbox=[60, 1, 20, 5])
        c["annotations"].append({"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 5]})
        c["annotations"].append({"id": 4, "image_id": 2, "category_id": 1, "bbox": [1, 40, 5, 20]})

    src = _source(tmp_path, _with(mutate))
    err = _fails(workspace, src, ImportValidationError, "3 problem(s) with annotations")
    assert len(err.problems) == 3


# -- paths that escape the images folder --------------------------------------------------------

def test_path_with_dotdot_is_refused(workspace, tmp_path):
    # The file exists beside the images folder: refusing it is not "not found".
    make_image(tmp_path / "ds" / "secret.png", (W, H), seed=9)
    coco = _with(lambda c: c["images"][0].update(file_name="../secret.png"))
    src = _source(tmp_path / "ds", coco)
    _fails(workspace, src, ImportValidationError, "images[0] (../secret.png)",
           "escapes the images folder", "use a path relative to it")
    _assert_empty(workspace)


def test_absolute_path_is_refused(workspace, tmp_path):
    src = _source(tmp_path, _with(lambda c: c["images"][0].update(file_name="/etc/passwd")))
    _fails(workspace, src, ImportValidationError, "images[0] (/etc/passwd)", "is absolute",
           "relative to the images folder")
    _assert_empty(workspace)


@pytest.mark.parametrize("link_to", ["file", "folder"])
def test_symlink_out_of_the_images_folder_is_refused(workspace, tmp_path, link_to):
    outside = make_image(tmp_path / "outside" / "real.png", (W, H), seed=5)
    src = _source(tmp_path / "ds")
    images = tmp_path / "ds" / "images"
    if link_to == "file":
        (images / "a.png").unlink()
        (images / "a.png").symlink_to(outside)
        name = "a.png"
    else:
        (images / "sub").symlink_to(outside.parent, target_is_directory=True)
        name = "sub/real.png"
        write_json(src, _with(lambda c: c["images"][0].update(file_name=name)))
    _fails(workspace, src, ImportValidationError, f"images[0] ({name})",
           "outside the images folder", "(a symlink out?)", "copy the file into the folder")
    _assert_empty(workspace)


def test_symlink_inside_the_images_folder_is_fine(workspace, tmp_path):
    src = _source(tmp_path)
    real = make_image(tmp_path / "images" / "store" / "a-real.png", (W, H), seed=11)
    (tmp_path / "images/a.png").unlink()
    (tmp_path / "images/a.png").symlink_to(real)
    assert workspace.import_dataset("coco", src, dataset="d").assets_added == 2


@pytest.mark.parametrize("second", ["a.png", "./a.png", "sub/../a.png"])
def test_duplicate_file_names(workspace, tmp_path, second):
    coco = _with(lambda c: c["images"][1].update(file_name=second))
    src = _source(tmp_path, coco)
    fragment = ("escapes the images folder" if ".." in second
                else f"images[1] ({second}): file name 'a.png' is listed twice (also at "
                     "images[0] (a.png)); each image may appear once")
    _fails(workspace, src, ImportValidationError, fragment)
    _assert_empty(workspace)


def test_overlong_and_nul_paths(workspace, tmp_path):
    long_name = "d/" * 520 + "a.png"
    coco = _with(lambda c: c["images"][0].update(file_name=long_name))
    src = write_json(tmp_path / "annotations.json", coco)
    make_image(tmp_path / "images/b.png", (W, H), seed=3)
    _fails(workspace, src, ImportValidationError, "characters long; the limit is 1024")
    coco = _with(lambda c: c["images"][0].update(file_name="a\x00.png"))
    _fails(workspace, write_json(src, coco), FormatError, "NUL character")
    _assert_empty(workspace)


# -- imports into an existing dataset -----------------------------------------------------------

def test_failed_second_import_leaves_the_first_intact(workspace, tmp_path):
    src = _source(tmp_path)
    workspace.import_dataset("coco", src, dataset="d")
    before = _state(workspace)
    labels = annotation_set(load_draft(workspace, "d"))

    def mutate(c):
        c["images"].append({"id": 3, "file_name": "c.png", "width": W, "height": H})
        c["annotations"].append({"id": 3, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5]})
        c["annotations"].append({"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]})
        c["annotations"].append({"id": 5, "image_id": 3, "category_id": 1, "bbox": [9, 9, 0, 1]})
        c["categories"].append({"id": 3, "name": "dog"})

    more = _source(tmp_path, _with(mutate), seed=100)
    assert (tmp_path / "images/c.png").exists()
    _fails(workspace, more, ImportValidationError, "images[2] (c.png): annotation 1",
           "non-positive size")
    assert _state(workspace) == before  # c.png's new blob was removed again, no 'dog' class
    assert annotation_set(load_draft(workspace, "d")) == labels


def test_reimport_is_idempotent(workspace, tmp_path):
    src = _source(tmp_path)
    first = workspace.import_dataset("coco", src, dataset="d")
    assert (first.assets_added, first.annotations_added) == (2, 2)
    counts, blobs = _state(workspace)
    labels = annotation_set(load_draft(workspace, "d"))

    again = workspace.import_dataset("coco", src, dataset="d")
    assert (again.assets_added, again.annotations_added) == (0, 0)
    assert (again.assets_existing, again.annotations_existing) == (2, 2)
    assert again.classes_added == []
    counts2, blobs2 = _state(workspace)
    assert counts2 == {**counts, "imports": counts["imports"] + 1}  # only the import record
    assert blobs2 == blobs
    assert annotation_set(load_draft(workspace, "d")) == labels


def test_reimport_with_more_annotations_adds_only_those(workspace, tmp_path):
    src = _source(tmp_path)
    workspace.import_dataset("coco", src, dataset="d")
    counts, blobs = _state(workspace)

    def mutate(c):
        c["annotations"].append({"id": 7, "image_id": 2, "category_id": 1, "bbox": [4, 4, 8, 8]})
        # The same box twice on one image is two objects: the second copy is new too.
        c["annotations"].append({"id": 8, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20, 10]})

    more = write_json(tmp_path / "more.json", _with(mutate))
    report = workspace.import_dataset("coco", more, dataset="d", images=tmp_path / "images")
    assert (report.assets_added, report.assets_existing) == (0, 2)
    assert (report.annotations_added, report.annotations_existing) == (2, 2)
    counts2, blobs2 = _state(workspace)
    assert counts2["annotations"] == counts["annotations"] + 2
    assert counts2["assets"] == counts["assets"] and blobs2 == blobs
    boxes = sorted(a.bbox for r in load_draft(workspace, "d").images for a in r.annotations
                   if a.label == "cat")
    assert boxes == [(2, 3, 20, 10), (2, 3, 20, 10), (4, 4, 8, 8)]


def test_changed_image_bytes_under_the_same_path_conflict(workspace, tmp_path):
    src = _source(tmp_path)
    workspace.import_dataset("coco", src, dataset="d")
    make_image(tmp_path / "images/a.png", (W, H), seed=77)  # same path, other pixels
    err = _fails(workspace, src, ConflictError, "1 image(s) changed since they were imported",
                 "nothing was imported", "under new file names")
    assert err.problems == ["a.png: already in dataset 'd' with different content"]


def test_a_failed_import_keeps_blobs_other_datasets_use(workspace, tmp_path):
    """Cleanup removes only what this import stored, never a blob that was already there."""
    src = _source(tmp_path)
    workspace.import_dataset("coco", src, dataset="first")
    before = _state(workspace)
    bad = write_json(tmp_path / "bad.json", _with(lambda c: _ann(c, 0).update(bbox=[0, 0, 0, 1])))
    _fails(workspace, bad, ImportValidationError, "non-positive size", dataset="second",
           images=tmp_path / "images")
    assert _state(workspace) == before
    for key in before[1]:
        assert workspace.store.exists(key)


def test_dataset_name_is_required(workspace, tmp_path):
    src = _source(tmp_path)
    _fails(workspace, src, LabelwiseError, "a dataset name is required", dataset=" ")


def test_bytes_written_by_pillow_round_trip_are_accepted(workspace, tmp_path):
    """A control case for the matrix above: the same layout with good files imports."""
    src = _source(tmp_path)
    buf = io.BytesIO()
    Image.new("RGB", (W, H), (1, 2, 3)).save(buf, format="JPEG")
    (tmp_path / "images/c.jpg").write_bytes(buf.getvalue())
    coco = _coco()
    coco["images"].append({"id": 3, "file_name": "c.jpg", "width": W, "height": H})
    write_json(src, coco)
    report = workspace.import_dataset("coco", src, dataset="d")
    assert (report.assets_added, report.annotations_added) == (3, 2)
    assert json.loads(json.dumps(workspace.dataset_summary("d")))


def test_overlong_names_and_tags_are_refused_before_anything_is_written(workspace, tmp_path):
    from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
    from labelwise.core.schema import LabelClass, LabelSchema
    from labelwise.errors import ImportValidationError
    from labelwise.io.importer import import_draft
    from tests.helpers import make_image

    make_image(tmp_path / "imgs" / "a.png")
    draft = DatasetDraft(
        schema=LabelSchema([LabelClass("x" * 300, "category")]),
        images=[ImageRecord("a.png", tags=["t\x00ag"], split="s" * 201,
                            annotations=[Annotation("x" * 300)])],
        source="labels.csv", images_root=tmp_path / "imgs",
    )
    with pytest.raises(ImportValidationError) as err:
        import_draft(workspace, draft, dataset="d", fmt="csv")
    text = str(err.value)
    assert "class name" in text and "300 characters; the limit is 200" in text
    assert "tag 't\\x00ag' contains a NUL character" in text
    assert "split" in text and "201 characters" in text
    assert workspace.datasets() == []
