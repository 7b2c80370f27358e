"""Random malformed COCO never crashes the importer and never leaves anything half-imported.

Property: importing succeeds, or raises a LabelwiseError subclass and leaves every table and
the blob store exactly as before. Inputs start from a small valid COCO (boxes, polygons, an
RLE mask, keypoints, image categories, scores, attributes) and get mangled: keys dropped,
values swapped for garbage of any type (NaN, inf, huge ints, strings, nested lists), records
duplicated, lists cut; or the file is replaced by random or truncated bytes; or an image's
bytes are. SQLite only: the property is about the importer, not the database.
"""

from __future__ import annotations

import copy
import itertools
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import labelwise
from labelwise.db.models import Base
from labelwise.errors import LabelwiseError
from labelwise.io.coco import coco_to_draft
from labelwise.io.importer import import_draft
from tests.helpers import make_image
from tests.io.test_paths_images import png_header

W, H = 32, 24
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _valid_coco() -> dict:
    full = [[0, W * H]]  # placeholder, replaced below by a real mask
    coco = {
        "info": {"description": "property test"},
        "licenses": [{"id": 1, "name": "x"}],
        "images": [
            {"id": 1, "file_name": "a.png", "width": W, "height": H, "category_ids": [3]},
            {"id": 2, "file_name": "sub/b.png", "width": W, "height": H, "tags": ["t"]},
        ],
        "categories": [
            {"id": 1, "name": "box", "supercategory": "thing"},
            {"id": 2, "name": "face", "keypoints": ["nose", "left_eye", "right_eye"],
             "skeleton": [[1, 2], [1, 3]]},
            {"id": 3, "name": "indoor"},
            {"id": 4, "name": "unused"},  # nothing refers to it: one edit reaches the database
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 8], "area": 80,
             "iscrowd": 0, "attributes": {"occluded": False}},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 20, 2, 10, 15]],
             "score": 0.5},
            {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": full[0]}},
            {"id": 4, "image_id": 2, "category_id": 2,
             "keypoints": [10, 10, 2, 8, 8, 1, 0, 0, 0], "num_keypoints": 2},
        ],
    }
    # A 4x3 block at x=5..8, y=6..8 as uncompressed column-major runs.
    runs, pos = [], 0
    for col in range(5, 9):
        start = col * H + 6
        runs += [start - pos, 3]
        pos = start + 3
    runs.append(W * H - pos)
    coco["annotations"][2]["segmentation"]["counts"] = runs
    return coco


VALID = _valid_coco()

SPECIAL = st.sampled_from([
    0, -1, 1, 2, 3, 0.5, -0.0, 1e308, 10**12, 2**63, -(2**63), 2**64 - 1, 2**80,
    float("nan"), float("inf"), float("-inf"), "", "1", "a.png", "sub/b.png", "../a.png",
    "/etc/passwd", "a\x00.png", "x" * 300, [], {}, [[]], [1, 2], [0, 0, 0, 0], [1, 1, 5, 5],
    {"size": [H, W], "counts": "0"}, {"size": [H, W], "counts": "!!"}, {"counts": [1]},
    {"size": "x", "counts": []}, [[1, 1, 5, 5, 9]], [[1, "a", 2, 3, 4, 5]],
]).map(copy.deepcopy)  # later edits must not change the strategy's own lists
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6), SPECIAL,
)
NUMBERS = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, 0.5, 1e308, 10**12, 2**63, -(2**63) - 1, 2**64 - 1, 2**80,
                     float("nan"), float("inf"), float("-inf")]),
    st.integers(), st.floats(),
)
STRINGS = st.one_of(
    st.sampled_from(["", ".", "1", "a.png", "sub/b.png", "../a.png", "/etc/passwd", "C:/a.png",
                     "a\x00.png", "x" * 300, "sub", "images/a.png"]),
    st.text(max_size=8),
)
GARBAGE = st.one_of(
    SPECIAL,  # the values most likely to break something, a third of the time
    SCALARS,
    st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.sampled_from(["id", "name", "size", "counts", "x", ""]), inner,
                            max_size=3),
        ),
        max_leaves=8,
    ),
)


# -- mangling a COCO dict -----------------------------------------------------------------------

