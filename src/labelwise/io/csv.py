"""CSV for categorization: one row per image, ``path,label[,label...]``.

Reading: ``read_csv(source)`` takes the .csv file (or a folder holding ``labels.csv``).

- The first row is a header when its first cell is ``path``, ``file``, ``filename``,
  ``file_name`` or ``image`` (any case); otherwise it is data.
- Cells are comma-separated; a file whose first line has no comma but a tab or a semicolon
  uses that instead (spreadsheet exports in some locales).
- Every non-empty cell after the path is a label (an image-level ``category`` class); the same
  label twice on a row counts once. A row with no labels is an unlabeled image. Any row with
  two or more labels makes the schema multi-label. Blank rows are skipped.
- The file must be UTF-8 (a byte-order mark is fine). Paths are relative to the images
  folder: ``--images``, else ``images/`` next to the CSV if it exists, else the CSV's folder.

Writing: ``write_csv(draft, dest)`` writes ``dest/labels.csv`` with the header
``path,label,label_2,...`` (as many label columns as the most-labeled image needs), one row
per image including unlabeled ones. The exporter copies images to ``dest/images``, which is
where ``read_csv(dest / "labels.csv")`` looks for them. Object annotations are counted in
``skipped``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelClass, LabelSchema
from labelwise.errors import FormatError, ImportValidationError
from labelwise.io.formats import WriteResult

FILENAME = "labels.csv"
IMAGES_DIR = "images"
HEADER_NAMES = {"path", "file", "filename", "file_name", "image"}
_MAX_PROBLEMS = 1000


# -- reading ------------------------------------------------------------------------------------

def read_csv(source: Path, *, images: Path | None = None) -> DatasetDraft:
    """Parse a ``path,label[,label...]`` CSV into a draft of image-level categories.

    Example: rows ``a.jpg,cat`` and ``b.jpg,cat,indoor`` give two images, classes ``cat`` and
    ``indoor``, and a multi-label schema.
    """
    source = _csv_file(Path(source))
    text = _decode(source)
    draft = csv_to_draft(text, source=str(source))
    if images is None:
        images = source.parent / IMAGES_DIR
        if not images.is_dir():
            images = source.parent
    draft.images_root = Path(images)
    return draft


def _csv_file(source: Path) -> Path:
    if source.is_dir():
        if (source / FILENAME).is_file():
            return source / FILENAME
        raise FormatError(f"{source}: is a folder without {FILENAME}; point at the .csv file")
    if not source.is_file():
        raise FormatError(f"{source}: file not found; check the path to the .csv file")
    return source


def _decode(source: Path) -> str:
    """The file's text; empty, binary and non-UTF-8 files are FormatErrors naming the row."""
    try:
        data = source.read_bytes()
    except OSError as err:
        raise FormatError(f"{source}: cannot read: {err.strerror}") from err
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FormatError(
            f"{source}: row {_line_of(data, nul)}: contains NUL bytes, so it is a binary file "
            "(or UTF-16 text), not a UTF-8 CSV; save it as 'CSV UTF-8' and import again"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise FormatError(
            f"{source}: row {_line_of(data, err.start)}: byte 0x{data[err.start]:02x} is not "
            "UTF-8; save the file as UTF-8 ('CSV UTF-8' in a spreadsheet) and import again"
        ) from err
    if not text.strip():
        raise FormatError(
            f"{source}: the file is empty; add one row per image: path,label[,label...]"
        )
    return text


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def csv_to_draft(text: str, *, source: str = "CSV") -> DatasetDraft:
    """Convert CSV text to a draft; all row problems are reported together."""
    problems: list[str] = []
    schema = LabelSchema()
    records: list[ImageRecord] = []
    first_row: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    first = True
    try:
        for cells in reader:
            row = reader.line_num
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if first:
                first = False
                if cells[0].lower() in HEADER_NAMES:
                    continue
            path, labels = cells[0], list(dict.fromkeys(c for c in cells[1:] if c))
            if not path:
                problems.append(f"{source}: row {row}: no path in the first column; put the image "
                                "path first: path,label[,label...]")
                continue
            if path in first_row:
                problems.append(
                    f"{source}: row {row}: {path!r} is also on row {first_row[path]}; put all "
                    f"of an image's labels on one row ({path},label1,label2,...)"
                )
                continue
            first_row[path] = row
            for label in labels:
                schema.add(LabelClass(label, "category"))
            if len(labels) > 1:
                schema.multi_label = True
            records.append(ImageRecord(
                path=path, annotations=[Annotation(label=label) for label in labels],
                origin=f"row {row}",
            ))
    except csv.Error as err:
        raise FormatError(
            f"{source}: row {reader.line_num}: cannot parse the CSV ({err}); check the quotes "
            "on that row"
        ) from err
    if problems:
        raise ImportValidationError(
            f"{source}: {len(problems)} problem(s) in the CSV; nothing was imported",
            problems=problems[:_MAX_PROBLEMS],
        )
    if not records:
        raise FormatError(f"{source}: no data rows (only a header); add rows path,label")
    return DatasetDraft(schema=schema, images=records, source=source)


def _delimiter(text: str) -> str:
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if "," not in first:
        for candidate in ("\t", ";"):
            if candidate in first:
                return candidate
    return ","


# -- writing ------------------------------------------------------------------------------------

def draft_to_rows(draft: DatasetDraft) -> tuple[list[list[str]], WriteResult]:
    """Header plus one row per image; object annotations are counted as skipped."""
    result = WriteResult()
    body = []
    for rec in draft.images:
        labels: list[str] = []
        for ann in rec.annotations:
            if ann.is_category:
                labels.append(ann.label)
            else:
                result.skipped["object: CSV holds image-level categories only"] += 1
        labels = list(dict.fromkeys(labels))
        result.num_annotations += len(labels)
        body.append([rec.path, *labels])
    width = max((len(r) - 1 for r in body), default=1) or 1
    header = ["path", "label", *(f"label_{k}" for k in range(2, width + 1))]
    rows = [header, *(r + [""] * (width + 1 - len(r)) for r in body)]
    result.num_images = len(body)
    return rows, result


def write_csv(draft: DatasetDraft, dest: Path, *, filename: str = FILENAME) -> WriteResult:
    """Write ``dest/labels.csv``; images are placed under ``dest/images`` by the exporter."""
    rows, result = draft_to_rows(draft)
    path = Path(dest) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    result.files.append(path)
    return result
