"""COCO JSON: boxes, polygons, RLE masks, keypoints with skeletons, image-level categories.

Reading: ``read_coco(path, images=DIR)``. Image-level categories come either as annotations
with no ``bbox``/``segmentation``/``keypoints`` or as an image's ``category_ids`` list.
Predictions with a ``score`` become model-sourced annotations with that confidence.

Writing: ``write_coco(draft, dest)`` writes ``dest/annotations.json`` that pycocotools'
``COCO()`` and ``COCOeval`` load: every object annotation has ``bbox``, ``area`` and
``iscrowd``; keypoints carry ``num_keypoints`` and their category its ``keypoints`` names and
1-based ``skeleton``. Image-level categories go to each image's ``category_ids`` so that
``COCOeval`` never meets an annotation without a box.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.geometry import (
    keypoints_bbox,
    num_labeled,
    polygon_area,
    polygon_bbox,
    rle_area,
    rle_bbox,
    rle_counts,
    rle_problem,
)
from labelwise.core.schema import LabelClass, LabelSchema, Skeleton, flip_pairs_by_name
from labelwise.errors import FormatError, ImportValidationError
from labelwise.io.formats import WriteResult

FILENAME = "annotations.json"
_IMAGE_KEYS = {"id", "file_name", "width", "height", "category_ids", "tags"}
_MAX_PROBLEMS = 1000
_MAX_TEXT = 200  # longest name, id or tag the database keeps
_MAX_ID = 2**63  # category ids are stored as 64-bit integers
_ID_TYPES = (int, float, str)  # exact types: a bool is not an id


def read_coco(source: Path, *, images: Path | None = None) -> DatasetDraft:
    """Parse a COCO JSON file into a draft (images are checked later by the importer)."""
    source = Path(source)
    try:
        raw = source.read_bytes()
    except FileNotFoundError as err:
        raise FormatError(f"{source}: file not found; check the path to the COCO JSON") from err
    except OSError as err:
        raise FormatError(f"{source}: cannot read: {err.strerror}; check the path") from err
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise FormatError(
            f"{source}: malformed JSON ({err}); fix the file and import again"
        ) from err
    _refuse_nul(raw, source)
    del raw
    draft = coco_to_draft(data, source=str(source), check_nul=False)
    if images is None:
        images = source.parent / "images" if (source.parent / "images").is_dir() else source.parent
    draft.images_root = Path(images)
    return draft


def _refuse_nul(raw: bytes, source: Path | str) -> None:
    """Refuse strings holding NUL (written as \\u0000): PostgreSQL cannot store them."""
    at = raw.find(b"\\u0000")
    while at >= 0:
        i = at - 1
        while i >= 0 and raw[i] == 0x5C:  # backslashes before it
            i -= 1
        if (at - 1 - i) % 2 == 0:  # not an escaped backslash followed by plain 'u0000'
            line = raw.count(b"\n", 0, at) + 1
            raise FormatError(
                f"{source}: line {line}: a string holds a NUL character (\\u0000), which "
                "cannot be stored; remove it and import again"
            )
        at = raw.find(b"\\u0000", at + 1)


def coco_to_draft(data: Any, *, source: str = "COCO", check_nul: bool = True) -> DatasetDraft:
    """Convert parsed COCO JSON to a draft. Consumes ``data['annotations']`` to save memory.

    ``check_nul=False`` skips the scan for NUL characters, for callers (``read_coco``) that
    already scanned the raw file.
    """
    if not isinstance(data, dict):
        raise FormatError(f"{source}: the top level must be a JSON object with 'images', "
                          f"'annotations' and 'categories', got {type(data).__name__}")
    if check_nul:
        try:
            encoded = orjson.dumps(data)
        except TypeError:
            pass  # not JSON at all (a 2**64 integer, a set): the checks below name the field
        else:
            _refuse_nul(encoded, source)
            del encoded
    problems: list[str] = []

    def problem(msg: str) -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append(f"{source}: {msg}")

    for key in ("images", "annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise FormatError(f"{source}: '{key}' must be a list, got {type(data[key]).__name__}")
    if "images" not in data:
        raise FormatError(f"{source}: no 'images' list; is this a COCO annotation file?")

    # Categories.
    cats: dict[int, dict] = {}
    names: dict[str, int] = {}
    for i, cat in enumerate(data.get("categories", [])):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            problem(f"{where}: must be an object with 'id' and 'name'")
            continue
        cid, name = cat.get("id"), cat.get("name")
        if not _is_int(cid) or not isinstance(name, str) or not name.strip():
            problem(f"{where}: needs an integer 'id' and a non-empty string 'name'")
            continue
        if not -_MAX_ID < cid < _MAX_ID:
            problem(f"{where}: category id {cid} does not fit in 64 bits; renumber the categories")
            continue
        text_problem = _category_text_problem(cat)
        if text_problem:
            problem(f"{where} ({name[:40]!r}): {text_problem}")
            continue
        if cid in cats:
            problem(f"{where}: category id {cid} is used twice")
            continue
        if name in names:
            problem(f"{where}: category name {name!r} is used twice (ids {names[name]} and {cid})")
            continue
        kp = cat.get("keypoints")
        if kp is not None:
            if not isinstance(kp, list) or not kp or not all(isinstance(k, str) for k in kp):
                problem(f"{where}: 'keypoints' must be a non-empty list of point names")
                continue
            edges = cat.get("skeleton") or []
            if not isinstance(edges, list) or not all(
                isinstance(e, list) and len(e) == 2 and all(_is_int(v) for v in e) for e in edges
            ):
                problem(f"{where}: 'skeleton' must be a list of [a, b] 1-based point indices")
                continue
            try:
                skeleton = Skeleton(
                    kp, [(a - 1, b - 1) for a, b in edges],
                    [tuple(p) for p in cat["flip_pairs"]] if "flip_pairs" in cat
                    else flip_pairs_by_name(kp),
                )
            except (ValueError, TypeError) as err:
                problem(f"{where}: bad skeleton: {err}")
                continue
            cat = {**cat, "_skeleton": skeleton}
        cats[cid] = cat
        names[name] = cid

    # Images.
    images: dict[Any, ImageRecord] = {}
    usage: dict[int, set[str]] = defaultdict(set)  # category id -> kinds of label it is used for
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            problem(f"{where}: must be an object with 'id' and 'file_name'")
            continue
        iid, fname = _id(img.get("id")), img.get("file_name")
        if iid is None or not isinstance(fname, str) or not fname:
            problem(f"{where}: needs an 'id' (a number or a string of at most {_MAX_TEXT} "
                    "characters) and a non-empty 'file_name'")
            continue
        w, h = _size(img.get("width")), _size(img.get("height"))
        if w is False or h is False:
            problem(f"{where} ({fname}): width and height must be positive integers, got "
                    f"{img.get('width')!r:.20} and {img.get('height')!r:.20}; fix or remove them")
            continue
        if iid in images:
            problem(f"{where} ({fname}): image id {iid!r} is used twice")
            continue
        meta = {k: v for k, v in img.items() if k not in _IMAGE_KEYS}
        if meta and (err := _json_problem(meta)):
            problem(f"{where} ({fname}): its extra fields cannot be stored: {err}")
            continue
        tags = img.get("tags") or []
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and 0 < len(t) <= _MAX_TEXT for t in tags
        ):
            problem(f"{where} ({fname}): 'tags' must be a list of non-empty strings of at most "
                    f"{_MAX_TEXT} characters")
            tags = []
        image_cats = img.get("category_ids") or []
        if not isinstance(image_cats, list):
            problem(f"{where} ({fname}): 'category_ids' must be a list of category ids, got "
                    f"{type(image_cats).__name__}")
            image_cats = []
        rec = ImageRecord(path=fname, width=w, height=h, metadata=meta, external_id=iid,
                          tags=list(tags), origin=f"{where} ({fname})")
        for cid in image_cats:
            cid = _id(cid)
            if cid not in cats:
                problem(f"{where} ({fname}): category_ids has {cid!r}, which is not in "
                        f"'categories' (known: {_id_range(cats)})")
                continue
            rec.annotations.append(Annotation(label=cats[cid]["name"]))
            usage[cid].add("category")
        images[iid] = rec

    # Annotations. Each dict is dropped as soon as it is converted: a million of them is ~1 GB.
    anns = data.pop("annotations", None) or []
    for i in range(len(anns)):
        a = anns[i]
        anns[i] = None
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            problem(f"{where}: must be an object")
            continue
        if "id" in a:
            where += f" (id {a['id']})"
        iid = a.get("image_id")
        rec = images.get(iid) if type(iid) in _ID_TYPES else None  # no bools, no lists
        if rec is None:
            problem(f"{where}: image_id {a.get('image_id')!r:.40} is not in 'images'; fix the "
                    "image_id or add the image")
            continue
        cid = a.get("category_id")
        cat = cats.get(cid) if type(cid) in _ID_TYPES else None
        if cat is None:
            problem(f"{where}: category_id {cid!r:.40} is not in 'categories' (known: "
                    f"{_id_range(cats)}); fix the file or add the category")
            continue
        ann, err = _annotation(a, cat)
        if err:
            problem(f"{where}: {err}")
            continue
        usage[cid].add(ann.kind)
        rec.annotations.append(ann)
    del anns

    if problems:
        raise ImportValidationError(
            f"{source}: {len(problems)} problem(s) in the COCO file; nothing was imported",
            problems=problems,
        )

    schema = LabelSchema()
    for cid, cat in cats.items():
        kinds = usage.get(cid, set())
        skeleton = cat.get("_skeleton")
        common = dict(supercategory=cat.get("supercategory"), external_id=cid,
                      color=cat.get("color") if isinstance(cat.get("color"), str) else None)
        object_kinds = kinds - {"category"}
        if object_kinds or skeleton is not None or not kinds:
            tool = "keypoints" if skeleton is not None else (
                "polygon" if object_kinds == {"polygon"} else "bbox")
            schema.add(LabelClass(cat["name"], "object", tool, skeleton=skeleton, **common))
        if "category" in kinds:
            schema.add(LabelClass(cat["name"], "category", None, **common))
    for rec in images.values():
        if sum(1 for a in rec.annotations if a.is_category) > 1:
            schema.multi_label = True
            break
    try:  # the round trip also turns NaN into null, which every database accepts
        info = orjson.loads(orjson.dumps({k: data[k] for k in ("info", "licenses") if k in data}))
    except TypeError as err:
        raise FormatError(f"{source}: 'info' or 'licenses' cannot be stored: {err}; fix them "
                          "or leave them out") from err
    return DatasetDraft(schema=schema, images=list(images.values()), source=source, info=info)


def _annotation(a: dict, cat: dict) -> tuple[Annotation | None, str | None]:
    """One COCO annotation as an Annotation, or the reason it cannot be one.

    Only the structure is checked here; geometry against the image is the importer's job. A
    box missing from a polygon, mask or keypoints annotation is derived from them, as COCO
    writers (ours included) always write one.
    """
    name = cat["name"]
    bbox = a.get("bbox")
    seg = a.get("segmentation")
    kps = a.get("keypoints")
    polygons = rle = None
    if bbox is not None:
        if type(bbox) is not list or len(bbox) != 4 or not _all_num(bbox):
            return None, f"bbox must be [x, y, width, height] numbers, got {bbox!r:.80}"
        bbox = (bbox[0], bbox[1], bbox[2], bbox[3])
        if bbox == (0, 0, 0, 0) and (seg or kps is not None):
            bbox = None  # the placeholder writers put on annotations without a box
    if seg:
        if isinstance(seg, dict):
            rle, err = _rle(seg)
            if err:
                return None, err
        elif isinstance(seg, list) and all(
            isinstance(r, list) and _all_num(r) for r in seg
        ):
            polygons = seg
        else:
            return None, "segmentation must be a list of polygons [[x1, y1, ...]] or an RLE object"
    if kps is not None:
        skeleton = cat.get("_skeleton")
        if skeleton is None:
            return None, f"has keypoints but category {name!r} defines no 'keypoints' names"
        if not isinstance(kps, list) or not _all_num(kps):
            return None, "keypoints must be a flat list of numbers [x, y, v, ...]"
        if len(kps) != 3 * len(skeleton):
            return None, (f"keypoints has {len(kps)} numbers but category {name!r} has "
                          f"{len(skeleton)} points (expected {3 * len(skeleton)}); give "
                          "[x, y, visibility] for every point, in the category's order")
    if bbox is None:
        bbox = _derived_bbox(polygons, rle, kps)
    attrs = a.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        return None, "'attributes' must be an object"
    if attrs and (err := _json_problem(attrs)):
        return None, f"'attributes' cannot be stored: {err}"
    score = a.get("score")
    if score is not None and not _is_num(score):
        return None, f"score must be a number, got {score!r:.40}"
    iscrowd = a.get("iscrowd", 0)
    if iscrowd not in (0, 1):  # also admits False/True
        return None, f"iscrowd must be 0 or 1, got {iscrowd!r:.40}"
    area = a.get("area")
    if area is not None and not (_is_num(area) and 0 <= area < math.inf):
        return None, f"area must be a number >= 0, got {area!r:.40}; fix it or leave it out"
    return Annotation(
        label=name, bbox=bbox, polygons=polygons, rle=rle, keypoints=kps,
        attributes=attrs or None, iscrowd=bool(iscrowd),
        area=None if area is None else float(area),
        source="model" if score is not None else "human",
        confidence=float(score) if score is not None else None,
    ), None


def _rle(seg: dict) -> tuple[dict | None, str | None]:
    """An RLE segmentation checked against its own ``size`` (the image is checked later)."""
    size = seg.get("size")
    if (
        not isinstance(size, list) or len(size) != 2 or not all(_is_int(v) and v > 0 for v in size)
        or "counts" not in seg
    ):
        return None, "RLE segmentation needs 'size' [height, width] and 'counts'"
    rle = {"size": list(size), "counts": seg["counts"]}
    err = rle_problem(rle, size[1], size[0])
    return (None, f"RLE segmentation: {err}") if err else (rle, None)


def _derived_bbox(
    polygons: list | None, rle: dict | None, kps: list | None
) -> tuple[float, float, float, float] | None:
    """The box a polygon, mask or keypoint set spans; None if it spans none or is malformed."""
    if polygons and all(len(r) >= 6 and len(r) % 2 == 0 for r in polygons):
        return polygon_bbox(polygons)
    if rle is not None:
        return rle_bbox(rle_counts(rle), rle["size"][0])
    if kps is not None:
        return keypoints_bbox(kps)
    return None


def _category_text_problem(cat: dict) -> str | None:
    """Names, supercategory and color must be strings a database column can hold."""
    if len(cat["name"]) > _MAX_TEXT:
        return f"name is longer than {_MAX_TEXT} characters; shorten it"
    sup = cat.get("supercategory")
    if sup is not None and not (isinstance(sup, str) and len(sup) <= _MAX_TEXT):
        return f"'supercategory' must be a string of at most {_MAX_TEXT} characters"
    color = cat.get("color")
    if color is not None and not (isinstance(color, str) and len(color) <= 16):
        return "'color' must be a CSS color string such as '#E69F00'"
    return None


def _json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON (an integer past 64 bits, a non-string key)."""
    try:
        orjson.dumps(value)
    except TypeError as err:  # orjson.JSONEncodeError is a TypeError
        return f"{err}; fix the value"
    return None


