"""Label schemas: class validation, keypoint skeletons and the built-in templates."""

from __future__ import annotations

import pytest

from labelwise.core.schema import (
    PALETTE,
    SKELETON_TEMPLATES,
    LabelClass,
    LabelSchema,
    Skeleton,
    default_color,
    flip_pairs_by_name,
    skeleton_template,
)


# -- skeletons ----------------------------------------------------------------------------------

def test_skeleton_keeps_zero_based_edges_and_round_trips():
    sk = Skeleton(["a", "left_b", "right_b"], [(0, 1), (0, 2)], [(1, 2)], template=None)
    assert len(sk) == 3
    again = Skeleton.from_dict(sk.to_dict())
    assert again == sk
    assert sk.to_dict() == {"keypoints": ["a", "left_b", "right_b"], "edges": [[0, 1], [0, 2]],
                            "flip_pairs": [[1, 2]], "template": None}


def test_skeleton_from_json_lists_gives_int_tuples():
    sk = Skeleton.from_dict({"keypoints": ["a", "b"], "edges": [[0, 1.0]]})
    assert sk.edges == [(0, 1)] and sk.flip_pairs == []


@pytest.mark.parametrize("kwargs,message", [
    (dict(keypoints=[]), "at least one keypoint name"),
    (dict(keypoints=["a", "b", "a", "b", "c"]), "must be unique; repeated: ['a', 'b']"),
    (dict(keypoints=["a", "b"], edges=[(0, 2)]),
     "skeleton edge (0, 2) must join two different points in 0..1"),
    (dict(keypoints=["a", "b"], edges=[(-1, 0)]), "edge (-1, 0)"),
    (dict(keypoints=["a", "b"], edges=[(1, 1)]), "edge (1, 1) must join two different points"),
    (dict(keypoints=["a", "b"], flip_pairs=[(0, 5)]), "flip pair (0, 5)"),
    (dict(keypoints=["a", "b"], edges=[(0, 0.5)]), "edge (0, 0.5)"),  # not int(0.5) == 0
    (dict(keypoints=["a", "b"], edges=[("0", "1")]), "edge ('0', '1')"),
    (dict(keypoints=["a", "b"], flip_pairs=[(False, True)]), "flip pair (False, True)"),
])
def test_bad_skeletons(kwargs, message):
    with pytest.raises(ValueError) as info:
        Skeleton(**kwargs)
    assert message in str(info.value)


def test_flip_pairs_by_name_pairs_each_left_with_its_right():
    names = ["nose", "left_eye", "right_eye", "mouth_left", "mouth_right", "lefthand",
             "righthand", "left_only", "cleft"]
    assert flip_pairs_by_name(names) == [(1, 2), (3, 4), (5, 6)]


# -- templates ----------------------------------------------------------------------------------

def _is_mirror(left: str, right: str) -> bool:
    for a, b in (("left_", "right_"), ("_left", "_right")):
        if a in left and left.replace(a, b, 1) == right:
            return True
    return False


def test_coco_person_17():
    sk = skeleton_template("coco-person-17")
    assert len(sk) == 17 and len(sk.edges) == 19 and len(sk.flip_pairs) == 8
    assert sk.keypoints[:3] == ["nose", "left_eye", "right_eye"]
    assert sk.keypoints[-2:] == ["left_ankle", "right_ankle"]
    assert sk.template == "coco-person-17"
    # COCO's 1-based [16, 14] (left_ankle-left_knee) is the first edge, 0-based.
    assert sk.edges[0] == (15, 13)
    assert sk.keypoints[15] == "left_ankle" and sk.keypoints[13] == "left_knee"
    _connected(sk)


def test_full_body_33():
    sk = skeleton_template("full-body-33")
    assert len(sk) == 33 and sk.template == "full-body-33"
    assert len(sk.flip_pairs) == 16  # every point but the nose has a mirror
    assert sum(1 for n in sk.keypoints if "left" not in n and "right" not in n) == 1


@pytest.mark.parametrize("name", sorted(SKELETON_TEMPLATES))
def test_templates_are_left_right_symmetric(name):
    sk = skeleton_template(name)
    mirror = {i: i for i in range(len(sk))}
    for a, b in sk.flip_pairs:
        assert _is_mirror(sk.keypoints[a], sk.keypoints[b]), (sk.keypoints[a], sk.keypoints[b])
        mirror[a], mirror[b] = b, a
    assert len({i for p in sk.flip_pairs for i in p}) == 2 * len(sk.flip_pairs)  # disjoint
    unpaired = [n for i, n in enumerate(sk.keypoints) if mirror[i] == i]
    assert all("left" not in n and "right" not in n for n in unpaired)
    # The edges mirror too: a left arm for every right arm.
    edges = {frozenset(e) for e in sk.edges}
    assert {frozenset((mirror[a], mirror[b])) for a, b in sk.edges} == edges
    assert len(edges) == len(sk.edges)  # no edge twice


def _connected(sk: Skeleton) -> None:
    reach, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for a, b in sk.edges:
            for j in ((b,) if a == i else (a,) if b == i else ()):
                if j not in reach:
                    reach.add(j)
                    todo.append(j)
    assert reach == set(range(len(sk)))


def test_skeleton_template_gives_a_fresh_copy():
    sk = skeleton_template("coco-person-17")
    sk.keypoints[0] = "changed"
    sk.edges.clear()
    assert skeleton_template("coco-person-17").keypoints[0] == "nose"
    assert len(SKELETON_TEMPLATES["coco-person-17"].edges) == 19


def test_unknown_template_lists_the_choices():
    with pytest.raises(KeyError) as info:
        skeleton_template("horse")
    assert ("unknown skeleton template 'horse'; choose one of "
            "['coco-person-17', 'full-body-33']") in str(info.value)


# -- classes and schemas ------------------------------------------------------------------------

def test_label_class_validation():
    with pytest.raises(ValueError, match="non-empty name"):
        LabelClass("  ")
    with pytest.raises(ValueError, match="class kind 'region' must be one of"):
        LabelClass("cat", kind="region")
    with pytest.raises(ValueError, match="class tool 'brush' must be one of"):
        LabelClass("cat", tool="brush")
    with pytest.raises(ValueError, match="keypoints class 'person' needs a skeleton"):
        LabelClass("person", tool="keypoints")
    person = LabelClass("person", tool="keypoints", skeleton=skeleton_template("coco-person-17"))
    assert person.skeleton is not None


def test_a_category_class_has_no_tool_or_skeleton():
    cls = LabelClass("indoor", kind="category", tool="keypoints",
                     skeleton=skeleton_template("coco-person-17"))
    assert (cls.tool, cls.skeleton) == (None, None)


def test_schema_add_keeps_one_class_per_name_and_kind():
    schema = LabelSchema()
    cat = schema.add(LabelClass("cat"))
    assert schema.add(LabelClass("cat", color="#000000")) is cat
    image_cat = schema.add(LabelClass("cat", kind="category"))
    assert image_cat is not cat
    assert [(c.name, c.kind) for c in schema.classes] == [("cat", "object"), ("cat", "category")]
    assert schema.get("cat", "category") is image_cat and schema.get("dog") is None
    assert [c.color for c in schema.classes] == [PALETTE[0], PALETTE[1]]
    assert schema.add(LabelClass("dog", color="#123456")).color == "#123456"


def test_default_colors_cycle():
    assert default_color(0) == default_color(len(PALETTE))
    assert len(set(PALETTE)) == len(PALETTE)
