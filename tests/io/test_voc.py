"""Pascal VOC: reading, writing, round trips through a workspace, and refused input."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelSchema
from labelwise.errors import FormatError, ImportValidationError, NotFoundError
from labelwise.io.exporter import load_draft
from labelwise.io.voc import read_voc, write_voc
from tests.helpers import annotation_set, make_image, write_json


def voc_xml(filename: str | None, objects: list[str], *, size: tuple[int, int] | None = (64, 48),
            extra: str = "") -> str:
    """A VOC document; ``objects`` are the inner XML of each <object>."""
    parts = ["<annotation>", "<folder>VOC2007</folder>", extra]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height>"
                     "<depth>3</depth></size>")
    parts += [f"<object>{o}</object>" for o in objects]
    parts.append("</annotation>")
    return "\n".join(parts)


def obj(name: str | None, box: tuple | None, **attrs) -> str:
    inner = "" if name is None else f"<name>{name}</name>"
    inner += "".join(f"<{k}>{v}</{k}>" for k, v in attrs.items())
    if box is not None:
        inner += "<bndbox>" + "".join(
            f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
            if v is not None
        ) + "</bndbox>"
    return inner


def make_voc(root: Path) -> Path:
    """A small VOC root: 3 images (one nested, one with no objects) and split files."""
    make_image(root / "JPEGImages" / "0001.jpg", seed=1)
    make_image(root / "JPEGImages" / "0002.jpg", seed=2)
    make_image(root / "JPEGImages" / "street" / "0003.jpg", seed=3)
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    (ann / "0001.xml").write_text(voc_xml("0001.jpg", [
        obj("dog", (1, 2, 30, 40), pose="Left", truncated=1, difficult=0),
        obj("person", (10.5, 3, 60.25, 47), difficult=1, occluded=0),
    ]))
    (ann / "0002.xml").write_text(voc_xml("0002.jpg", []))
    (ann / "street").mkdir()
    (ann / "street" / "0003.xml").write_text(voc_xml("0003.jpg", [obj("car", (0, 0, 64, 48))]))
    sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("0001\nstreet/0003\n")
    (sets / "val.txt").write_text("0002\n")
    (sets / "trainval.txt").write_text("0001\n0002\nstreet/0003\n")
    (sets / "dog_train.txt").write_text("0001  1\n")
    return root


def hashes(ws, dataset: str) -> dict[str, str]:
    return {a["path"]: a["content_hash"] for a in ws.list_assets(dataset, limit=1000)["items"]}


def attributes(ws, dataset: str) -> set[tuple]:
    return {
        (rec.path, a.label, tuple(sorted((a.attributes or {}).items())))
        for rec in load_draft(ws, dataset).images for a in rec.annotations
    }


def assert_nothing_imported(ws, dataset: str) -> None:
    with pytest.raises(NotFoundError):
        load_draft(ws, dataset)


# -- reading ------------------------------------------------------------------------------------

def test_read_voc_boxes_attributes_classes_and_splits(tmp_path):
    draft = read_voc(make_voc(tmp_path / "voc"))

    assert draft.images_root == tmp_path / "voc" / "JPEGImages"
    assert [r.path for r in draft.images] == ["0001.jpg", "0002.jpg", "street/0003.jpg"]
    assert [c.name for c in draft.schema.classes] == ["dog", "person", "car"]
    assert {(c.kind, c.tool) for c in draft.schema.classes} == {("object", "bbox")}
    first = draft.images[0]
    assert (first.width, first.height) == (64, 48)
    assert first.metadata == {"voc": {"folder": "VOC2007", "depth": 3}}
    dog, person = first.annotations
    assert dog.bbox == (1, 2, 29, 38)  # x=xmin, w=xmax-xmin
    assert person.bbox == (10.5, 3, 49.75, 44)
    assert dog.attributes == {"pose": "Left", "truncated": 1, "difficult": 0}
    assert person.attributes == {"difficult": 1, "occluded": 0}
    assert draft.images[1].annotations == []
    # trainval (a union of train and val) and class files do not make splits.
    assert [r.split for r in draft.images] == ["train", "val", "train"]
    assert [r.external_id for r in draft.images] == ["0001", "0002", "street/0003"]
    # Pointing at the Annotations folder itself finds the images and splits next to it.
    inner = read_voc(tmp_path / "voc" / "Annotations")
    assert inner.images_root == tmp_path / "voc" / "JPEGImages"
    assert [r.split for r in inner.images] == ["train", "val", "train"]


def test_read_voc_split_only_when_image_is_in_exactly_one(tmp_path):
    root = make_voc(tmp_path / "voc")
    (root / "ImageSets" / "Main" / "test.txt").write_text("0001\n")
    draft = read_voc(root)
    assert [r.split for r in draft.images] == [None, "val", "train"]


def test_read_voc_folder_of_xml_next_to_images(tmp_path):
    """LabelImg layout: a.jpg + a.xml side by side; images default to the same folder."""
    folder = tmp_path / "labelimg"
    folder.mkdir()
    (folder / "a.xml").write_text(voc_xml("a.jpg", [obj("cat", (1, 1, 5, 5))], size=None))
    draft = read_voc(folder)
    assert draft.images_root == folder
    assert draft.images[0].path == "a.jpg"
    assert (draft.images[0].width, draft.images[0].height) == (None, None)
    assert read_voc(folder / "a.xml").images[0].annotations[0].bbox == (1, 1, 4, 4)
    assert read_voc(folder, images=tmp_path).images_root == tmp_path


def test_write_voc_layout_numbers_and_skips(tmp_path):
    draft = DatasetDraft(schema=LabelSchema(), images=[
        ImageRecord(path="x/a.jpg", width=64, height=48, annotations=[
            Annotation("box", bbox=(1.0, 2.0, 10.0, 5.5), attributes={
                "difficult": True, "pose": "Front", "nested": {"a": 1}}),
            Annotation("shape", bbox=(0.0, 0.0, 4.0, 4.0), polygons=[[0, 0, 4, 0, 4, 4]]),
            Annotation("point", bbox=(3.0, 3.0, 0.0, 0.0), keypoints=[3, 3, 2]),
            Annotation("scene"),
        ]),
        ImageRecord(path="x/a.png", width=64, height=48),
    ])
    result = write_voc(draft, tmp_path / "out")

    ann = tmp_path / "out" / "Annotations"
    assert sorted(p.relative_to(ann).as_posix() for p in ann.rglob("*.xml")) == [
        "x/a.jpg.xml", "x/a.png.xml"]  # same stem: full names keep the ids apart
    assert (tmp_path / "out/ImageSets/Main/default.txt").read_text() == "x/a.jpg\nx/a.png\n"
    text = (ann / "x/a.jpg.xml").read_text()
    assert "<filename>a.jpg</filename>" in text and "<folder>JPEGImages</folder>" in text
    assert "<xmin>1</xmin>" in text and "<ymax>7.5</ymax>" in text
    assert "<difficult>1</difficult>" in text and "nested" not in text
    assert (result.num_images, result.num_annotations) == (2, 2)
    assert result.skipped == {
        "category: VOC holds object boxes only": 1,
        "polygon shape: written as its box (VOC holds boxes only)": 1,
        "object with an empty box (zero width or height)": 1,
        "attribute 'nested': not a single value with an XML-safe name": 1,
    }
    back = read_voc(tmp_path / "out")
    assert [r.path for r in back.images] == ["x/a.jpg", "x/a.png"]
    assert [(a.label, a.bbox, a.attributes) for a in back.images[0].annotations] == [
        ("box", (1, 2, 10, 5.5), {"difficult": 1, "pose": "Front"}),
        ("shape", (0, 0, 4, 4), None),
    ]


# -- round trips through a workspace --------------------------------------------------------------

def test_voc_round_trip_keeps_boxes_attributes_and_images(workspace, tmp_path):
    ws = workspace
    report = ws.import_dataset("voc", make_voc(tmp_path / "voc"), dataset="orig")
    assert (report.assets_added, report.annotations_added) == (3, 3)
    assert report.splits == {"train": 2, "val": 1}

    export = ws.export_dataset("orig", "voc", tmp_path / "out")
    assert (tmp_path / "out" / "JPEGImages" / "street" / "0003.jpg").is_file()
    assert (export.num_images, export.num_annotations) == (3, 3)
    ws.import_dataset("voc", tmp_path / "out", dataset="copy")

    assert annotation_set(load_draft(ws, "copy")) == annotation_set(load_draft(ws, "orig"))
    assert hashes(ws, "copy") == hashes(ws, "orig")
    assert attributes(ws, "copy") == attributes(ws, "orig")
    assert ("0001.jpg", "dog", (("difficult", 0), ("pose", "Left"), ("truncated", 1))) in (
        attributes(ws, "copy"))


def test_voc_reimport_is_idempotent(workspace, tmp_path):
    ws = workspace
    root = make_voc(tmp_path / "voc")
    ws.import_dataset("voc", root, dataset="d")
    again = ws.import_dataset("voc", root, dataset="d")
    assert (again.assets_added, again.annotations_added) == (0, 0)
    assert (again.assets_existing, again.annotations_existing) == (3, 3)
    # The export of the same dataset is the same data too.
    ws.export_dataset("d", "voc", tmp_path / "out")
    back = ws.import_dataset("voc", tmp_path / "out", dataset="d")
    assert (back.assets_added, back.annotations_added) == (0, 0)


def test_coco_to_voc_keeps_boxes(workspace, tmp_path):
    ws = workspace
    make_image(tmp_path / "coco" / "images" / "a.jpg", seed=4)
    make_image(tmp_path / "coco" / "images" / "b.jpg", seed=5)
    write_json(tmp_path / "coco" / "annotations.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48,
                    "category_ids": [3]}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "blob"},
                       {"id": 3, "name": "outdoor"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 20.5, 10]},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [5, 5, 10, 10],
             "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
        ],
    })
    ws.import_dataset("coco", tmp_path / "coco" / "annotations.json", dataset="coco")
    export = ws.export_dataset("coco", "voc", tmp_path / "voc")
    assert export.skipped == {"category: VOC holds object boxes only": 1,
                              "polygon shape: written as its box (VOC holds boxes only)": 1}
    ws.import_dataset("voc", tmp_path / "voc", dataset="voc")

    def boxes(name: str) -> set[tuple]:
        return {(r.path, a.label, a.bbox) for r in load_draft(ws, name).images
                for a in r.annotations if a.bbox is not None}

    assert boxes("voc") == boxes("coco") == {
        ("a.jpg", "cat", (2.0, 3.0, 20.5, 10.0)), ("b.jpg", "blob", (5.0, 5.0, 10.0, 10.0))}
    assert hashes(ws, "voc") == hashes(ws, "coco")


# -- refused input --------------------------------------------------------------------------------

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<annotation><filename>&lol3;</filename></annotation>"""

