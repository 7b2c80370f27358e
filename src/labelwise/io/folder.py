"""Folders of images: unlabeled (``folder``) or one subfolder per class (``classfolders``).

Both readers walk the folder recursively in sorted order and take every file whose suffix is
an image suffix (``labelwise.io.images.IMAGE_SUFFIXES``). Hidden files and folders (names
starting with ".") are skipped; other files are ignored and counted in
``draft.info["ignored_files"]``. Symlinked files are listed as they are (the importer refuses
those that lead outside the images folder); symlinked folders are not entered.

Image paths are relative to ``images`` when given (which must contain ``source``, so a
sub-folder can be imported with paths that match the whole tree), else to ``source``.

Class folders: each immediate subfolder of ``source`` is a ``category`` class named after
it, and every image inside it (at any depth) gets that category. Images directly in
``source`` and in ``_unlabeled/`` are imported without a label.

Writing class folders (``write_class_folders``) writes no annotation file: it moves each
record to ``<class>/<file name>`` (``_unlabeled/<file name>`` when it has no category) and the
exporter copies the images there. When two images of one folder share a file name, each
gets its former folder path joined with ``__`` as a prefix (``a/b/x.jpg`` -> ``a__b__x.jpg``);
a name still taken after that gets ``~2``, ``~3``, ... before its suffix. Names are compared
ignoring case (the export must also work on case-insensitive file systems). Images whose names
clash with no other keep them; the rest are placed in sorted path order, so the result is the
same every time.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelClass, LabelSchema
from labelwise.errors import FormatError, LabelwiseError, ValidationError
from labelwise.io.formats import WriteResult
from labelwise.io.images import IMAGE_SUFFIXES, is_image_name

UNLABELED = "_unlabeled"


# -- reading ------------------------------------------------------------------------------------

def read_folder(
    source: Path, *, images: Path | None = None, tags: list[str] | None = None
) -> DatasetDraft:
    """Every image under ``source`` (recursive, sorted), unlabeled; ``tags`` go on each one.

    Example: ``read_folder(Path("photos"), tags=["batch-1"])``.
    """
    source = _folder(Path(source))
    root = _images_root(source, images)
    tag_list = _tags(tags)
    found, ignored = _scan(source)
    if not found:
        raise FormatError(_no_images(source, ignored))
    records = [
        ImageRecord(path=_rel(p, root), tags=list(tag_list)) for p in found
    ]
    return DatasetDraft(
        schema=LabelSchema(), images=records, source=str(source), images_root=root,
        info={"ignored_files": ignored},
    )


def read_class_folders(source: Path, *, images: Path | None = None) -> DatasetDraft:
    """One category class per immediate subfolder of ``source``; its images get that class.

    Example: ``cats/a.jpg`` and ``dogs/b.jpg`` give classes ``cats`` and ``dogs``.
    """
    source = _folder(Path(source))
    root = _images_root(source, images)
    subfolders = sorted(
        e.name for e in os.scandir(source)
        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
    )
    if not subfolders:
        raise FormatError(
            f"{source}: has no subfolders, so there are no classes; put each class's images in "
            "a subfolder named after the class, or import unlabeled images with "
            "`labelwise import folder`"
        )
    schema = LabelSchema()
    records: list[ImageRecord] = []
    found, ignored = _scan(source, recurse=False)
    records.extend(ImageRecord(path=_rel(p, root)) for p in found)
    for name in subfolders:
        files, skipped = _scan(source / name)
        ignored += skipped
        if name == UNLABELED:
            records.extend(ImageRecord(path=_rel(p, root)) for p in files)
            continue
        schema.add(LabelClass(name, "category"))
        records.extend(
            ImageRecord(path=_rel(p, root), annotations=[Annotation(label=name)]) for p in files
        )
    if not records:
        raise FormatError(_no_images(source, ignored))
    records.sort(key=lambda r: r.path)
    return DatasetDraft(
        schema=schema, images=records, source=str(source), images_root=root,
        info={"ignored_files": ignored},
    )


def _folder(source: Path) -> Path:
    if not source.exists():
        raise FormatError(f"{source}: folder not found; check the path to the image folder")
    if not source.is_dir():
        raise FormatError(
            f"{source}: is a file, not a folder; point at the folder that holds the images"
        )
    return source


def _images_root(source: Path, images: Path | None) -> Path:
    if images is None:
        return source
    root = Path(images)
    src, top = Path(os.path.abspath(source)), Path(os.path.abspath(root))
    if src != top and top not in src.parents:
        raise FormatError(
            f"{source}: is not inside the images folder {root}; pass an --images folder that "
            "contains it, or leave --images out"
        )
    return root


def _tags(tags: list[str] | None) -> list[str]:
    out = []
    for tag in tags or []:
        if not isinstance(tag, str) or not tag.strip():
            raise LabelwiseError(f"tag {tag!r} is empty; give each --tag a name")
        out.append(tag.strip())
    return list(dict.fromkeys(out))


def _scan(folder: Path, *, recurse: bool = True) -> tuple[list[Path], int]:
    """(image files in sorted order, how many other visible files were ignored)."""
    found: list[Path] = []
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recurse else []
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if is_image_name(name):
                found.append(Path(dirpath) / name)
            else:
                ignored += 1
    found.sort(key=lambda p: p.as_posix())
    return found, ignored


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _no_images(source: Path, ignored: int) -> str:
    others = f" ({ignored} other file(s) ignored)" if ignored else ""
    return (
        f"{source}: no image files{others}; labelwise imports "
        f"{', '.join(sorted(IMAGE_SUFFIXES))}: point at the folder that holds the images"
    )


# -- writing ------------------------------------------------------------------------------------

def write_class_folders(draft: DatasetDraft, dest: Path) -> WriteResult:
    """Move each record to ``<class>/<file name>``; no annotation file is written.

    Raises ValidationError, changing nothing, when an image has several categories or a class
    name cannot be a folder name.
    """
    result = WriteResult()
    targets: list[str] = []
    problems: list[str] = []
    for rec in draft.images:
        cats = list(dict.fromkeys(a.label for a in rec.annotations if a.is_category))
        result.skipped["object: class folders hold image-level categories only"] += sum(
            1 for a in rec.annotations if not a.is_category
        )
        if len(cats) > 1:
            problems.append(f"{rec.path}: has {len(cats)} categories ({', '.join(cats)})")
            continue
        if cats and (why := _bad_folder_name(cats[0])):
            problems.append(f"{rec.path}: class {cats[0]!r} {why}")
            continue
        targets.append(cats[0] if cats else UNLABELED)
    if problems:
        raise ValidationError(
            f"{draft.source}: {len(problems)} image(s) cannot go into class folders; class "
            "folders hold one class per image, named like a folder: export as csv instead "
            "(it keeps several labels per image) or fix the labels",
            problems=problems,
        )
    result.skipped = +result.skipped  # drop zero counts
    for rec, path in zip(draft.images, _place(draft.images, targets), strict=True):
        rec.path = path
    result.num_images = len(draft.images)
    result.num_annotations = sum(1 for t in targets if t != UNLABELED)
    return result


def _bad_folder_name(name: str) -> str | None:
    if name in (".", "..") or any(c in name for c in '/\\\x00'):
        return "cannot be a folder name (it has '/', '\\' or is '.' / '..'); rename the class"
    if name.startswith("."):
        return "starts with '.', so its folder would be hidden and skipped; rename the class"
    if name == UNLABELED:
        return f"is reserved for images without a class ({UNLABELED}/); rename the class"
    return None


def _place(records: list[ImageRecord], folders: list[str]) -> list[str]:
    """A unique ``folder/name`` for each record (see the module docstring for the rule)."""
    names = [PurePosixPath(r.path).name for r in records]
    clashes = Counter((f, n.casefold()) for f, n in zip(folders, names, strict=True))
    keys = [(f, n.casefold()) for f, n in zip(folders, names, strict=True)]
    # Names without a clash are placed first so they always keep their name.
    order = sorted(range(len(records)), key=lambda i: (clashes[keys[i]] > 1, records[i].path))
    taken: set[tuple[str, str]] = set()
    out = [""] * len(records)
    for i in order:
        folder, name = folders[i], names[i]
        if clashes[keys[i]] > 1:
            parent = PurePosixPath(records[i].path).parent
            if str(parent) != ".":
                name = "__".join((*parent.parts, name))
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
        k = 2
        while (folder, name.casefold()) in taken:
            name = f"{stem}~{k}{suffix}"
            k += 1
        taken.add((folder, name.casefold()))
        out[i] = f"{folder}/{name}"
    return out
