"""CSV categorization labels: reading, writing, round trips and refused input."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelSchema
from labelwise.errors import FormatError, ImportValidationError, NotFoundError
from labelwise.io.csv import read_csv, write_csv
from labelwise.io.exporter import load_draft
from tests.helpers import annotation_set, make_image


def make_csv(folder: Path, text: str, *, images: list[str], encoding: str = "utf-8") -> Path:
    """Write ``labels.csv`` and the named images under ``folder/images``."""
    for i, name in enumerate(images):
        make_image(folder / "images" / name, size=(16, 12), seed=i + 1)
    path = folder / "labels.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def labels_by_hash(ws, dataset: str) -> dict[str, tuple[str, ...]]:
    """Each image's categories, keyed by content hash (independent of where the file sits)."""
    hashes = {a["path"]: a["content_hash"] for a in ws.list_assets(dataset, limit=1000)["items"]}
    return {
        hashes[rec.path]: tuple(sorted(a.label for a in rec.annotations if a.is_category))
        for rec in load_draft(ws, dataset).images
    }


# -- reading ------------------------------------------------------------------------------------

def test_read_csv_header_labels_and_multi_label(tmp_path):
    path = make_csv(tmp_path, "\ufeffPath,Label,Label\na.jpg,cat\nb.jpg, dog ,indoor,dog\n"
                    "\nc.jpg,,\nsub/d.jpg,cat\n", images=[])
    draft = read_csv(path)
    assert [(r.path, [a.label for a in r.annotations], r.origin) for r in draft.images] == [
        ("a.jpg", ["cat"], "row 2"),
        ("b.jpg", ["dog", "indoor"], "row 3"),  # stripped, the repeated dog counts once
        ("c.jpg", [], "row 5"),  # empty label cells: an unlabeled image
        ("sub/d.jpg", ["cat"], "row 6"),
    ]
    assert [(c.name, c.kind) for c in draft.schema.classes] == [
        ("cat", "category"), ("dog", "category"), ("indoor", "category")]
    assert draft.schema.multi_label is True
    assert all(a.is_category for r in draft.images for a in r.annotations)


def test_read_csv_without_header_single_label_and_other_separators(tmp_path):
    draft = read_csv(make_csv(tmp_path / "a", "a.jpg,cat\nb.jpg,dog\n", images=[]))
    assert [r.path for r in draft.images] == ["a.jpg", "b.jpg"]
    assert draft.schema.multi_label is False
    semi = read_csv(make_csv(tmp_path / "b", "filename;label\na.jpg;cat;dog\n", images=[]))
    assert [a.label for a in semi.images[0].annotations] == ["cat", "dog"]
    tabs = read_csv(make_csv(tmp_path / "c", "a.jpg\tcat\n", images=[]))
    assert [a.label for a in tabs.images[0].annotations] == ["cat"]


def test_read_csv_images_folder_defaults(tmp_path):
    with_images = make_csv(tmp_path / "x", "a.jpg,cat\n", images=["a.jpg"])
    assert read_csv(with_images).images_root == tmp_path / "x" / "images"
    assert read_csv(tmp_path / "x").images_root == tmp_path / "x" / "images"  # folder source
    bare = tmp_path / "y" / "list.csv"
    bare.parent.mkdir()
    bare.write_text("a.jpg,cat\n")
    assert read_csv(bare).images_root == tmp_path / "y"
    assert read_csv(bare, images=tmp_path).images_root == tmp_path


def test_write_csv_header_rows_and_skips(tmp_path):
    draft = DatasetDraft(schema=LabelSchema(), images=[
        ImageRecord(path="a,1.jpg", annotations=[
            Annotation("cat"), Annotation("cat"), Annotation("dog"),
            Annotation("x", bbox=(1, 1, 2, 2)),
        ]),
        ImageRecord(path="b.jpg"),
        ImageRecord(path="c.jpg", annotations=[Annotation("dog")]),
    ])
    result = write_csv(draft, tmp_path)
    assert (tmp_path / "labels.csv").read_text() == (
        'path,label,label_2\n"a,1.jpg",cat,dog\nb.jpg,,\nc.jpg,dog,\n')
    assert (result.num_images, result.num_annotations) == (3, 3)
    assert result.skipped == {"object: CSV holds image-level categories only": 1}
    back = read_csv(tmp_path / "labels.csv")
    assert [(r.path, [a.label for a in r.annotations]) for r in back.images] == [
        ("a,1.jpg", ["cat", "dog"]), ("b.jpg", []), ("c.jpg", ["dog"])]


# -- round trips through a workspace --------------------------------------------------------------

def test_csv_round_trip_keeps_multi_label_and_images(workspace, tmp_path):
    ws = workspace
    source = make_csv(tmp_path / "src", "image,labels\na.jpg,cat,indoor\nb.jpg,dog\nc.jpg\n"
                      "sub/d.jpg,dog,cat\n", images=["a.jpg", "b.jpg", "c.jpg", "sub/d.jpg"])
    report = ws.import_dataset("csv", source, dataset="orig")
    assert (report.assets_added, report.annotations_added) == (4, 5)
    assert load_draft(ws, "orig").schema.multi_label is True

    export = ws.export_dataset("orig", "csv", tmp_path / "out")
    assert (export.num_images, export.num_annotations) == (4, 5)
    assert (tmp_path / "out" / "images" / "sub" / "d.jpg").is_file()
    ws.import_dataset("csv", tmp_path / "out" / "labels.csv", dataset="copy")

    assert annotation_set(load_draft(ws, "copy")) == annotation_set(load_draft(ws, "orig"))
    assert labels_by_hash(ws, "copy") == labels_by_hash(ws, "orig")
    assert load_draft(ws, "copy").schema.multi_label is True


