"""YOLO (Ultralytics) labels with a data.yaml: detect boxes, segment polygons, pose keypoints.

Reading: ``read_yolo(source)`` takes a ``data.yaml`` (or ``dataset.yaml``) file, or the folder
that holds one. The keys are the ones Ultralytics reads:

- ``path``: the dataset root, relative to the yaml's folder (default: that folder). The
  ``images`` option overrides it. Every image and label file must stay inside the root.
- ``train`` / ``val`` / ``test`` (``validation`` counts as ``val``): a folder (searched
  recursively for images; hidden entries and symlinked folders are skipped), a ``.txt`` file
  listing one image per line, or a list of those, relative to the root. List lines are
  relative to the list file's folder (``./images/a.jpg``) or absolute inside the root. As in
  Ultralytics, a ``../x`` that does not exist is tried as ``x`` (Roboflow writes
  ``../train/images``).
- ``names`` (a list, or a mapping ``index: name``; required), ``nc`` (must match ``names``),
  ``kpt_shape`` (``[K, 2]`` or ``[K, 3]``), ``flip_idx`` (a permutation of ``0..K-1`` that is
  its own inverse) and ``kpt_names`` (``index: [K point names]``, optional).

Paths: ``draft.images_root`` is the dataset root and each ``ImageRecord.path`` is relative to
it (``images/train/x.jpg``). Its label file replaces the last ``images`` folder of that path
by ``labels`` and the extension by ``.txt`` (``labels/train/x.txt``), the rule Ultralytics
applies, taken inside the root; without an ``images`` folder the label file sits next to the
image. No label file means an image without objects. Two images with the same stem in one
folder share one label file, as they do in Ultralytics.

Splits: an image's ``split`` is the key it was listed under. An image listed under several
keys belongs to the first of train, val, test, so a ``val`` equal to ``train`` (as in the
files ``write_yolo`` writes) adds no split. The ``split`` option reads only that key.

Lines (blank lines are skipped; values are separated by whitespace):

- detect: ``class cx cy w h``; segment: ``class x1 y1 x2 y2 x3 y3 ...`` (at least 3 points);
  pose: ``class cx cy w h`` and K points of ``x y`` (``[K, 2]``) or ``x y v`` (``[K, 3]``).
- The task is the ``task`` option, else ``pose`` when data.yaml has ``kpt_shape``, else each
  line by its length: 5 values is a box, an odd count of 7 or more a polygon. With
  ``task="detect"`` a polygon line is read as its bounding box, as Ultralytics trains on it.
- The class index is a whole number below ``len(names)``. Coordinates are fractions of the
  image width and height. A value may lie outside 0..1 by at most one pixel
  (``labelwise.core.geometry.EDGE_TOLERANCE``, the importer's rule for every format) and is
  then clamped into the image; a box is checked by its edges, not only its centre.
- Pose visibility: ``[K, 3]`` keeps ``v`` (0 not labeled, 1 hidden, 2 visible); ``[K, 2]``
  gives ``v = 2`` to every point except ``(0, 0)``, which is unlabeled. Unlabeled points are
  stored as ``(0, 0, 0)``.

To convert coordinates the reader needs each image's size: it reads only the image header
(Pillow, no decoding); the importer does the full image check afterwards.

Classes keep the order of ``names``. Their tool: ``keypoints`` for pose (every class gets the
skeleton: K = 17 is the ``coco-person-17`` template and K = 33 ``full-body-33`` unless
``kpt_names`` says otherwise, other K are points ``kp0..`` or the ``kpt_names``, without edges;
``flip_idx`` gives the flip pairs), ``polygon`` for segment, ``bbox`` for detect. Read by line
length, a class used only with polygons is ``polygon``, else ``bbox``; an unused class is
``polygon`` when the files hold polygons and no boxes.

Every problem is collected with its file and line before anything is raised: data.yaml
problems as a FormatError, paths leaving the root as an UnsafePathError, image headers and
label lines as an ImportValidationError.

Writing: ``write_yolo(draft, dest, task=None, split_name="train")`` writes
``dest/labels/<split_name>/<path>.txt`` for every image (an empty file when it has no objects,
so "no objects" stays distinct from "not labeled") and ``dest/data.yaml``; the exporter copies
images to ``dest/images/<split_name>/<path>``.

- ``<path>``: the record's path without a leading ``images/<split_name>/`` and without any
  other ``images`` folder (the label rule keys on the last one), so an image read from
  ``images/train/x.jpg`` goes back to ``images/train/x.jpg``. Paths whose label files would
  collide get ``_1``, ``_2`` ... before the suffix. ``record.path`` is updated to match.
- data.yaml: ``train`` and ``val`` both ``images/<split_name>`` (loaders require both),
  ``nc``, ``names`` as ``{index: name}``; for pose ``kpt_shape: [K, 3]``, ``flip_idx`` (the
  full permutation) and ``kpt_names``. It has no ``path`` key: Ultralytics then resolves the
  folders against the yaml's own folder (a ``path: .`` would be taken from the working
  directory), so the export can be moved.
- Task: the ``task`` option, else ``pose`` when a class uses the keypoints tool, else
  ``segment`` when any annotation has polygons, else ``detect``. Class indices follow the
  schema order of the object classes the task writes: all of them for detect, those with the
  polygon tool or polygon annotations for segment, keypoints classes for pose (which must all
  have the same number of points).
- Numbers are written with 8 decimals (trailing zeros dropped) and clamped to 0..1: the
  error is at most 5e-9 of the image side, under 1e-3 px for sides up to 200,000 px.
- Detect writes each object's box (from its polygons or labeled keypoints when it has none).
  Segment writes polygons; several rings are joined into one the way Ultralytics'
  ``merge_multi_segment`` does: consecutive rings are linked at their closest vertices and the
  links are walked there and back, zero-width bridges that leave the area unchanged. Pose
  writes the box (from labeled keypoints when missing) and every point as ``x y v``,
  unlabeled points as ``0 0 0``.
- What a task cannot hold is counted in ``WriteResult.skipped`` by reason: image-level
  categories, crowd regions (Ultralytics skips them too), RLE masks and boxes in segment,
  objects without keypoints in pose, rows repeated within a file (loaders drop them).
  Confidence, source and attributes have no place in YOLO label files and are not written.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.geometry import EDGE_TOLERANCE, keypoints_bbox, polygon_bbox
from labelwise.core.schema import LabelClass, LabelSchema, Skeleton, skeleton_template
from labelwise.errors import (
    FormatError,
    ImportValidationError,
    LabelwiseError,
    NotFoundError,
    UnsafePathError,
    ValidationError,
)
from labelwise.io.formats import WriteResult
from labelwise.io.images import IMAGE_SUFFIXES, is_image_name
from labelwise.io.paths import resolve_inside

TASKS = ("detect", "segment", "pose")
YAML_FILES = ("data.yaml", "dataset.yaml")
SPLIT_KEYS = ("train", "val", "test")
DECIMALS = 8
_TEMPLATES_BY_SIZE = {17: "coco-person-17", 33: "full-body-33"}
_MAX_PROBLEMS = 1000

SKIP_CATEGORY = "category: YOLO has no image-level labels"
SKIP_CROWD = "iscrowd: YOLO has no crowd regions (Ultralytics skips them too)"
SKIP_NO_SIZE = "no image size: coordinates cannot be normalized"
SKIP_DUPLICATE = "duplicate: a repeated row in one label file (loaders drop them)"
SKIP_NO_BOX = "no box: the object has no box, polygon or labeled keypoint to place one"
SKIP_EMPTY_BOX = "empty box: the box has no area inside the image"


# -- data.yaml ----------------------------------------------------------------------------------

@dataclass
class YoloConfig:
    """A checked data.yaml: the dataset root, class names, splits and keypoint layout."""

    yaml_path: Path
    root: Path
    names: list[str]
    splits: dict[str, list[str]]  # train/val/test -> folders or list files as written
    kpt_shape: tuple[int, int] | None = None  # (K, 2 or 3)
    flip_idx: list[int] | None = None
    kpt_names: dict[int, list[str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line number

    def where(self, key: str) -> str:
        """``data.yaml: line 3 (train)`` for messages."""
        line = self.lines.get(key)
        return f"{self.yaml_path}: line {line} ({key})" if line else f"{self.yaml_path}: {key!r}"


def find_yaml(source: Path) -> Path:
    """The data.yaml ``source`` names: the file itself, or ``data.yaml``/``dataset.yaml`` in it."""
    source = Path(source)
    if source.is_dir():
        for name in YAML_FILES:
            if (source / name).is_file():
                return source / name
        raise FormatError(
            f"{source}: no {' or '.join(YAML_FILES)} in this folder; pass the dataset's YAML "
            "file itself, or add a data.yaml with 'names' and 'train'/'val'"
        )
    if not source.is_file():
        raise FormatError(f"{source}: file not found; pass a data.yaml or the folder holding it")
    return source


def load_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse data.yaml with ``yaml.safe_load``; also return each top-level key's line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not UTF-8 text; save the file as UTF-8") from err
    except OSError as err:
        raise FormatError(f"{path}: cannot read: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)  # only for line numbers
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise FormatError(
            f"{path}: {where}malformed YAML ({what}); fix the file and import again"
        ) from err
    except RecursionError as err:
        raise FormatError(f"{path}: the YAML is nested too deeply to read") from err
    if not isinstance(data, dict):
        raise FormatError(
            f"{path}: the top level must be a mapping with 'names' and 'train'/'val' keys, "
            f"got {type(data).__name__}"
        )
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines.setdefault(key_node.value, key_node.start_mark.line + 1)
    return data, lines


def parse_config(
    data: dict[str, Any], yaml_path: Path, *, lines: dict[str, int] | None = None,
    root: Path | None = None,
) -> YoloConfig:
    """Check a parsed data.yaml; raise one FormatError that lists every problem.

    ``root`` overrides the yaml's ``path``. Split folders are not looked at here.
    """
    cfg = YoloConfig(yaml_path=yaml_path, root=Path("."), names=[], splits={}, lines=lines or {})
    problems: list[str] = []
    cfg.root = _root(data, cfg, root, problems)

    if "names" not in data:
        nc = data.get("nc")
        hint = f" (nc is {nc}: list {nc} names)" if _is_int(nc) else ""
        problems.append(
            f"{yaml_path}: no 'names'{hint}; add the class names, e.g. names: [cat, dog], "
            "in class-index order"
        )
    else:
        names, err = _names(data["names"])
        if err:
            problems.append(f"{cfg.where('names')}: {err}")
        else:
            cfg.names = names
            nc = data.get("nc")
            if nc is not None and (not _is_int(nc) or nc != len(names)):
                problems.append(
                    f"{cfg.where('nc')}: nc is {nc!r} but 'names' has {len(names)} classes; "
                    "make them agree (or drop nc)"
                )

    bad_splits = False
    for key in SPLIT_KEYS:
        raw = data.get(key)
        alias = key
        if key == "val" and raw is None and data.get("validation") is not None:
            raw, alias = data["validation"], "validation"
        if raw is None or raw == "":
            continue
        if isinstance(raw, str):
            cfg.splits[key] = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(v, str) and v for v in raw):
            cfg.splits[key] = list(raw)
        else:
            bad_splits = True
            problems.append(
                f"{cfg.where(alias)}: must be a folder, a .txt list of images, or a list of "
                f"those, got {raw!r:.80}"
            )
        if alias != key and alias in cfg.lines:
            cfg.lines.setdefault(key, cfg.lines[alias])
    if not cfg.splits and not bad_splits:
        problems.append(
            f"{yaml_path}: lists no images under 'train', 'val' or 'test'; add e.g. "
            "train: images/train"
        )

    _keypoint_layout(data, cfg, problems)
    if problems:
        raise FormatError(
            f"{yaml_path}: {len(problems)} problem(s) in the YOLO data.yaml; nothing was imported",
            problems=problems,
        )
    return cfg


def _root(data: dict[str, Any], cfg: YoloConfig, root: Path | None, problems: list[str]) -> Path:
    base = cfg.yaml_path.parent
    if root is not None:
        chosen, where = Path(root), f"the images folder {root}"
    elif data.get("path") not in (None, ""):
        p = Path(str(data["path"]))
        chosen, where = (p if p.is_absolute() else base / p), cfg.where("path")
    else:
        return base
    if not chosen.is_dir():
        problems.append(
            f"{where}: the dataset root {chosen} is not a folder; fix 'path' (relative to "
            "the yaml's folder) or drop it to use the yaml's folder"
        )
    return chosen


def _names(raw: Any) -> tuple[list[str], str | None]:
    if isinstance(raw, list):
        items = list(enumerate(raw))
    elif isinstance(raw, dict):
        items = []
        for k, v in raw.items():
            if isinstance(k, bool) or not (_is_int(k) or (isinstance(k, str) and k.isdigit())):
                return [], f"key {k!r} is not a class index; write names as 0: cat, 1: dog"
            items.append((int(k), v))
        items.sort(key=lambda kv: kv[0])
        indices = [k for k, _ in items]
        if indices != list(range(len(items))):
            return [], (f"class indices must be 0..{len(items) - 1} with none missing or "
                        f"repeated, got {indices[:20]}")
    else:
        return [], f"must be a list of class names or a mapping index: name, got {raw!r:.80}"
    names = []
    for i, v in items:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)) or not str(v).strip():
            return [], f"class {i} needs a non-empty name, got {v!r:.40}"
        names.append(str(v).strip())
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return [], f"class names must be unique; repeated: {dupes[:10]}"
    return names, None


def _keypoint_layout(data: dict[str, Any], cfg: YoloConfig, problems: list[str]) -> None:
    shape = data.get("kpt_shape")
    if shape is None:
        for key in ("flip_idx", "kpt_names"):
            if data.get(key) is not None:
                problems.append(f"{cfg.where(key)}: '{key}' needs kpt_shape: [K, 3] as well")
        return
    if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(v) for v in shape)
            and shape[0] >= 1 and shape[1] in (2, 3)):
        problems.append(
            f"{cfg.where('kpt_shape')}: must be [K, 2] or [K, 3] (K points of x y [visibility]), "
            f"got {shape!r:.80}"
        )
        return
    k = shape[0]
    cfg.kpt_shape = (k, shape[1])
    flip = data.get("flip_idx")
    if flip is not None:
        if not (isinstance(flip, list) and len(flip) == k and all(_is_int(v) for v in flip)
                and sorted(flip) == list(range(k))
                and all(flip[flip[i]] == i for i in range(k))):
            problems.append(
                f"{cfg.where('flip_idx')}: must list, for each of the {k} points, the point it "
                f"becomes when the image is mirrored (a permutation of 0..{k - 1} that undoes "
                f"itself), got {flip!r:.120}"
            )
        else:
            cfg.flip_idx = list(flip)
    raw = data.get("kpt_names")
    if raw is None:
        return
    if isinstance(raw, dict):
        entries = list(raw.items())
    elif isinstance(raw, list):
        entries = list(enumerate(raw))
    else:
        problems.append(f"{cfg.where('kpt_names')}: must map class index -> list of {k} names")
        return
    for ci, names in entries:
        ok_index = _is_int(ci) or (isinstance(ci, str) and ci.isdigit())
        if not ok_index or not isinstance(names, list) or len(names) != k or not all(
            isinstance(n, str) and n.strip() for n in names
        ) or len(set(names)) != k:
            problems.append(
                f"{cfg.where('kpt_names')}: class {ci!r}: needs {k} unique point names "
                f"(kpt_shape), got {names!r:.120}"
            )
            continue
        cfg.kpt_names[int(ci)] = [n.strip() for n in names]


# -- finding images -----------------------------------------------------------------------------

@dataclass(slots=True)
class _Listed:
    path: str  # relative to the root, POSIX
    split: str
    origin: str  # where it was listed, for messages


def list_images(cfg: YoloConfig, splits: list[str]) -> list[_Listed]:
    """Every image of ``splits`` in order, each once (the first split that lists it wins)."""
    format_problems: list[str] = []
    unsafe: list[str] = []
    other: list[str] = []
    seen: set[str] = set()
    out: list[_Listed] = []
    for key in splits:
        for value in cfg.splits.get(key, []):
            for item in _split_entry(cfg, key, value, format_problems, unsafe, other):
                if item.path not in seen:
                    seen.add(item.path)
                    out.append(item)
    if format_problems:
        raise FormatError(
            f"{cfg.yaml_path}: {len(format_problems)} problem(s) with the image folders in "
            "data.yaml; nothing was imported",
            problems=format_problems,
        )
    if unsafe:
        raise UnsafePathError(
            f"{cfg.yaml_path}: {len(unsafe)} path(s) lead outside the dataset root "
            f"{cfg.root}; nothing was imported",
            problems=unsafe,
        )
    if other:
        raise ImportValidationError(
            f"{cfg.yaml_path}: {len(other)} problem(s) in the image lists; nothing was imported",
            problems=other,
        )
    return out


def _split_entry(
    cfg: YoloConfig, key: str, value: str, format_problems: list[str], unsafe: list[str],
    other: list[str],
) -> list[_Listed]:
    where = cfg.where(key)
    target = _entry_path(cfg.root, value)
    if not target.exists():
        format_problems.append(
            f"{where}: {value!r} does not exist (looked for {target}); fix the path, which is "
            f"relative to the dataset root {cfg.root}"
        )
        return []
    rel = _inside(cfg.root, target)
    if rel is None:
        unsafe.append(
            f"{where}: {value!r} resolves to {os.path.realpath(target)}, outside the dataset "
            f"root {cfg.root}; move it inside, or set 'path' to a folder that holds it"
        )
        return []
    if target.is_dir():
        return [_Listed(p, key, p) for p in _walk(target, rel)]
    if target.suffix.lower() == ".txt":
        return _list_file(cfg, key, target, rel, unsafe, other)
    format_problems.append(
        f"{where}: {value!r} is a file but not a .txt list of images; point it at a folder "
        "of images or at a list file"
    )
    return []


def _entry_path(root: Path, value: str) -> Path:
    p = Path(value)
    target = p if p.is_absolute() else root / p
    if not target.exists() and value.startswith("../"):
        alt = root / value[3:]
        if alt.exists():
            return alt
    return target


def _inside(root: Path, path: Path) -> str | None:
    """``path`` relative to ``root`` (POSIX, '' for the root itself), or None when outside."""
    lexical = os.path.relpath(os.path.normpath(os.path.abspath(path)), os.path.abspath(root))
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    if lexical == ".":
        return ""
    if lexical == ".." or lexical.startswith(".." + os.sep):
        # Inside only through a symlink in the spelling of ``path``: use the real location.
        lexical = os.path.relpath(real, real_root)
    return PurePosixPath(*Path(lexical).parts).as_posix()


def _walk(folder: Path, rel: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        sub = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            if name.startswith(".") or not is_image_name(name):
                continue
            parts = [p for p in (rel, "" if sub == "." else sub, name) if p]
            found.append(PurePosixPath(*parts).as_posix())
    return found


def _list_file(
    cfg: YoloConfig, key: str, path: Path, rel: str, unsafe: list[str], other: list[str]
) -> list[_Listed]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        other.append(f"{rel}: not UTF-8 text; save the list file as UTF-8")
        return []
    except OSError as err:
        other.append(f"{rel}: cannot read: {err.strerror}")
        return []
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        raw = line.strip().replace("\\", "/")
        if not raw:
            continue
        p = Path(raw)
        img_rel = _inside(cfg.root, p if p.is_absolute() else path.parent / p)
        if img_rel is None:
            unsafe.append(
                f"{rel}: line {n}: {raw!r} is outside the dataset root {cfg.root}; list only "
                "images inside it (relative to the list file's folder)"
            )
        elif not is_image_name(img_rel):
            other.append(
                f"{rel}: line {n}: {raw!r} is not an image file name "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}); remove the line"
            )
        else:
            out.append(_Listed(img_rel, key, f"{rel} line {n}"))
    return out


def label_path(image_path: str) -> str:
    """The label file of an image, both relative to the dataset root.

    >>> label_path("images/train/a.jpg")
    'labels/train/a.txt'
    """
    parts = list(PurePosixPath(image_path).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return PurePosixPath(*parts).with_suffix(".txt").as_posix()


def _image_size(root: Path, rel: str) -> tuple[int, int] | str:
    """(width, height) from the image header, or why it cannot be read.

    Raises UnsafePathError when the file resolves outside ``root`` (a symlink out).
    """
    real = resolve_inside(root, rel)
    try:
        with Image.open(real) as im:
            return im.size
    except FileNotFoundError:
        return f"file not found at {real}; add the image or remove it from the list"
    except IsADirectoryError:
        return f"{real} is a folder, not an image file"
    except UnidentifiedImageError:
        return "not an image file Pillow can read; remove it or replace it with a JPEG/PNG"
    except Image.DecompressionBombError as err:
        return f"too many pixels to open safely ({err}); shrink the image"
    except (OSError, SyntaxError, ValueError) as err:
        return f"the image header cannot be read ({err}); re-export or replace the image"


def _read_labels(root: Path, rel: str) -> str | None:
    """The label file's text; None when there is none.

    Raises _Bad when it cannot be read, UnsafePathError when it resolves outside ``root``.
    """
    real = resolve_inside(root, rel)
    try:
        return real.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as err:
        raise _Bad("not UTF-8 text; save the label file as UTF-8") from err
    except OSError as err:
        raise _Bad(f"cannot read: {err.strerror}") from err


# -- label lines (pure) -------------------------------------------------------------------------

class _Bad(Exception):
    """One problem in one place; the message says what and how to fix it."""


@dataclass(frozen=True, slots=True)
class LineLayout:
    """How to read label lines: the task (None = by length), class count and keypoint shape."""

    task: str | None
    num_classes: int
    kpt_shape: tuple[int, int] | None = None


def parse_labels(
    text: str, layout: LineLayout, *, names: list[str], width: int, height: int, where: str
) -> tuple[list[Annotation], list[str]]:
    """Annotations (pixel coordinates) from one label file's text, and its problems by line.

    Example: ``parse_labels("0 0.5 0.5 0.25 0.5", LineLayout(None, 1), names=["cat"],
    width=64, height=48, where="a.txt")`` gives a ``cat`` box ``(24, 12, 16, 24)``.
    """
    anns: list[Annotation] = []
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            anns.append(_parse_line(tokens, layout, names=names, width=width, height=height))
        except _Bad as err:
            if len(problems) < _MAX_PROBLEMS:
                problems.append(f"{where}: line {n}: {err}")
    return anns, problems


def _parse_line(
    tokens: list[str], layout: LineLayout, *, names: list[str], width: int, height: int
) -> Annotation:
    shape = _line_shape(len(tokens), layout)
    values = [_number(t, i) for i, t in enumerate(tokens)]
    label = names[_class_index(values[0], tokens[0], layout.num_classes)]
    tol = (EDGE_TOLERANCE / width, EDGE_TOLERANCE / height)
    if shape == "polygon":
        ring = _ring(values[1:], width, height, tol)
        box = polygon_bbox([ring])
        if layout.task == "detect":
            return Annotation(label=label, bbox=box)
        return Annotation(label=label, bbox=box, polygons=[ring])
    box = _box(values[1:5], width, height, tol)
    if shape == "box":
        return Annotation(label=label, bbox=box)
    k, ndim = layout.kpt_shape  # type: ignore[misc]
    return Annotation(label=label, bbox=box,
                      keypoints=_keypoints(values[5:], k, ndim, width, height, tol))


def _line_shape(n: int, layout: LineLayout) -> str:
    if layout.task == "pose":
        k, ndim = layout.kpt_shape  # type: ignore[misc]
        want = 5 + k * ndim
        if n != want:
            raise _Bad(
                f"has {n} values but kpt_shape [{k}, {ndim}] needs {want}: class, cx cy w h, "
                f"then {k} points of {ndim} values; fix the line or kpt_shape in data.yaml"
            )
        return "pose"
    is_polygon = n >= 7 and n % 2 == 1
    if layout.task == "segment":
        if not is_polygon:
            raise _Bad(
                f"has {n} values; a segment line is class x1 y1 x2 y2 x3 y3 ... (an odd count "
                "of at least 7); fix the line, or import without task='segment' to read boxes"
            )
        return "polygon"
    if n == 5:
        return "box"
    if is_polygon:
        return "polygon"
    hint = "" if layout.task else " (keypoint lines need kpt_shape in data.yaml)"
    raise _Bad(
        f"has {n} values; expected 5 (class cx cy w h) or an odd count of at least 7 (class "
        f"x1 y1 x2 y2 x3 y3 ...){hint}; fix the line"
    )


def _number(token: str, column: int) -> float:
    try:
        v = float(token)
    except ValueError:
        raise _Bad(f"value {token!r:.20} (column {column + 1}) is not a number; "
                   "fix or remove the line") from None
    if not math.isfinite(v):
        raise _Bad(f"value {token!r:.20} (column {column + 1}) is not a finite number")
    return v


def _class_index(v: float, token: str, nc: int) -> int:
    if not v.is_integer():
        raise _Bad(f"class index {token!r:.20} is not a whole number; the first value of a "
                   "line is the class index")
    c = int(v)
    if not 0 <= c < nc:
        known = f"0-{nc - 1}" if nc else "none"
        raise _Bad(f"class index {c} is out of range: data.yaml 'names' has {nc} classes "
                   f"({known}); fix the label or add the class to 'names'")
    return c


def _fits(v: float, tol: float) -> bool:
    return -tol <= v <= 1 + tol


def _clamp(v: float) -> float:
    return min(max(v, 0.0), 1.0) + 0.0  # + 0.0 turns -0.0 into 0.0


_OUTSIDE = ("YOLO coordinates are fractions (0-1) of the image size {w}x{h}: divide pixel "
            "values by the width and height, or check that the labels belong to this image")


def _box(v: list[float], width: int, height: int, tol: tuple[float, float]) -> tuple:
    cx, cy, w, h = v
    if w <= 0 or h <= 0:
        raise _Bad(f"box width and height must be > 0, got {w:g} x {h:g}; fix or remove the line")
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    if not (_fits(x0, tol[0]) and _fits(x1, tol[0]) and _fits(y0, tol[1]) and _fits(y1, tol[1])):
        raise _Bad(
            f"box cx {cx:g} cy {cy:g} w {w:g} h {h:g} spans x {x0:g}..{x1:g}, y {y0:g}..{y1:g}, "
            "outside 0..1; " + _OUTSIDE.format(w=width, h=height)
        )
    x0, x1, y0, y1 = _clamp(x0), _clamp(x1), _clamp(y0), _clamp(y1)
    return (x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height)


def _ring(v: list[float], width: int, height: int, tol: tuple[float, float]) -> list[float]:
    ring = []
    for i in range(0, len(v), 2):
        x, y = v[i], v[i + 1]
        if not (_fits(x, tol[0]) and _fits(y, tol[1])):
            raise _Bad(f"polygon point {i // 2} ({x:g}, {y:g}) is outside 0..1; "
                       + _OUTSIDE.format(w=width, h=height))
        ring += [_clamp(x) * width, _clamp(y) * height]
    return ring


def _keypoints(
    v: list[float], k: int, ndim: int, width: int, height: int, tol: tuple[float, float]
) -> list[float]:
    out: list[float] = []
    for i in range(k):
        x, y = v[i * ndim], v[i * ndim + 1]
        if ndim == 3:
            vis = v[i * 3 + 2]
            if vis not in (0, 1, 2):
                raise _Bad(f"keypoint {i} has visibility {vis:g}; it must be 0 (not labeled), "
                           "1 (labeled, hidden) or 2 (visible)")
            vis = int(vis)
        else:
            vis = 0 if x == 0 and y == 0 else 2
        if vis == 0:
            out += [0.0, 0.0, 0]
            continue
        if not (_fits(x, tol[0]) and _fits(y, tol[1])):
            raise _Bad(f"keypoint {i} ({x:g}, {y:g}) is outside 0..1; "
                       + _OUTSIDE.format(w=width, h=height))
        out += [_clamp(x) * width, _clamp(y) * height, vis]
    return out


# -- reading ------------------------------------------------------------------------------------

def read_yolo(
    source: Path,
    *,
    images: Path | None = None,
    task: str | None = None,
    split: str | None = None,
) -> DatasetDraft:
    """Parse a YOLO dataset (data.yaml + label txt files) into a draft.

    ``task``: ``detect``, ``segment`` or ``pose`` (default: from data.yaml and each line).
    ``split``: read only ``train``, ``val`` or ``test``. ``images``: the dataset root,
    overriding data.yaml's ``path``.

    Example: ``read_yolo(Path("coco8"))`` reads ``coco8/data.yaml``; an image
    ``images/train/a.jpg`` has its labels in ``labels/train/a.txt``.
    """
    task = _check_task(task)
    yaml_path = find_yaml(Path(source))
    data, lines = load_yaml(yaml_path)
    cfg = parse_config(data, yaml_path, lines=lines, root=images)
    if task is None and cfg.kpt_shape is not None:
        task = "pose"
    if task == "pose" and cfg.kpt_shape is None:
        raise FormatError(
            f"{yaml_path}: task 'pose' needs kpt_shape: [K, 3] in data.yaml (K points per "
            "object); add it, or import with another task"
        )
    keys = _splits_to_read(cfg, split)
    listed = list_images(cfg, keys)
    layout = LineLayout(task, len(cfg.names), cfg.kpt_shape if task == "pose" else None)
    records = _read_records(cfg, listed, layout)
    schema = _schema(cfg, task, records)
    return DatasetDraft(
        schema=schema, images=records, source=str(yaml_path), images_root=cfg.root,
    )


def _check_task(task: str | None) -> str | None:
    if task is None or task == "auto":
        return None
    if task not in TASKS:
        raise LabelwiseError(f"unknown YOLO task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def _splits_to_read(cfg: YoloConfig, split: str | None) -> list[str]:
    if split is None:
        return [k for k in SPLIT_KEYS if k in cfg.splits]
    if split not in SPLIT_KEYS:
        raise LabelwiseError(f"unknown YOLO split {split!r}; choose one of {', '.join(SPLIT_KEYS)}")
    if split not in cfg.splits:
        raise NotFoundError(
            f"{cfg.yaml_path}: has no {split!r} images (it lists: "
            f"{', '.join(cfg.splits) or 'none'}); pick one of those"
        )
    return [split]


def _read_records(cfg: YoloConfig, listed: list[_Listed], layout: LineLayout) -> list[ImageRecord]:
    problems: list[str] = []
    unsafe: list[str] = []
    records: list[ImageRecord] = []
    with warnings.catch_warnings():
        # A huge header only warns here; the importer applies the workspace's pixel limit.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for item in listed:
            if len(problems) + len(unsafe) >= _MAX_PROBLEMS:
                break
            where = item.path if item.origin == item.path else f"{item.origin} ({item.path})"
            lab = label_path(item.path)
            try:
                size = _image_size(cfg.root, item.path)
                if isinstance(size, str):
                    problems.append(f"{where}: {size}")
                    continue
                text = _read_labels(cfg.root, lab)
            except UnsafePathError as err:
                unsafe.append(f"{where}: {err}")
                continue
            except _Bad as err:
                problems.append(f"{lab}: {err}")
                continue
            width, height = size
            anns: list[Annotation] = []
            if text:
                anns, bad = parse_labels(text, layout, names=cfg.names, width=width,
                                         height=height, where=lab)
                problems.extend(bad)
            records.append(ImageRecord(
                path=item.path, width=width, height=height, annotations=anns, split=item.split,
                origin=item.path if text is None else f"{item.path} (labels {lab})",
            ))
    if unsafe:
        raise UnsafePathError(
            f"{cfg.yaml_path}: {len(unsafe)} image or label file(s) resolve outside the dataset "
            f"root {cfg.root}; nothing was imported",
            problems=unsafe + problems[: _MAX_PROBLEMS - len(unsafe)],
        )
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        raise ImportValidationError(
            f"{cfg.yaml_path}: {len(shown)}{'+' if len(problems) > len(shown) else ''} "
            "problem(s) in the YOLO images and labels; nothing was imported",
            problems=shown,
        )
    return records


def _schema(cfg: YoloConfig, task: str | None, records: list[ImageRecord]) -> LabelSchema:
    used: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        for a in rec.annotations:
            used[a.label].add("polygon" if a.polygons else "bbox")
    all_kinds = set().union(*used.values()) if used else set()
    unused_tool = "polygon" if all_kinds == {"polygon"} else "bbox"
    schema = LabelSchema()
    for i, name in enumerate(cfg.names):
        if task == "pose":
            schema.add(LabelClass(name, "object", "keypoints", skeleton=_skeleton(cfg, i)))
            continue
        if task == "segment":
            tool = "polygon"
        elif task == "detect":
            tool = "bbox"
        else:
            kinds = used.get(name)
            tool = unused_tool if not kinds else ("polygon" if kinds == {"polygon"} else "bbox")
        schema.add(LabelClass(name, "object", tool))
    return schema


def _skeleton(cfg: YoloConfig, class_index: int) -> Skeleton:
    k = cfg.kpt_shape[0]  # type: ignore[index]
    names = cfg.kpt_names.get(class_index)
    template = _TEMPLATES_BY_SIZE.get(k)
    if template is not None:
        skel = skeleton_template(template)
        if names is not None and names != skel.keypoints:
            skel = Skeleton(names)
    else:
        skel = Skeleton(names or [f"kp{i}" for i in range(k)])
    if cfg.flip_idx is not None:
        skel.flip_pairs = [(i, j) for i, j in enumerate(cfg.flip_idx) if i < j]
    return skel


# -- writing (pure parts) -----------------------------------------------------------------------

def merge_rings(rings: list[list[float]]) -> list[float]:
    """Join polygon rings into one ring with zero-width bridges (Ultralytics' way).

    Ring i-1 and ring i are linked at their closest pair of vertices. The walk goes round the
    first ring, then through each middle ring from where it enters to where it leaves for the
    next, round the last ring, and back through the rest of each middle ring. Every bridge is
    walked once each way, so it adds no area: for disjoint rings of the same orientation the
    merged ring's area is the sum of theirs. ``rings``: flat ``[x1, y1, x2, y2, ...]`` lists.
    """
    pts = [np.asarray(r, dtype=float).reshape(-1, 2) for r in rings if len(r) >= 6]
    if len(pts) <= 1:
        return [float(v) for v in pts[0].reshape(-1)] if pts else []
    n = len(pts)
    entry, leave = [0] * n, [0] * n
    for i in range(1, n):
        d = ((pts[i - 1][:, None, :] - pts[i][None, :, :]) ** 2).sum(-1)
        leave[i - 1], entry[i] = (int(v) for v in np.unravel_index(int(np.argmin(d)), d.shape))
    path: list[np.ndarray] = []
    first = np.roll(pts[0], -leave[0], axis=0)
    path += [first, first[:1]]
    middle = []
    for i in range(1, n - 1):
        ring = np.roll(pts[i], -entry[i], axis=0)
        k = (leave[i] - entry[i]) % len(ring)
        middle.append((ring, k))
        path.append(ring[: k + 1])
    last = np.roll(pts[-1], -entry[-1], axis=0)
    path += [last, last[:1]]
    for ring, k in reversed(middle):
        path += [ring[k:], ring[:1]]
    return [float(v) for v in np.concatenate(path).reshape(-1)]


def _num(v: float) -> str:
    return f"{_clamp(v):.{DECIMALS}f}".rstrip("0").rstrip(".")


def _box_text(box: tuple, width: int, height: int) -> str | None:
    x, y, w, h = box
    x0, x1 = _clamp(x / width), _clamp((x + w) / width)
    y0, y1 = _clamp(y / height), _clamp((y + h) / height)
    if x1 <= x0 or y1 <= y0:
        return None
    return " ".join(_num(v) for v in ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))


def _kind(ann: Annotation) -> str:
    return "rle" if ann.rle is not None and not ann.polygons else ann.kind


def annotation_to_line(
    ann: Annotation, class_index: dict[str, int], width: int | None, height: int | None, *,
    task: str, num_keypoints: int | None = None,
) -> tuple[str | None, str | None]:
    """One label line for ``ann`` in ``task``, or ``(None, reason)`` when the task cannot hold it.

    ``class_index``: class name -> YOLO index. Example: a ``cat`` box ``(24, 12, 16, 24)`` on
    a 64x48 image in detect is ``"0 0.5 0.5 0.25 0.5"``.
    """
    if ann.is_category:
        return None, SKIP_CATEGORY
    if ann.iscrowd:
        return None, SKIP_CROWD
    if not width or not height:
        return None, SKIP_NO_SIZE
    cls = class_index.get(ann.label)
    if task == "segment":
        if not ann.polygons or cls is None:
            return None, f"{_kind(ann)}: YOLO segment labels are polygons"
        ring = merge_rings(ann.polygons)
        coords = " ".join(
            f"{_num(ring[i] / width)} {_num(ring[i + 1] / height)}" for i in range(0, len(ring), 2)
        )
        return f"{cls} {coords}", None
    if task == "pose":
        if ann.keypoints is None or cls is None:
            return None, f"{_kind(ann)}: YOLO pose labels need keypoints"
        if len(ann.keypoints) != 3 * (num_keypoints or 0):
            return None, f"keypoints: not {num_keypoints} points as kpt_shape says"
        box = ann.bbox or keypoints_bbox(ann.keypoints)
        if box is None:
            return None, SKIP_NO_BOX
        box_text = _box_text(box, width, height)
        if box_text is None:
            return None, SKIP_EMPTY_BOX
        kps = ann.keypoints
        points = []
        for i in range(0, len(kps), 3):
            v = int(kps[i + 2])
            points.append("0 0 0" if v == 0 else f"{_num(kps[i] / width)} "
                                                 f"{_num(kps[i + 1] / height)} {v}")
        return f"{cls} {box_text} {' '.join(points)}", None
    if cls is None:
        return None, f"{_kind(ann)}: the class is not an object class of the schema"
    box = ann.bbox
    if box is None and ann.polygons:
        box = polygon_bbox(ann.polygons)
    if box is None and ann.keypoints is not None:
        box = keypoints_bbox(ann.keypoints)
    if box is None:
        return None, SKIP_NO_BOX
    box_text = _box_text(box, width, height)
    if box_text is None:
        return None, SKIP_EMPTY_BOX
    return f"{cls} {box_text}", None


def auto_task(draft: DatasetDraft) -> str:
    """``pose`` if a class uses keypoints, else ``segment`` if any polygons, else ``detect``."""
    if any(c.kind == "object" and c.tool == "keypoints" for c in draft.schema.classes):
        return "pose"
    if any(a.polygons for r in draft.images for a in r.annotations):
        return "segment"
    return "detect"


def export_classes(draft: DatasetDraft, task: str) -> list[LabelClass]:
    """The object classes ``task`` writes, in schema order; their position is the YOLO index."""
    objects = [c for c in draft.schema.classes if c.kind == "object"]
    if task == "detect":
        return objects
    if task == "pose":
        return [c for c in objects if c.tool == "keypoints" and c.skeleton is not None]
    with_polygons = {a.label for r in draft.images for a in r.annotations if a.polygons}
    return [c for c in objects if c.tool == "polygon" or c.name in with_polygons]


def export_path(path: str, split_name: str) -> str:
    """Where an image goes under ``images/<split_name>``: no ``images`` folder left in it.

    >>> export_path("images/train/a.jpg", "train"), export_path("images/val/b.jpg", "train")
    ('a.jpg', 'val/b.jpg')
    """
    parts = list(PurePosixPath(path).parts)
    if len(parts) > 2 and parts[0] == "images" and parts[1] == split_name:
        parts = parts[2:]
    parts = [p for p in parts[:-1] if p != "images"] + parts[-1:]
    return PurePosixPath(*parts).as_posix()


def _export_paths(paths: list[str], split_name: str) -> list[str]:
    """Export paths whose label files (path without suffix) are all distinct."""
    used: set[str] = set()
    out = []
    for p in paths:
        candidate = PurePosixPath(export_path(p, split_name))
        k = 0
        while (key := candidate.with_suffix("").as_posix()) in used:
            k += 1
            base = PurePosixPath(export_path(p, split_name))
            candidate = base.with_name(f"{base.stem}_{k}{base.suffix}")
        used.add(key)
        out.append(candidate.as_posix())
    return out


def data_yaml(classes: list[LabelClass], *, split_name: str, task: str) -> dict[str, Any]:
    """The data.yaml mapping for ``classes`` (no ``path``: loaders use the yaml's folder)."""
    folder = f"images/{split_name}"
    data: dict[str, Any] = {
        "train": folder, "val": folder, "nc": len(classes),
        "names": {i: c.name for i, c in enumerate(classes)},
    }
    if task == "pose" and classes:
        skel = classes[0].skeleton
        assert skel is not None
        perm = list(range(len(skel)))
        for a, b in skel.flip_pairs:
            perm[a], perm[b] = b, a
        data["kpt_shape"] = [len(skel), 3]
        data["flip_idx"] = perm
        data["kpt_names"] = {i: list(c.skeleton.keypoints) for i, c in enumerate(classes)
                             if c.skeleton is not None}
    return data


# -- writing ------------------------------------------------------------------------------------

def images_dir(options: dict[str, Any]) -> str:
    """The folder under the export root that the exporter copies images into."""
    return f"images/{options.get('split_name', 'train')}"


def write_yolo(
    draft: DatasetDraft, dest: Path, *, task: str | None = None, split_name: str = "train"
) -> WriteResult:
    """Write ``dest/data.yaml`` and ``dest/labels/<split_name>/*.txt``; update record paths.

    ``task``: ``detect``, ``segment`` or ``pose`` (default: ``auto_task``). The exporter then
    copies each image to ``dest/images/<split_name>/<record.path>``.
    """
    split_name = _check_split_name(split_name)
    task = _check_task(task) or auto_task(draft)
    classes = export_classes(draft, task)
    num_keypoints = _pose_size(classes) if task == "pose" else None
    index = {c.name: i for i, c in enumerate(classes)}
    dest = Path(dest)
    label_root = dest / "labels" / split_name
    result = WriteResult()
    made: set[Path] = set()
    for rec, out in zip(draft.images, _export_paths([r.path for r in draft.images], split_name),
                        strict=True):
        rec.path = out
        lines: dict[str, None] = {}  # ordered, and repeats are found in O(1)
        for ann in rec.annotations:
            line, reason = annotation_to_line(ann, index, rec.width, rec.height, task=task,
                                              num_keypoints=num_keypoints)
            if reason is not None:
                result.skipped[reason] += 1
            elif line in lines:
                result.skipped[SKIP_DUPLICATE] += 1
            else:
                lines[line] = None  # type: ignore[index]
        target = label_root / PurePosixPath(out).with_suffix(".txt")
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        result.files.append(target)
        result.num_annotations += len(lines)
    result.num_images = len(draft.images)
    yaml_path = dest / "data.yaml"
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# YOLO {task} dataset. No 'path' key: folders are relative to this file's "
              "folder.\n")
    yaml_path.write_text(
        header + yaml.safe_dump(data_yaml(classes, split_name=split_name, task=task),
                                sort_keys=False, default_flow_style=None, allow_unicode=True),
        encoding="utf-8",
    )
    result.files.insert(0, yaml_path)
    return result


def _check_split_name(name: str) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or any(
        c in name for c in "/\\:"
    ):
        raise LabelwiseError(
            f"split_name {name!r} must be a plain folder name such as 'train' or 'val'"
        )
    return name


def _pose_size(classes: list[LabelClass]) -> int:
    if not classes:
        raise ValidationError(
            "YOLO pose needs a keypoints class, and this dataset has none; export with "
            "task='detect' or 'segment'"
        )
    sizes = {c.name: len(c.skeleton) for c in classes if c.skeleton is not None}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n!r} ({k} points)" for n, k in sizes.items())
        raise ValidationError(
            f"YOLO pose files hold one keypoint layout (kpt_shape), but the keypoints classes "
            f"differ: {listed}; export a dataset or split that uses one of them"
        )
    return next(iter(sizes.values()))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


__all__ = [
    "LineLayout", "YoloConfig", "annotation_to_line", "auto_task", "data_yaml", "export_classes",
    "export_path", "find_yaml", "images_dir", "label_path", "list_images", "load_yaml",
    "merge_rings", "parse_config", "parse_labels", "read_yolo", "write_yolo",
]