def _id(v: Any) -> int | float | str | None:
    """A usable image or category id (a number or a short string), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    if isinstance(v, str) and not 0 < len(v) <= _MAX_TEXT:
        return None
    return v


def _size(v: Any) -> int | None | bool:
    """A declared width/height: None when absent, False when invalid. 640.0 counts as 640."""
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return v if _is_int(v) and v > 0 else False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _all_num(values: list) -> bool:
    """All ints or floats, not bools. Exact type checks first (what JSON parsing gives, fast),
    then isinstance for numbers from Python (numpy floats) passed to ``coco_to_draft``."""
    for v in values:
        t = type(v)
        if t is not float and t is not int:
            return all(_is_num(x) for x in values)
    return True


def _id_range(cats: dict[int, Any]) -> str:
    if not cats:
        return "none"
    ids = sorted(cats)
    if ids[-1] - ids[0] + 1 == len(ids):  # contiguous (ids are unique)
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")


# -- writing ------------------------------------------------------------------------------------

def draft_to_coco(draft: DatasetDraft) -> tuple[dict[str, Any], WriteResult]:
    """Build the COCO dict; category ids keep the ids they were imported with where possible."""
    result = WriteResult()
    cat_ids: dict[tuple[str, str], int] = {}
    used: set[int] = set()
    by_name: dict[str, int] = {}
    categories = []
    pending = []
    for cls in draft.schema.classes:
        ext = cls.external_id
        # An object class and a category class of the same name share one COCO category.
        if cls.name in by_name:
            cat_ids[(cls.kind, cls.name)] = by_name[cls.name]
            continue
        if ext is not None and ext not in used:
            used.add(ext)
            cat_ids[(cls.kind, cls.name)] = by_name[cls.name] = ext
            categories.append(_category(cls, ext))
        else:
            pending.append(cls)
    next_id = max(used, default=0) + 1
    for cls in pending:
        if cls.name in by_name:
            cat_ids[(cls.kind, cls.name)] = by_name[cls.name]
            continue
        cat_ids[(cls.kind, cls.name)] = by_name[cls.name] = next_id
        categories.append(_category(cls, next_id))
        next_id += 1
    categories.sort(key=lambda c: c["id"])

    images, annotations = [], []
    image_ids = _image_ids(draft.images)
    ann_id = 1
    for rec, iid in zip(draft.images, image_ids, strict=True):
        img: dict[str, Any] = {"id": iid, "file_name": rec.path, "width": rec.width,
                               "height": rec.height}
        img.update({k: v for k, v in rec.metadata.items() if k not in _IMAGE_KEYS})
        if rec.tags:
            img["tags"] = list(rec.tags)
        image_cats = []
        for ann in rec.annotations:
            if ann.is_category:
                image_cats.append(cat_ids[("category", ann.label)])
                continue
            annotations.append(_coco_annotation(ann, ann_id, iid, cat_ids[("object", ann.label)]))
            ann_id += 1
        if image_cats:
            img["category_ids"] = image_cats
        images.append(img)
    result.num_images = len(images)
    result.num_annotations = len(annotations) + sum(len(i.get("category_ids", [])) for i in images)
    coco = {**{k: v for k, v in draft.info.items() if k in ("info", "licenses")},
            "images": images, "annotations": annotations, "categories": categories}
    coco.setdefault("info", {"description": draft.source})
    return coco, result


def _image_ids(records: list[ImageRecord]) -> list[int]:
    """Keep integer ids from the source when they are unique; else number from 1."""
    ids = []
    for r in records:
        try:
            ids.append(int(r.external_id))
        except (TypeError, ValueError):
            return list(range(1, len(records) + 1))
    return ids if len(set(ids)) == len(ids) else list(range(1, len(records) + 1))


def _category(cls: LabelClass, cid: int) -> dict[str, Any]:
    cat: dict[str, Any] = {"id": cid, "name": cls.name,
                           "supercategory": cls.supercategory or ""}
    if cls.skeleton is not None:
        cat["keypoints"] = list(cls.skeleton.keypoints)
        cat["skeleton"] = [[a + 1, b + 1] for a, b in cls.skeleton.edges]
        cat["flip_pairs"] = [list(p) for p in cls.skeleton.flip_pairs]
    if cls.color:
        cat["color"] = cls.color
    return cat


def _coco_annotation(ann: Annotation, ann_id: int, image_id: int, cat_id: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ann_id, "image_id": image_id, "category_id": cat_id,
                           "iscrowd": int(ann.iscrowd)}
    bbox = ann.bbox
    if ann.polygons:
        out["segmentation"] = ann.polygons
        if bbox is None:
            bbox = polygon_bbox(ann.polygons)
    elif ann.rle is not None:
        out["segmentation"] = ann.rle
        if bbox is None:
            bbox = _rle_bbox(ann.rle)
    if ann.keypoints is not None:
        out["keypoints"] = ann.keypoints
        out["num_keypoints"] = num_labeled(ann.keypoints)
        if bbox is None:
            bbox = keypoints_bbox(ann.keypoints) or (0.0, 0.0, 0.0, 0.0)
    out["bbox"] = list(bbox) if bbox is not None else [0.0, 0.0, 0.0, 0.0]
    out["area"] = ann.area if ann.area is not None else _area(ann, out["bbox"])
    if ann.attributes:
        out["attributes"] = ann.attributes
    if ann.source == "model" or ann.confidence is not None:
        out["score"] = ann.confidence if ann.confidence is not None else 1.0
    return out


def _area(ann: Annotation, bbox: list[float]) -> float:
    if ann.polygons:
        return sum(polygon_area(r) for r in ann.polygons)
    if ann.rle is not None:
        return float(rle_area(rle_counts(ann.rle)))
    return float(bbox[2] * bbox[3])


def _rle_bbox(rle: dict) -> tuple[float, float, float, float]:
    return rle_bbox(rle_counts(rle), rle["size"][0]) or (0.0, 0.0, 0.0, 0.0)


def write_coco(draft: DatasetDraft, dest: Path, *, filename: str = FILENAME) -> WriteResult:
    """Write ``dest/annotations.json``; images are placed under ``dest/images`` by the exporter."""
    coco, result = draft_to_coco(draft)
    path = Path(dest) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(coco))
    result.files.append(path)
    return result