def _nodes(obj: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every path into ``obj`` (the root is ``()``)."""
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, (*path, i))


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _value_like(old: Any) -> st.SearchStrategy:
    """Garbage, half the time of the same type as ``old``: a wrong number where one belongs."""
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        return st.one_of(NUMBERS, GARBAGE)
    if isinstance(old, str):
        return st.one_of(STRINGS, GARBAGE)
    return GARBAGE


def _mutate(data: st.DataObject, coco: dict) -> None:
    """Apply one random edit to ``coco`` in place.

    Most edits swap a named field (an id, a file name, a bbox) for garbage: picked among all
    nodes, the numbers inside masks and keypoint lists would take nearly all of them.
    """
    nodes = list(_nodes(coco))
    fields = [p for p in nodes if p and isinstance(p[-1], str)]
    if fields and data.draw(st.integers(0, 4), label="kind of edit") < 3:
        path = data.draw(st.sampled_from(fields), label="field")
        _get(coco, path[:-1])[path[-1]] = data.draw(_value_like(_get(coco, path)), label="value")
        return
    path = data.draw(st.sampled_from(nodes), label="path")
    op = data.draw(st.sampled_from(["replace", "delete", "append", "duplicate", "cut"]),
                   label="op")
    target = _get(coco, path)
    if op == "delete" and path:
        del _get(coco, path[:-1])[path[-1]]
    elif op == "append" and isinstance(target, list):
        target.append(data.draw(GARBAGE, label="value"))
    elif op == "duplicate" and isinstance(target, list) and target:
        target.append(copy.deepcopy(data.draw(st.sampled_from(target), label="copy")))
    elif op == "cut" and isinstance(target, list):
        del target[data.draw(st.integers(0, len(target)), label="keep"):]
    elif path:
        _get(coco, path[:-1])[path[-1]] = data.draw(GARBAGE, label="value")
    else:
        key = data.draw(st.sampled_from(sorted(coco) or ["images"]), label="key")
        coco[key] = data.draw(GARBAGE, label="value")


# -- the property -------------------------------------------------------------------------------

def _state(ws) -> tuple[dict[str, int], frozenset[str]]:
    with ws.session() as s:
        counts = {t.name: s.scalar(select(func.count()).select_from(t))
                  for t in Base.metadata.sorted_tables}
    root = ws.store.root
    return counts, frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _holds(ws, run: Callable[[], Any]) -> bool:
    """Run one import: it succeeds, or fails with a LabelwiseError and changes nothing."""
    before = _state(ws)
    try:
        run()
    except LabelwiseError:
        after = _state(ws)
        assert after == before, f"a failed import left state behind: {before} -> {after}"
        return False
    return True


class _Lab:
    """One SQLite workspace reused by every example; each example gets fresh images."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = labelwise.init(root / "ws")
        self.counter = itertools.count()
        self.outcomes = {True: 0, False: 0}

    def example_folder(self, data: st.DataObject) -> Path:
        """A new folder with the images VALID names, in pixels drawn for this example.

        Mostly unseen pixels, so the store gets new blobs that a failed import must remove;
        sometimes the same ones as before, so blobs already there must survive a failure.
        """
        seed = data.draw(st.one_of(st.just(0), st.integers(1, 10**6)), label="pixels")
        folder = self.root / f"ex{next(self.counter)}"
        for i, img in enumerate(VALID["images"]):
            make_image(folder / "images" / img["file_name"], (W, H), seed=1000 + 2 * seed + i)
        return folder

    def dataset(self, data: st.DataObject) -> str:
        """One dataset that imports keep adding to, or a new one."""
        if data.draw(st.booleans(), label="shared dataset"):
            return "shared"
        return f"fresh{next(self.counter)}"

    def check(self, run: Callable[[], Any]) -> None:
        self.outcomes[_holds(self.ws, run)] += 1


def _lab_run(test: Callable[[_Lab], None]) -> _Lab:
    with tempfile.TemporaryDirectory() as tmp:
        lab = _Lab(Path(tmp))
        try:
            test(lab)
        finally:
            lab.ws.close()
    return lab


def test_valid_fixture_imports():
    """The starting point is valid, so every failure below comes from the mangling."""
    def run(lab: _Lab) -> None:
        folder = lab.root / "valid"
        for i, img in enumerate(VALID["images"]):
            make_image(folder / "images" / img["file_name"], (W, H), seed=i)
        path = folder / "annotations.json"
        path.write_text(json.dumps(VALID))
        report = lab.ws.import_dataset("coco", path, dataset="d")
        assert (report.assets_added, report.annotations_added) == (2, 5)
        assert report.classes_added == ["box", "face", "indoor", "unused"]

    _lab_run(run)


def test_mangled_coco_never_crashes_or_half_imports():
    def run(lab: _Lab) -> None:
        @SETTINGS
        @given(data=st.data())
        def prop(data: st.DataObject) -> None:
            coco = copy.deepcopy(VALID)
            for _ in range(data.draw(st.integers(1, 4), label="edits")):
                _mutate(data, coco)
            folder = lab.example_folder(data)
            dataset = lab.dataset(data)

            # Through the file, as users do (NaN and inf become a JSON error there) ...
            path = folder / "annotations.json"
            path.write_text(json.dumps(coco, allow_nan=True, default=repr))
            lab.check(lambda: lab.ws.import_dataset("coco", path, dataset=dataset))

            # ... and straight through the converter, where NaN and inf do arrive.
            def direct() -> None:
                draft = coco_to_draft(copy.deepcopy(coco), source="mangled.json")
                draft.images_root = folder / "images"
                import_draft(lab.ws, draft, dataset=dataset, fmt="coco")

            lab.check(direct)

        prop()
        # Both outcomes happened: the test is not only feeding files that fail at parse time.
        assert lab.outcomes[True] > 0 and lab.outcomes[False] > 0, lab.outcomes

    _lab_run(run)


def test_random_bytes_as_the_annotation_file():
    def run(lab: _Lab) -> None:
        valid_text = json.dumps(VALID).encode()

        @SETTINGS
        @given(data=st.data())
        def prop(data: st.DataObject) -> None:
            folder = lab.example_folder(data)
            kind = data.draw(st.sampled_from(["random", "truncated", "spliced"]), label="kind")
            if kind == "random":
                content = data.draw(st.binary(max_size=300), label="bytes")
            elif kind == "truncated":
                content = valid_text[: data.draw(st.integers(0, len(valid_text)), label="cut")]
            else:
                at = data.draw(st.integers(0, len(valid_text)), label="at")
                content = valid_text[:at] + data.draw(st.binary(max_size=8)) + valid_text[at:]
            path = folder / "annotations.json"
            path.write_bytes(content)
            dataset = lab.dataset(data)
            lab.check(lambda: lab.ws.import_dataset("coco", path, dataset=dataset))

        prop()

    _lab_run(run)


def test_random_bytes_as_image_files():
    def run(lab: _Lab) -> None:
        @SETTINGS
        @given(data=st.data())
        def prop(data: st.DataObject) -> None:
            folder = lab.example_folder(data)
            target = folder / "images" / data.draw(st.sampled_from(["a.png", "sub/b.png"]))
            good = target.read_bytes()
            kind = data.draw(st.sampled_from(["random", "cut", "flip", "header"]), label="kind")
            if kind == "random":
                content = data.draw(st.binary(max_size=400), label="bytes")
            elif kind == "cut":
                content = good[: data.draw(st.integers(0, len(good)), label="cut")]
            elif kind == "flip":
                at = data.draw(st.integers(0, len(good) - 1), label="at")
                content = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :]
            else:
                size = st.integers(0, 2**31 - 1)
                content = png_header(data.draw(size), data.draw(size),
                                     data.draw(st.binary(max_size=64), label="tail"))
            target.write_bytes(content)
            path = folder / "annotations.json"
            path.write_text(json.dumps(VALID))
            dataset = lab.dataset(data)
            lab.check(lambda: lab.ws.import_dataset("coco", path, dataset=dataset))

        prop()

    _lab_run(run)


