"""Task label validation and fingerprints (no database)."""

from __future__ import annotations

import pytest

from labelwise.db.models import LabelClassRow
from labelwise.errors import ValidationError
from labelwise.workflow.labels import label_fingerprint, main_tool, validate_labels

SKELETON = {"keypoints": ["head", "tail"], "edges": [[0, 1]], "flip_pairs": []}
CLASSES = {
    1: LabelClassRow(id=1, name="day", kind="category", tool=None),
    2: LabelClassRow(id=2, name="night", kind="category", tool=None),
    3: LabelClassRow(id=3, name="car", kind="object", tool="bbox"),
    4: LabelClassRow(id=4, name="road", kind="object", tool="polygon"),
    5: LabelClassRow(id=5, name="fish", kind="object", tool="keypoints", skeleton=SKELETON),
}


def check(labels, *, multi_label=False):
    validate_labels(labels, CLASSES, width=100, height=80, multi_label=multi_label,
                    where="task 1")


def problems(labels, **kw) -> list[str]:
    with pytest.raises(ValidationError) as err:
        check(labels, **kw)
    return err.value.problems


def test_valid_labels_of_every_tool_pass():
    check([
        {"class_id": 1},
        {"class_id": 3, "bbox": [1, 2, 30, 20]},
        {"class_id": 4, "polygons": [[1, 1, 50, 1, 50, 40]]},
        {"class_id": 5, "keypoints": [10, 10, 2, 20, 20, 1], "bbox": [5, 5, 20, 20]},
    ])


def test_each_problem_is_named():
    got = problems([
        {"class_id": 1, "bbox": [1, 1, 5, 5]},
        {"class_id": 4, "bbox": [1, 1, 5, 5]},
        {"class_id": 4, "polygons": [[1, 1, 2]]},
        {"class_id": 5, "keypoints": [10, 10, 2]},
        {"class_id": 5, "keypoints": [10, 10, 7, 20, 20, 1]},
        {"class_id": 3, "bbox": [1, 1, 5, 5], "attributes": ["x"]},
        {"class_id": 3, "bbox": [1, "a", 5, 5]},
    ])
    assert len(got) == 7
    assert "category label takes no geometry" in got[0]
    assert "needs polygons or rle" in got[1]
    assert "3 x 2 = 6 numbers" in got[3]
    assert "visibility 7" in got[4]
    assert "attributes must be an object" in got[5]
    assert "numbers only" in got[6]


def test_single_label_schemas_allow_one_category():
    assert "single-label" in problems([{"class_id": 1}, {"class_id": 2}])[0]
    check([{"class_id": 1}, {"class_id": 2}], multi_label=True)


def test_fingerprint_ignores_rounding_noise_but_not_changes():
    a = label_fingerprint(3, {"bbox": [1.0, 2.0, 3.0, 4.0]})
    assert a == label_fingerprint(3, {"bbox": [1.0001, 2.0, 3.0, 4.0]})
    assert a != label_fingerprint(3, {"bbox": [1.5, 2.0, 3.0, 4.0]})
    assert a != label_fingerprint(4, {"bbox": [1.0, 2.0, 3.0, 4.0]})
    assert a != label_fingerprint(3, {"bbox": [1.0, 2.0, 3.0, 4.0], "attributes": {"x": 1}})


def test_main_tool_is_the_most_common():
    assert main_tool([("object", "bbox"), ("object", "polygon"), ("object", "bbox")]) == "bbox"
    assert main_tool([("category", None)]) == "category"
    assert main_tool([]) is None