BAD_FILES = {
    "malformed": ("<annotation><filename>a.jpg</filename>", FormatError,
                  ["malformed XML"]),
    "bomb": (BOMB, FormatError, ["refused", "entities"]),
    "external_entity": ('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                        "<annotation><filename>&x;</filename></annotation>", FormatError,
                        ["refused", "external references"]),
    "no_filename": (voc_xml(None, []), ImportValidationError, ["a.xml: no <filename>"]),
    "missing_value": (voc_xml("a.jpg", [obj("cat", (1, 1, 5, 5)), obj("dog", (1, 2, None, 9))]),
                      ImportValidationError, ["a.xml: object 1: ", "<xmax> is missing"]),
    "not_a_number": (voc_xml("a.jpg", [obj("dog", (1, "two", 5, 9))]), ImportValidationError,
                     ["a.xml: object 0: ", "<ymin> is 'two', not a number"]),
    "no_bndbox": (voc_xml("a.jpg", [obj("dog", None)]), ImportValidationError,
                  ["a.xml: object 0: ", "has no <bndbox>"]),
    "inverted": (voc_xml("a.jpg", [obj("dog", (20, 2, 10, 9))]), ImportValidationError,
                 ["a.xml: object 0: ", "xmax must exceed xmin"]),
    "no_name": (voc_xml("a.jpg", [obj(None, (1, 2, 10, 9))]), ImportValidationError,
                ["a.xml: object 0: ", "no <name>"]),
    "bad_size": (voc_xml("a.jpg", [], size=("wide", 48)), ImportValidationError,
                 ["a.xml: <size><width> is 'wide'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_voc_files_are_refused_naming_file_and_object(workspace, tmp_path, case):
    text, error, fragments = BAD_FILES[case]
    root = tmp_path / "voc"
    make_image(root / "JPEGImages" / "a.jpg")
    make_image(root / "JPEGImages" / "b.jpg", seed=1)
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(text)
    (root / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", [obj("ok", (1, 1, 9, 9))]))
    with pytest.raises(error) as info:
        workspace.import_dataset("voc", root, dataset="d")
    message = str(info.value)
    assert "a.xml" in message and "b.xml" not in message
    for fragment in fragments:
        assert fragment in message
    assert_nothing_imported(workspace, "d")


def test_two_xml_files_naming_one_image_are_refused(workspace, tmp_path):
    root = tmp_path / "voc"
    make_image(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(voc_xml("a.jpg", [obj("x", (1, 1, 9, 9))]))
    (root / "Annotations" / "a_copy.xml").write_text(voc_xml("a.jpg", [obj("y", (2, 2, 9, 9))]))
    with pytest.raises(ImportValidationError) as info:
        workspace.import_dataset("voc", root, dataset="d")
    message = str(info.value)
    assert "a_copy.xml: image 'a.jpg' is already described by" in message
    assert "merge" in message
    assert_nothing_imported(workspace, "d")


def test_box_outside_the_image_names_the_xml_file(workspace, tmp_path):
    """Geometry is checked by the importer against the real image size."""
    root = tmp_path / "voc"
    make_image(root / "JPEGImages" / "a.jpg", size=(64, 48))
    (root / "Annotations").mkdir()
    (root / "Annotations" / "a.xml").write_text(
        voc_xml("a.jpg", [obj("ok", (1, 1, 9, 9)), obj("far", (10, 10, 200, 40))]))
    with pytest.raises(ImportValidationError) as info:
        workspace.import_dataset("voc", root, dataset="d")
    assert "a.xml: annotation 1: bbox" in str(info.value)
    assert "outside the 64x48 image" in str(info.value)
    assert_nothing_imported(workspace, "d")


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_no_xml_files_is_a_format_error(tmp_path, layout):
    source = tmp_path / "voc"
    if layout == "empty":
        (source / "Annotations").mkdir(parents=True)
    with pytest.raises(FormatError, match="point at a VOC root"):
        read_voc(source)
