"""Pascal VOC XML: one annotation file per image, object boxes with their flags.

Reading: ``read_voc(source)`` takes a VOC root (``Annotations/`` + ``JPEGImages/``), a folder
of ``.xml`` files (searched recursively, e.g. LabelImg's XML next to each image) or one
``.xml`` file. Images default to ``source/JPEGImages`` when it exists, else ``source``. An
image's path is the XML file's folder (relative to the annotations folder) joined with its
``<filename>``, so ``Annotations/a/b.xml`` naming ``b.jpg`` is the image ``a/b.jpg``.

Conventions:

- Boxes: ``x = xmin``, ``y = ymin``, ``w = xmax - xmin``, ``h = ymax - ymin``; coordinates are
  taken as written (no 1-pixel shift for VOC's 1-based origin), so write -> read is exact.
- Every other single-value child of ``<object>`` (``difficult``, ``truncated``, ``occluded``,
  ``pose``, ...) becomes an attribute: whole numbers as ``int``, other numbers as ``float``,
  anything else as text. Nested elements (``<part>``, ``<actions>``) are not read.
- Classes are object classes with the ``bbox`` tool, in the order first seen (XML files in
  sorted path order, objects in file order).
- ``<folder>``, ``<path>`` and ``<size><depth>`` are kept in the image metadata under ``"voc"``.
- Splits: each ``ImageSets/Main/<split>.txt`` (one image id per line) names a split. Class
  files (``<class>_<split>.txt``, two columns), ``default.txt`` (all images, no split) and
  ``trainval.txt`` when ``train.txt`` or ``val.txt`` exists are not splits. An image listed in
  exactly one split file gets that split; in several, none.

Errors name the XML file and the object, counted from 0 in file order ("object 1" is the
second ``<object>``), as the importer numbers annotations. XML is parsed with ``defusedxml``:
entity expansion (the "billion laughs" bomb) and external entities are refused with a
FormatError.

Writing: ``write_voc(draft, dest)`` writes ``dest/Annotations/<image path>.xml`` for every
image (also those without objects) and ``dest/ImageSets/Main/default.txt``; the exporter puts
images under ``dest/JPEGImages``. Objects with a box are written as boxes (numbers as integers
when whole); image-level categories and objects without a box are counted in ``skipped``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import defusedxml
from defusedxml import ElementTree as SafeET

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelClass, LabelSchema
from labelwise.errors import FormatError, ImportValidationError
from labelwise.io.formats import WriteResult

ANNOTATIONS_DIR = "Annotations"
IMAGES_DIR = "JPEGImages"
SPLITS_DIR = "ImageSets/Main"
DEFAULT_SPLIT_FILE = "default.txt"
_BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")
# Children of <object> that are structure, not attributes.
_RESERVED = {"name", "bndbox", "part", "actions", "point", "polygon", "attributes", "segm"}
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_INT = re.compile(r"^[+-]?\d+$")
_MAX_PROBLEMS = 1000


# -- reading ------------------------------------------------------------------------------------

def read_voc(source: Path, *, images: Path | None = None) -> DatasetDraft:
    """Parse VOC XML files into a draft (images are checked later by the importer).

    Example: ``read_voc(Path("VOC2007"))`` reads ``VOC2007/Annotations/*.xml`` with images in
    ``VOC2007/JPEGImages`` and splits from ``VOC2007/ImageSets/Main``.
    """
    source = Path(source)
    ann_root, default_images = _layout(source)
    xml_files = _xml_files(source, ann_root)
    # A generator: one parsed tree in memory at a time, however many files there are.
    docs = ((p.relative_to(ann_root).as_posix(), _parse_file(p), str(p)) for p in xml_files)
    draft = voc_to_draft(docs, source=str(source))
    if source.is_dir():
        voc_root = ann_root.parent if ann_root.name == ANNOTATIONS_DIR else source
        _apply_splits(draft, voc_root / SPLITS_DIR)
    draft.images_root = Path(images) if images is not None else default_images
    return draft


def _layout(source: Path) -> tuple[Path, Path]:
    """(folder the XML paths are relative to, default images folder)."""
    if source.is_file():
        return source.parent, source.parent
    if not source.is_dir():
        raise FormatError(
            f"{source}: not found; point at a VOC root (with {ANNOTATIONS_DIR}/ and "
            f"{IMAGES_DIR}/), a folder of .xml files or one .xml file"
        )
    if (source / ANNOTATIONS_DIR).is_dir():
        jpeg = source / IMAGES_DIR
        return source / ANNOTATIONS_DIR, jpeg if jpeg.is_dir() else source
    # Pointed at VOC2007/Annotations itself: the images are next door.
    sibling = source.parent / IMAGES_DIR
    if source.name == ANNOTATIONS_DIR and sibling.is_dir():
        return source, sibling
    return source, source


def _xml_files(source: Path, ann_root: Path) -> list[Path]:
    if source.is_file():
        if source.suffix.lower() != ".xml":
            raise FormatError(f"{source}: not an .xml file; point at a VOC root or XML file")
        return [source]
    files = sorted(
        p for p in ann_root.rglob("*")
        if p.suffix.lower() == ".xml" and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(ann_root).parts)
    )
    if not files:
        raise FormatError(
            f"{ann_root}: no .xml files found; point at a VOC root (with {ANNOTATIONS_DIR}/) "
            "or the folder that holds the VOC XML files"
        )
    return files


def _parse_file(path: Path) -> ET.Element:
    """Parse one XML file safely; any failure is a FormatError naming the file and the fix."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FormatError(f"{path}: cannot read: {err.strerror}") from err
    try:
        return SafeET.fromstring(data)
    except defusedxml.DefusedXmlException as err:
        raise FormatError(
            f"{path}: refused: the XML declares entities or external references "
            f"({type(err).__name__}), which VOC files never need and XML bombs use; "
            "remove the <!DOCTYPE ...> block"
        ) from err
    except SafeET.ParseError as err:
        raise FormatError(
            f"{path}: malformed XML ({err}); fix the file (or delete it) and import again"
        ) from err


def voc_to_draft(
    files: Iterable[tuple[str, ET.Element, str]], *, source: str = "VOC"
) -> DatasetDraft:
    """Convert parsed VOC documents to a draft.

    ``files`` holds ``(relpath, root, name)`` per XML file: its path relative to the
    annotations folder (POSIX, e.g. ``"a/b.xml"``), its root element, and the name used in
    messages. Each record's ``external_id`` is the VOC image id: ``relpath`` without ``.xml``.
    """
    problems: list[str] = []
    schema = LabelSchema()
    records: list[ImageRecord] = []
    seen: dict[str, str] = {}
    for rel, root, name in files:
        rec, errs = _record(rel, root, name)
        if errs:
            problems.extend(f"{name}: {e}" for e in errs)
            continue
        if rec.path in seen:
            problems.append(
                f"{name}: image {rec.path!r} is already described by {seen[rec.path]}; each image "
                "may have one XML file: merge the <object>s into one file and delete the other"
            )
            continue
        seen[rec.path] = name
        for ann in rec.annotations:
            schema.add(LabelClass(ann.label, "object", "bbox"))
        records.append(rec)
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        raise ImportValidationError(
            f"{source}: {len(problems)} problem(s) in the VOC files; nothing was imported",
            problems=shown,
        )
    return DatasetDraft(schema=schema, images=records, source=source)


def _record(rel: str, root: ET.Element, name: str) -> tuple[ImageRecord, list[str]]:
    errs: list[str] = []
    if root.tag != "annotation":
        return ImageRecord(path=""), [
            f"root element is <{root.tag}>, not <annotation>; is this a Pascal VOC file?"
        ]
    filename = _text(root, "filename")
    if not filename:
        return ImageRecord(path=""), [
            "no <filename>; add <filename>IMAGE.jpg</filename> naming the image file"
        ]
    folder = str(PurePosixPath(rel).parent)
    path = filename if folder == "." else f"{folder}/{filename}"
    width, height, depth = _size(root, errs)
    meta = {k: v for k, v in (("folder", _text(root, "folder")), ("path", _text(root, "path")),
                              ("depth", depth)) if v not in (None, "")}
    rec = ImageRecord(
        path=path, width=width, height=height, metadata={"voc": meta} if meta else {},
        external_id=rel[:-4] if rel.lower().endswith(".xml") else rel, origin=name,
    )
    # Counted from 0, like the importer's "annotation N" for the same object.
    for i, obj in enumerate(root.findall("object")):
        ann, err = _object(obj)
        if err:
            errs.append(f"object {i}: {err}")
        else:
            rec.annotations.append(ann)
    return rec, errs


def _size(root: ET.Element, errs: list[str]) -> tuple[int | None, int | None, int | None]:
    """Declared width, height, depth; 0 or missing means unknown (some tools write 0)."""
    size = root.find("size")
    if size is None:
        return None, None, None
    out = []
    for key in ("width", "height", "depth"):
        raw = _text(size, key)
        if raw in (None, ""):
            out.append(None)
            continue
        value = _number(raw)
        if value is None or value < 0 or value != int(value):
            errs.append(f"<size><{key}> is {raw!r}, not a whole number of pixels; fix or remove it")
            out.append(None)
            continue
        out.append(int(value) or None)
    return out[0], out[1], out[2]


def _object(obj: ET.Element) -> tuple[Annotation | None, str | None]:
    label = _text(obj, "name")
    if not label:
        return None, "no <name>; add <name>CLASS</name> with the object's class"
    box = obj.find("bndbox")
    if box is None:
        return None, f"{label!r} has no <bndbox>; add <bndbox> with xmin, ymin, xmax, ymax"
    values = {}
    for key in _BOX_KEYS:
        raw = _text(box, key)
        value = _number(raw) if raw else None
        if value is None:
            what = "missing" if not raw else f"{raw!r}, not a number"
            return None, f"{label!r}: <bndbox><{key}> is {what}; give all of xmin, ymin, xmax, ymax"
        values[key] = value
    xmin, ymin, xmax, ymax = (values[k] for k in _BOX_KEYS)
    if xmax <= xmin or ymax <= ymin:
        return None, (
            f"{label!r}: box xmin={_fmt(xmin)} ymin={_fmt(ymin)} xmax={_fmt(xmax)} "
            f"ymax={_fmt(ymax)} is empty or inverted (xmax must exceed xmin, ymax ymin); "
            "fix the corners or delete the object"
        )
    attrs = {
        child.tag: _value(child.text.strip())
        for child in obj
        if child.tag not in _RESERVED and len(child) == 0 and child.text and child.text.strip()
    }
    return Annotation(
        label=label, bbox=(xmin, ymin, xmax - xmin, ymax - ymin), attributes=attrs or None
    ), None


def _text(parent: ET.Element, tag: str) -> str | None:
    el = parent.find(tag)
    return None if el is None or el.text is None else el.text.strip()


def _number(raw: str) -> int | float | None:
    """'12' -> 12, '12.5' -> 12.5; anything else (also nan/inf) -> None."""
    if _INT.match(raw):
        return int(raw)
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _value(raw: str) -> int | float | str:
    number = _number(raw)
    return raw if number is None else number


def _apply_splits(draft: DatasetDraft, folder: Path) -> None:
    """Set ``record.split`` from ``ImageSets/Main/<split>.txt`` (see the module docstring)."""
    if not folder.is_dir():
        return
    files = {p.stem: p for p in sorted(folder.glob("*.txt")) if "_" not in p.stem}
    files.pop(Path(DEFAULT_SPLIT_FILE).stem, None)
    if "trainval" in files and ("train" in files or "val" in files):
        del files["trainval"]
    member: dict[str, list[str]] = {}
    for split, path in files.items():
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise FormatError(
                f"{path}: cannot read the split file ({err}); fix or remove it"
            ) from err
        for line in lines:
            cells = line.split()
            if len(cells) == 1:  # class files have a second column; they are not splits
                member.setdefault(cells[0], []).append(split)
    for rec in draft.images:
        splits = member.get(str(rec.external_id), [])
        if len(splits) == 1:
            rec.split = splits[0]


# -- writing ------------------------------------------------------------------------------------

@dataclass
class _Doc:
    """One image's XML document, ready to write."""

    xml_rel: str  # path under Annotations/, e.g. "a/b.xml"
    element: ET.Element
    objects: int = 0
    skipped: Counter = field(default_factory=Counter)


def write_voc(draft: DatasetDraft, dest: Path) -> WriteResult:
    """Write ``dest/Annotations/*.xml`` and ``dest/ImageSets/Main/default.txt``.

    Images go to ``dest/JPEGImages/<record.path>`` (the exporter copies them).
    """
    dest = Path(dest)
    result = WriteResult()
    ids = []
    for doc in draft_to_voc(draft):
        path = dest / ANNOTATIONS_DIR / doc.xml_rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.indent(doc.element)
        ET.ElementTree(doc.element).write(path, encoding="utf-8", xml_declaration=False)
        result.files.append(path)
        result.num_images += 1
        result.num_annotations += doc.objects
        result.skipped.update(doc.skipped)
        ids.append(doc.xml_rel[:-4])
    listing = dest / SPLITS_DIR / DEFAULT_SPLIT_FILE
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    result.files.append(listing)
    return result


def draft_to_voc(draft: DatasetDraft) -> list[_Doc]:
    """One XML document per image, in draft order.

    The XML file is the image path with ``.xml`` for its suffix; when two images differ only
    in suffix (``a.jpg``, ``a.png``) each keeps its full name (``a.jpg.xml``) so ids stay unique.
    """
    stems = Counter(_stem(r.path).casefold() for r in draft.images)
    docs = []
    for rec in draft.images:
        stem = _stem(rec.path)
        docs.append(_document(rec, f"{rec.path if stems[stem.casefold()] > 1 else stem}.xml"))
    return docs


def _stem(path: str) -> str:
    p = PurePosixPath(path)
    return str(p.with_suffix("")) if p.suffix else path


def _document(rec: ImageRecord, xml_rel: str) -> _Doc:
    root = ET.Element("annotation")
    doc = _Doc(xml_rel=xml_rel, element=root)
    _leaf(root, "folder", IMAGES_DIR)
    _leaf(root, "filename", PurePosixPath(rec.path).name)
    if rec.width and rec.height:
        size = ET.SubElement(root, "size")
        _leaf(size, "width", str(rec.width))
        _leaf(size, "height", str(rec.height))
        _leaf(size, "depth", "3")
    _leaf(root, "segmented", "0")
    for ann in rec.annotations:
        if ann.is_category:
            doc.skipped["category: VOC holds object boxes only"] += 1
            continue
        if ann.bbox is None:
            doc.skipped[f"{ann.kind} without a box: VOC holds boxes only"] += 1
            continue
        x, y, w, h = ann.bbox
        if not (w > 0 and h > 0):
            doc.skipped["object with an empty box (zero width or height)"] += 1
            continue
        if ann.kind != "bbox":
            doc.skipped[f"{ann.kind} shape: written as its box (VOC holds boxes only)"] += 1
        obj = ET.SubElement(root, "object")
        _leaf(obj, "name", ann.label)
        for key, value in (ann.attributes or {}).items():
            text = _attribute_text(key, value)
            if text is None:
                doc.skipped[f"attribute {key!r}: not a single value with an XML-safe name"] += 1
            else:
                _leaf(obj, key, text)
        box = ET.SubElement(obj, "bndbox")
        for key, value in zip(_BOX_KEYS, (x, y, x + w, y + h), strict=True):
            _leaf(box, key, _fmt(value))
        doc.objects += 1
    return doc


def _leaf(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _attribute_text(key: Any, value: Any) -> str | None:
    """The XML text for one attribute, or None when VOC cannot hold it."""
    if not isinstance(key, str) or key in _RESERVED or not _XML_NAME.match(key):
        return None
    if key.lower().startswith("xml"):
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return _fmt(value) if math.isfinite(value) else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _fmt(value: float) -> str:
    """Whole numbers as integers ('12'), others in the shortest exact form ('12.25')."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)