def test_csv_reimport_is_idempotent(workspace, tmp_path):
    ws = workspace
    source = make_csv(tmp_path, "a.jpg,cat,indoor\nb.jpg,dog\nc.jpg\n",
                      images=["a.jpg", "b.jpg", "c.jpg"])
    ws.import_dataset("csv", source, dataset="d")
    again = ws.import_dataset("csv", source, dataset="d")
    assert (again.assets_added, again.annotations_added) == (0, 0)
    assert (again.assets_existing, again.annotations_existing) == (3, 3)


def test_class_folders_and_csv_give_the_same_labels(workspace, tmp_path):
    ws = workspace
    for i, rel in enumerate(["cat/a.jpg", "cat/b.jpg", "dog/c.jpg", "loose.jpg"]):
        make_image(tmp_path / "classes" / rel, size=(16, 12), seed=i + 10)
    ws.import_dataset("classfolders", tmp_path / "classes", dataset="folders")

    ws.export_dataset("folders", "csv", tmp_path / "as_csv")
    ws.import_dataset("csv", tmp_path / "as_csv", dataset="from_csv")
    assert labels_by_hash(ws, "from_csv") == labels_by_hash(ws, "folders")

    ws.export_dataset("from_csv", "classfolders", tmp_path / "as_folders")
    ws.import_dataset("classfolders", tmp_path / "as_folders", dataset="back")
    assert labels_by_hash(ws, "back") == labels_by_hash(ws, "folders")
    assert sorted(labels_by_hash(ws, "back").values()) == [(), ("cat",), ("cat",), ("dog",)]


# -- refused input --------------------------------------------------------------------------------

BAD_FILES = {
    "empty": (b"", FormatError, ["labels.csv: the file is empty"]),
    "blank_lines": (b"\n \n", FormatError, ["labels.csv: the file is empty"]),
    "header_only": (b"path,label\n", FormatError, ["labels.csv: no data rows"]),
    "latin1": ("a.jpg,cat\nb.jpg,chat\nc.jpg,caf\u00e9\n".encode("latin-1"), FormatError,
               ["labels.csv: row 3: byte 0xe9 is not UTF-8", "save the file as UTF-8"]),
    "utf16": ("a.jpg,cat\n".encode("utf-16"), FormatError,
              ["labels.csv: row 1: contains NUL bytes", "not a UTF-8 CSV"]),
    "binary": (b"a.jpg,cat\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", FormatError,
               ["labels.csv: row 4: contains NUL bytes"]),
    "no_path": (b"path,label\na.jpg,cat\n,dog\n", ImportValidationError,
                ["labels.csv: row 3: no path in the first column"]),
    "same_path_twice": (b"a.jpg,cat\nb.jpg,dog\na.jpg,indoor\n", ImportValidationError,
                        ["labels.csv: row 3: 'a.jpg' is also on row 1",
                         "put all of an image's labels on one row"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_files_are_refused_naming_file_and_row(workspace, tmp_path, case):
    data, error, fragments = BAD_FILES[case]
    make_image(tmp_path / "images" / "a.jpg")
    make_image(tmp_path / "images" / "b.jpg", seed=1)
    (tmp_path / "labels.csv").write_bytes(data)
    with pytest.raises(error) as info:
        workspace.import_dataset("csv", tmp_path / "labels.csv", dataset="d")
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(NotFoundError):
        load_draft(workspace, "d")


def test_missing_image_names_the_row_and_imports_nothing(workspace, tmp_path):
    source = make_csv(tmp_path, "a.jpg,cat\nmissing.jpg,dog\n", images=["a.jpg"])
    with pytest.raises(ImportValidationError) as info:
        workspace.import_dataset("csv", source, dataset="d")
    assert "labels.csv: row 2: missing.jpg: file not found" in str(info.value)
    with pytest.raises(NotFoundError):
        load_draft(workspace, "d")


def test_bad_rows_leave_an_existing_dataset_unchanged(workspace, tmp_path):
    ws = workspace
    source = make_csv(tmp_path, "a.jpg,cat\nb.jpg,dog\n", images=["a.jpg", "b.jpg"])
    ws.import_dataset("csv", source, dataset="d")
    before = load_draft(ws, "d")
    source.write_text("a.jpg,cat,new\nb.jpg,dog\nb.jpg,other\n")
    with pytest.raises(ImportValidationError, match="row 3"):
        ws.import_dataset("csv", source, dataset="d")
    after = load_draft(ws, "d")
    assert annotation_set(after) == annotation_set(before)
    assert [r.path for r in after.images] == ["a.jpg", "b.jpg"]
    assert [c.name for c in after.schema.classes] == ["cat", "dog"]
    assert after.schema.multi_label is False


def test_missing_csv_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="file not found"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(FormatError, match="point at the .csv file"):
        read_csv(tmp_path)