HOSTILE = [
    None, True, -1, 0, 0.5, 2**63, -(2**63) - 1, 2**64, float("nan"), float("inf"), "", "x" * 300,
    "a\x00.png", "../a.png", "/etc/passwd", [], {}, [1, 2], {"id": 1},
]


def test_every_field_with_every_hostile_value():
    """A sweep that random search reaches too rarely: each field, alone, set to each value.

    One edit at a time keeps the rest valid, so a bad value travels as deep as it can: past
    the reader into the importer and the database (a 2**63 category id, a NUL in a path).
    """
    def run(lab: _Lab) -> None:
        folder = lab.root / "sweep"
        for i, img in enumerate(VALID["images"]):
            make_image(folder / "images" / img["file_name"], (W, H), seed=500 + i)
        fields = [p for p in _nodes(VALID) if p and isinstance(p[-1], str)]
        for n, path in enumerate(fields):
            for j, value in enumerate([_DELETE, *HOSTILE]):
                coco = copy.deepcopy(VALID)
                parent = _get(coco, path[:-1])
                if value is _DELETE:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(value)

                # A new dataset each time: in an existing one, known classes are not rewritten.
                def direct(coco=coco, name=f"sweep-{n}-{j}") -> None:
                    draft = coco_to_draft(coco, source="sweep.json")
                    draft.images_root = folder / "images"
                    import_draft(lab.ws, draft, dataset=name, fmt="coco")

                try:
                    lab.check(direct)
                except Exception as err:
                    raise AssertionError(f"{path} = {value!r:.40}: {err!r}") from err
        assert lab.outcomes[True] > 0 and lab.outcomes[False] > 0, lab.outcomes

    _lab_run(run)


_DELETE = object()
