"""Image folders and class folders: reading, writing, round trips and refused input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelSchema
from labelwise.errors import FormatError, ImportValidationError, NotFoundError, ValidationError
from labelwise.io.exporter import load_draft
from labelwise.io.folder import read_class_folders, read_folder, write_class_folders
from tests.helpers import annotation_set, make_image


def make_files(root: Path, images: list[str], others: list[str] = ()) -> Path:
    """Distinct tiny images at ``images`` and text files at ``others`` under ``root``."""
    for i, rel in enumerate(images):
        make_image(root / rel, size=(16, 12), seed=i + 1)
    for rel in others:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("not an image")
    return root


def hashes(ws, dataset: str) -> dict[str, str]:
    return {a["path"]: a["content_hash"] for a in ws.list_assets(dataset, limit=1000)["items"]}


def labels_by_hash(ws, dataset: str) -> dict[str, tuple[str, ...]]:
    by_path = hashes(ws, dataset)
    return {
        by_path[rec.path]: tuple(sorted(a.label for a in rec.annotations))
        for rec in load_draft(ws, dataset).images
    }


def assert_nothing_imported(ws, dataset: str) -> None:
    with pytest.raises(NotFoundError):
        load_draft(ws, dataset)


# -- plain folders --------------------------------------------------------------------------------

def test_read_folder_recursive_sorted_skips_hidden_counts_others(tmp_path):
    root = make_files(
        tmp_path / "photos",
        ["b.png", "a.JPG", "2024/june/c.webp", ".hidden.jpg", ".cache/d.jpg"],
        others=["notes.txt", "2024/meta.json", ".DS_Store"],
    )
    draft = read_folder(root, tags=["batch-1", "batch-1", "raw"])
    assert [r.path for r in draft.images] == ["2024/june/c.webp", "a.JPG", "b.png"]
    assert draft.info == {"ignored_files": 2}
    assert draft.images_root == root
    assert all(r.tags == ["batch-1", "raw"] and r.annotations == [] for r in draft.images)
    assert draft.schema.classes == []


def test_read_folder_paths_relative_to_a_given_images_root(tmp_path):
    root = make_files(tmp_path / "photos", ["2024/a.jpg", "2023/b.jpg"])
    draft = read_folder(root / "2024", images=root)
    assert [r.path for r in draft.images] == ["2024/a.jpg"]
    assert draft.images_root == root
    with pytest.raises(FormatError, match="not inside the images folder"):
        read_folder(root / "2024", images=root / "2023")


def test_folder_import_with_tags_and_idempotent_reimport(workspace, tmp_path):
    ws = workspace
    root = make_files(tmp_path / "photos", ["a.jpg", "sub/b.png", "sub/deeper/c.jpg"],
                      others=["readme.md"])
    report = ws.import_dataset("folder", root, dataset="d", tags=["new"])
    assert (report.assets_added, report.annotations_added) == (3, 0)
    tagged = ws.list_assets("d", tag="new")["items"]
    assert sorted(a["path"] for a in tagged) == ["a.jpg", "sub/b.png", "sub/deeper/c.jpg"]
    assert {(a["width"], a["height"]) for a in tagged} == {(16, 12)}

    again = ws.import_dataset("folder", root, dataset="d", tags=["new"])
    assert (again.assets_added, again.annotations_added, again.assets_existing) == (0, 0, 3)
    assert len(ws.list_assets("d")["items"]) == 3


@pytest.mark.parametrize("layout", ["missing", "empty", "only_other_files", "a_file"])
def test_nothing_to_import_is_a_format_error(workspace, tmp_path, layout):
    source = tmp_path / "photos"
    if layout == "empty":
        source.mkdir()
    elif layout == "only_other_files":
        make_files(source, [], others=["a.txt", "b/c.csv", ".hidden.jpg"])
    elif layout == "a_file":
        make_image(source, fmt="PNG")
    with pytest.raises(FormatError) as info:
        workspace.import_dataset("folder", source, dataset="d")
    message = str(info.value)
    assert message.startswith(str(source))
    expected = {
        "missing": "folder not found",
        "empty": "no image files; labelwise imports",
        "only_other_files": "no image files (2 other file(s) ignored)",
        "a_file": "is a file, not a folder",
    }[layout]
    assert expected in message
    assert_nothing_imported(workspace, "d")


def test_symlink_to_a_file_outside_is_refused(workspace, tmp_path):
    outside = make_image(tmp_path / "secret" / "s.jpg", seed=9)
    root = make_files(tmp_path / "photos", ["a.jpg"])
    os.symlink(outside, root / "link.jpg")
    os.symlink(root / "a.jpg", root / "inside.jpg")  # a link that stays inside is fine

    draft = read_folder(root)
    assert [r.path for r in draft.images] == ["a.jpg", "inside.jpg", "link.jpg"]
    with pytest.raises(ImportValidationError) as info:
        workspace.import_dataset("folder", root, dataset="d")
    message = str(info.value)
    assert "nothing was imported" in message
    assert "path 'link.jpg' resolves to" in message and "outside the images folder" in message
    assert "inside.jpg" not in message
    assert_nothing_imported(workspace, "d")


# -- class folders --------------------------------------------------------------------------------

def test_read_class_folders(tmp_path):
    root = make_files(
        tmp_path / "classes",
        ["cat/a.jpg", "cat/kittens/b.jpg", "dog/c.jpg", "loose.jpg", "_unlabeled/u.jpg",
         ".trash/x.jpg"],
        others=["dog/labels.txt"],
    )
    (root / "empty_class").mkdir()
    draft = read_class_folders(root)
    assert [(r.path, [a.label for a in r.annotations]) for r in draft.images] == [
        ("_unlabeled/u.jpg", []), ("cat/a.jpg", ["cat"]), ("cat/kittens/b.jpg", ["cat"]),
        ("dog/c.jpg", ["dog"]), ("loose.jpg", []),
    ]
    assert [(c.name, c.kind) for c in draft.schema.classes] == [
        ("cat", "category"), ("dog", "category"), ("empty_class", "category")]
    assert draft.schema.multi_label is False
    assert draft.info == {"ignored_files": 1}


def test_class_folders_without_subfolders_suggest_folder_import(workspace, tmp_path):
    root = make_files(tmp_path / "flat", ["a.jpg", "b.jpg"])
    with pytest.raises(FormatError, match="labelwise import folder") as info:
        workspace.import_dataset("classfolders", root, dataset="d")
    assert str(info.value).startswith(f"{root}: has no subfolders")
    assert_nothing_imported(workspace, "d")


def test_class_folders_round_trip(workspace, tmp_path):
    ws = workspace
    root = make_files(tmp_path / "classes",
                      ["cat/a.jpg", "cat/b.png", "dog/c.jpg", "_unlabeled/d.jpg"])
    report = ws.import_dataset("classfolders", root, dataset="orig")
    assert (report.assets_added, report.annotations_added) == (4, 3)

    export = ws.export_dataset("orig", "classfolders", tmp_path / "out")
    assert (export.num_images, export.num_annotations, export.files) == (4, 3, [])
    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*.*")) == [
        "_unlabeled/d.jpg", "cat/a.jpg", "cat/b.png", "dog/c.jpg"]
    ws.import_dataset("classfolders", tmp_path / "out", dataset="copy")

    assert annotation_set(load_draft(ws, "copy")) == annotation_set(load_draft(ws, "orig"))
    assert hashes(ws, "copy") == hashes(ws, "orig")
    again = ws.import_dataset("classfolders", tmp_path / "out", dataset="copy")
    assert (again.assets_added, again.annotations_added) == (0, 0)


def test_class_folders_export_flattens_and_disambiguates(workspace, tmp_path):
    ws = workspace
    root = make_files(tmp_path / "classes", [
        "cat/x.jpg", "cat/indoor/x.jpg", "cat/outdoor/sunny/x.jpg", "cat/y.jpg", "top.jpg"])
    ws.import_dataset("classfolders", root, dataset="orig")
    ws.export_dataset("orig", "classfolders", tmp_path / "out")

    assert sorted(p.relative_to(tmp_path / "out").as_posix()
                  for p in (tmp_path / "out").rglob("*.jpg")) == [
        "_unlabeled/top.jpg", "cat/cat__indoor__x.jpg", "cat/cat__outdoor__sunny__x.jpg",
        "cat/cat__x.jpg", "cat/y.jpg"]
    ws.import_dataset("classfolders", tmp_path / "out", dataset="copy")
    assert labels_by_hash(ws, "copy") == labels_by_hash(ws, "orig")


def test_write_class_folders_places_records_and_skips_objects(tmp_path):
    draft = DatasetDraft(schema=LabelSchema(), images=[
        ImageRecord(path="b/p.jpg", annotations=[Annotation("cat"), Annotation("cat")]),
        ImageRecord(path="a/p.jpg", annotations=[Annotation("cat"),
                                                 Annotation("box", bbox=(1, 1, 2, 2))]),
        ImageRecord(path="P.jpg", annotations=[Annotation("cat")]),
        ImageRecord(path="q.jpg"),
    ])
    result = write_class_folders(draft, tmp_path)
    # Sorted order decides: 'P.jpg' keeps its name, a/ and b/ get their folder as a prefix.
    assert [r.path for r in draft.images] == [
        "cat/b__p.jpg", "cat/a__p.jpg", "cat/P.jpg", "_unlabeled/q.jpg"]
    assert (result.num_images, result.num_annotations, result.files) == (4, 3, [])
    assert result.skipped == {"object: class folders hold image-level categories only": 1}


def test_write_class_folders_numbers_names_still_taken(tmp_path):
    draft = DatasetDraft(schema=LabelSchema(), images=[
        ImageRecord(path="a__x.jpg", annotations=[Annotation("c")]),
        ImageRecord(path="a/x.jpg", annotations=[Annotation("c")]),
        ImageRecord(path="x.jpg", annotations=[Annotation("c")]),
    ])
    write_class_folders(draft, tmp_path)
    assert [r.path for r in draft.images] == ["c/a__x.jpg", "c/a__x~2.jpg", "c/x.jpg"]


@pytest.mark.parametrize("label, expected", [
    ("a/b", "cannot be a folder name"), ("..", "cannot be a folder name"),
    (".hidden", "starts with '.'"), ("_unlabeled", "is reserved"),
])
def test_write_class_folders_refuses_unfit_class_names(tmp_path, label, expected):
    draft = DatasetDraft(schema=LabelSchema(), source="dataset d", images=[
        ImageRecord(path="ok.jpg", annotations=[Annotation("fine")]),
        ImageRecord(path="x.jpg", annotations=[Annotation(label)]),
    ])
    with pytest.raises(ValidationError) as info:
        write_class_folders(draft, tmp_path)
    assert f"x.jpg: class {label!r} {expected}" in str(info.value)
    assert [r.path for r in draft.images] == ["ok.jpg", "x.jpg"]  # nothing was moved


def test_multi_label_images_cannot_be_exported_as_class_folders(workspace, tmp_path):
    ws = workspace
    make_files(tmp_path / "src" / "images", ["a.jpg", "b.jpg"])
    (tmp_path / "src" / "labels.csv").write_text("a.jpg,cat,indoor\nb.jpg,dog\n")
    ws.import_dataset("csv", tmp_path / "src" / "labels.csv", dataset="d")
    with pytest.raises(ValidationError) as info:
        ws.export_dataset("d", "classfolders", tmp_path / "out")
    message = str(info.value)
    assert "one class per image" in message and "export as csv" in message
    assert "a.jpg: has 2 categories (cat, indoor)" in message
    assert not list((tmp_path / "out").rglob("*.jpg"))
