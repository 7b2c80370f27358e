"""The synthetic scene generator: deterministic, with labels that match the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.autolabel.synthetic import (
    FIGURE,
    FIGURE_SKELETON,
    SHAPES,
    SceneConfig,
    make_scene,
    make_scenes,
    scene_schema,
    write_coco_scenes,
)
from labelwise.core.geometry import polygon_area, polygon_bbox
from labelwise.errors import ValidationError
from labelwise.io.coco import read_coco

ALL = SceneConfig(classes=(*SHAPES, FIGURE), objects=(2, 5), seed=11)


def test_same_seed_and_index_give_the_same_scene():
    a, b = make_scene(ALL, 7), make_scene(ALL, 7)
    assert np.array_equal(a.image, b.image)
    assert a.record == b.record
    assert np.array_equal(a.masks, b.masks)
    # Scene 7 does not depend on which batch made it.
    assert np.array_equal(make_scenes(ALL, 3, start=5)[2].image, a.image)


def test_other_seeds_and_indices_give_other_scenes():
    base = make_scene(ALL, 0).image
    assert not np.array_equal(base, make_scene(ALL, 1).image)
    other = SceneConfig(classes=ALL.classes, objects=ALL.objects, seed=12)
    assert not np.array_equal(base, make_scene(other, 0).image)


def test_images_have_the_configured_size_and_varied_content():
    scenes = make_scenes(SceneConfig(width=200, height=150, object_size=(20, 60), seed=3), 6)
    for s in scenes:
        assert s.image.shape == (150, 200, 3) and s.image.dtype == np.uint8
        assert (s.record.width, s.record.height) == (200, 150)
        assert len(s.masks) == len(s.record.annotations)
    means = [s.image.mean() for s in scenes]
    assert max(means) - min(means) > 10  # backgrounds differ


def test_shape_boxes_polygons_and_masks_agree():
    for scene in make_scenes(SceneConfig(classes=SHAPES, objects=(3, 4), seed=5), 10):
        for ann, mask in zip(scene.record.annotations, scene.masks, strict=True):
            assert ann.label in SHAPES and ann.keypoints is None
            x, y, w, h = ann.bbox
            assert polygon_bbox(ann.polygons) == pytest.approx(ann.bbox, abs=0.02)
            ys, xs = np.nonzero(mask)
            assert xs.min() >= x - 1 and xs.max() <= x + w + 1
            assert ys.min() >= y - 1 and ys.max() <= y + h + 1
            assert mask.sum() == pytest.approx(polygon_area(ann.polygons[0]), rel=0.2)
            assert 0 <= x and 0 <= y and x + w <= scene.record.width
            assert y + h <= scene.record.height


def test_objects_never_overlap():
    for scene in make_scenes(ALL, 10):
        total = scene.masks.sum(axis=0)
        assert total.max() <= 1


def test_figure_keypoints_lie_on_the_figure_with_the_right_visibility():
    config = SceneConfig(classes=(FIGURE,), objects=(2, 3), object_size=(50, 110),
                         occluded=0.5, cut_by_edge=0.5, seed=9)
    seen = {0: 0, 1: 0, 2: 0}
    for scene in make_scenes(config, 25):
        for ann, visible in zip(scene.record.annotations, scene.masks, strict=True):
            pts = np.reshape(ann.keypoints, (len(FIGURE_SKELETON), 3))
            x, y, bw, bh = ann.bbox
            for px, py, v in pts:
                seen[int(v)] += 1
                if v == 0:
                    assert (px, py) == (0, 0)
                    continue
                assert x - 1 <= px <= x + bw + 1 and y - 1 <= py <= y + bh + 1
                i, j = int(py), int(px)
                near = visible[max(i - 2, 0):i + 3, max(j - 2, 0):j + 3]
                if v == 2:
                    assert near.any(), "a visible point must be on the figure's visible pixels"
                else:
                    assert not visible[i, j], "a hidden point must not be on visible pixels"
            assert ann.area == visible.sum()
    assert all(seen[v] > 0 for v in (0, 1, 2)), seen


def test_figure_skeleton_pairs_left_with_right():
    names = FIGURE_SKELETON.keypoints
    pairs = {(names[a], names[b]) for a, b in FIGURE_SKELETON.flip_pairs}
    assert ("left_wrist", "right_wrist") in pairs
    assert len(FIGURE_SKELETON.flip_pairs) == 6
    assert all(names[a].replace("left", "right") == names[b]
               for a, b in FIGURE_SKELETON.flip_pairs)


def test_coco_folder_reads_back_with_the_same_labels(tmp_path):
    scenes = make_scenes(ALL, 4)
    path = write_coco_scenes(scenes, tmp_path / "coco", schema=scene_schema(ALL))
    draft = read_coco(path, images=tmp_path / "coco" / "images")
    assert [r.path for r in draft.images] == [s.record.path for s in scenes]
    for rec, scene in zip(draft.images, scenes, strict=True):
        assert (tmp_path / "coco" / "images" / rec.path).is_file()
        got = [(a.label, a.bbox, a.keypoints) for a in rec.annotations]
        want = [(a.label, pytest.approx(a.bbox), a.keypoints) for a in scene.record.annotations]
        assert got == want
    figure = draft.schema.get(FIGURE)
    assert figure.skeleton.flip_pairs == FIGURE_SKELETON.flip_pairs


def test_coco_folder_imports_into_a_workspace(workspace, tmp_path):
    scenes = make_scenes(ALL, 3)
    path = write_coco_scenes(scenes, tmp_path / "coco", schema=scene_schema(ALL))
    report = workspace.import_dataset("coco", path, images=tmp_path / "coco" / "images",
                                      dataset="scenes")
    assert report.assets_added == 3
    assert report.annotations_added == sum(len(s.record.annotations) for s in scenes)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"classes": ("disc", "hexagon")}, "classes"),
    ({"classes": ()}, "classes"),
    ({"objects": (3, 1)}, "objects"),
    ({"object_size": (4, 50)}, "object_size"),
    ({"object_size": (20, 400)}, "object_size"),
    ({"occluded": 1.5}, "occluded"),
    ({"width": 10}, "image size"),
])
def test_bad_settings_are_refused_with_the_fix(kwargs, fragment):
    with pytest.raises(ValidationError) as err:
        SceneConfig(**kwargs)
    assert fragment in str(err.value)


def test_negative_counts_are_refused():
    with pytest.raises(ValidationError, match="must both be >= 0"):
        make_scenes(ALL, -1)
