"""Keypoints per object: crops, flips on the skeleton, decoding, metrics, training, ONNX."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from labelwise.autolabel.dense_heads import FitConfig
from labelwise.autolabel.detection_metrics import (
    COCO17_SIGMAS,
    detection_metrics,
    keypoint_metrics,
    keypoint_sigmas,
    oks,
    pck,
)
from labelwise.autolabel.features import FeatureCache
from labelwise.autolabel.keypoints import (
    STRIDE,
    CropWindow,
    ExportedKeypoints,
    KeypointConfig,
    KeypointEstimator,
    KeypointHead,
    KeypointModel,
    decode_heatmaps,
    evaluate_keypoints,
    export_keypoints,
    flipped_points,
    jittered_box,
    keypoint_objects,
    keypoint_targets,
    train_keypoints,
)
from labelwise.autolabel.synthetic import FIGURE, FIGURE_SKELETON, SceneConfig, make_scenes
from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.core.schema import Skeleton, skeleton_template
from labelwise.errors import ValidationError

CROP = 96
SCENES = SceneConfig(classes=(FIGURE,), objects=(1, 3), object_size=(50, 110), seed=31)
LINE = Skeleton(["left_tip", "middle", "right_tip"], [(0, 1), (1, 2)], [(0, 2)])


# -- geometry ---------------------------------------------------------------------------------
def test_crop_window_is_a_square_around_the_box_with_a_margin():
    w = CropWindow.around((10, 20, 40, 80), margin=0.25, size=60)
    assert (w.x0, w.y0, w.side) == (-30.0, 0.0, 120.0)
    pts = np.array([[30.0, 60.0], [10.0, 20.0]])
    assert w.to_crop(pts).tolist() == [[30.0, 30.0], [20.0, 10.0]]
    assert np.allclose(w.to_image(w.to_crop(pts)), pts)


def test_crop_pads_outside_the_image_with_grey():
    image = np.full((50, 50, 3), 255, np.uint8)
    crop = CropWindow.around((0, 0, 50, 50), margin=0.5, size=40).cut(image)
    assert crop.shape == (40, 40, 3)
    assert (crop[0, 0] == 127).all() and (crop[20, 20] == 255).all()


def test_flip_mirrors_x_and_swaps_left_and_right():
    uv = np.array([[10.0, 5.0], [50.0, 6.0], [90.0, 7.0]])
    vis = np.array([2.0, 1.0, 0.0])
    out, out_vis = flipped_points(uv, vis, size=100, skeleton=LINE)
    # The left tip (was at x=10) moves to x=90 and takes the right tip's place, and back.
    assert out.tolist() == [[10.0, 7.0], [50.0, 6.0], [90.0, 5.0]]
    assert out_vis.tolist() == [0.0, 1.0, 2.0]
    twice, twice_vis = flipped_points(out, out_vis, size=100, skeleton=LINE)
    assert np.allclose(twice, uv) and twice_vis.tolist() == vis.tolist()


def test_targets_peak_at_labeled_points_only():
    uv = np.array([[18.0, 10.0], [0.0, 0.0], [40.0, 40.0]])
    heat, weight = keypoint_targets(uv, np.array([2, 0, 1]), grid=12)
    assert heat[0, 10 // STRIDE, 18 // STRIDE] == 1.0
    assert heat[1].max() == 0.0 and weight.tolist() == [1.0, 0.0, 1.0]
    assert heat[2, 10, 10] == 1.0  # x = 40 starts cell 10


def test_decoding_recovers_a_planted_point_between_cells():
    g = 24
    ii, jj = np.mgrid[0:g, 0:g]
    truth = np.array([[37.3, 52.6], [10.0, 80.0]])  # crop pixels
    heat = np.stack([np.exp(-(((jj + 0.5) * STRIDE - x) ** 2 + ((ii + 0.5) * STRIDE - y) ** 2)
                            / (2 * (1.0 * STRIDE) ** 2)) for x, y in truth])
    uv, score = decode_heatmaps(heat)
    assert np.abs(uv - truth).max() < 1.0
    assert score == pytest.approx([heat[0].max(), heat[1].max()])


# -- metrics ----------------------------------------------------------------------------------
def test_pck_counts_points_within_a_tenth_of_the_box():
    truth = np.array([[[10, 10, 2], [20, 20, 1], [0, 0, 0]]], float)
    pred = np.array([[[14, 10], [20, 31], [50, 50]]], float)
    score, per_point = pck(truth, pred, np.array([[0, 0, 100, 50]]), alpha=0.1)
    assert score == 0.5  # 4 px <= 10 px is right, 11 px is not; the unlabeled point is skipped
    assert per_point[:2].tolist() == [1.0, 0.0] and np.isnan(per_point[2])


def test_oks_is_one_for_a_perfect_prediction_and_falls_with_distance():
    gt = np.array([[10, 10, 2], [30, 30, 2]], float)
    sig = np.full(2, 0.025)
    assert oks(gt, gt, area=400, sigmas=sig) == pytest.approx(1.0)
    assert oks(gt, gt + [3, 0, 0], area=400, sigmas=sig) < oks(gt, gt + [1, 0, 0], area=400,
                                                                  sigmas=sig)


def test_sigmas_default_and_coco_person_and_custom():
    assert keypoint_sigmas(LINE).tolist() == [0.025] * 3
    assert np.allclose(keypoint_sigmas(skeleton_template("coco-person-17")), COCO17_SIGMAS)
    assert keypoint_sigmas(LINE, [0.1, 0.2, 0.3]).tolist() == [0.1, 0.2, 0.3]
    with pytest.raises(ValidationError, match="give 3 positive sigmas"):
        keypoint_sigmas(LINE, [0.1])


def test_metrics_are_perfect_for_the_ground_truth_itself():
    scenes = make_scenes(SCENES, 6)
    truth = [s.record for s in scenes]
    as_pred = [[Annotation(a.label, bbox=a.bbox, keypoints=a.keypoints, source="model",
                           confidence=0.9) for a in r.annotations] for r in truth]
    m = keypoint_metrics(truth, as_pred, label=FIGURE, skeleton=FIGURE_SKELETON)
    assert m.pck == 1.0 and m.oks_ap == pytest.approx(1.0) and m.oks_ap50 == pytest.approx(1.0)
    assert m.visibility == 1.0
    assert m.objects == sum(len(r.annotations) for r in truth)
    boxes = detection_metrics(truth, as_pred, classes=[FIGURE])
    assert boxes.map50 == pytest.approx(1.0) and boxes.map == pytest.approx(1.0)
    assert boxes.per_class[FIGURE]["precision"] == 1.0
    assert boxes.per_class[FIGURE]["recall"] == 1.0


def test_box_metrics_drop_for_missed_and_misplaced_boxes():
    truth = [ImageRecord(path="a.png", width=100, height=100, annotations=[
        Annotation("disc", bbox=(10, 10, 20, 20)), Annotation("disc", bbox=(60, 60, 20, 20))])]
    half = [[Annotation("disc", bbox=(10, 10, 20, 20), source="model", confidence=0.9),
             Annotation("disc", bbox=(0, 80, 10, 10), source="model", confidence=0.8)]]
    m = detection_metrics(truth, half, classes=["disc", "square"], score_threshold=0.5)
    assert m.per_class["disc"]["recall"] == 0.5 and m.per_class["disc"]["precision"] == 0.5
    assert m.per_class["square"]["ap50"] is None  # no ground truth: no AP
    assert 0.4 < m.map50 < 0.6
    empty = detection_metrics(truth, [[]], classes=["disc"])
    assert empty.map50 == 0.0 and empty.per_class["disc"]["recall"] == 0.0
    with pytest.raises(ValidationError, match="1 ground-truth images but 2"):
        detection_metrics(truth, [[], []], classes=["disc"])


# -- refusals ---------------------------------------------------------------------------------
def _line_records(n: int) -> list[ImageRecord]:
    return [ImageRecord(path=f"{i}.png", width=64, height=64, annotations=[
        Annotation("line", bbox=(5, 5, 40, 10), keypoints=[5, 10, 2, 25, 10, 2, 45, 10, 1])])
        for i in range(n)]


def test_refuses_without_keypoints_and_with_fewer_than_five_objects():
    no_points = [ImageRecord(path="a.png", annotations=[Annotation("line", bbox=(1, 1, 5, 5))])]
    with pytest.raises(ValidationError, match="has a 'line' with labeled keypoints"):
        keypoint_objects(no_points, label="line", skeleton=LINE)
    with pytest.raises(ValidationError, match="only 4 'line' objects.*at least 5"):
        keypoint_objects(_line_records(4), label="line", skeleton=LINE)
    objects, notes = keypoint_objects(_line_records(5), label="line", skeleton=LINE)
    assert len(objects) == 5 and "only 5 images" in notes[0]


def test_refuses_keypoints_that_do_not_fit_the_skeleton():
    recs = _line_records(5)
    recs[2].annotations[0].keypoints = [1, 1, 2]
    with pytest.raises(ValidationError) as err:
        keypoint_objects(recs, label="line", skeleton=LINE)
    assert err.value.problems == [
        "2.png: a 'line' has 3 keypoint numbers; the skeleton's 3 points need 9"]


def test_estimator_refuses_mismatched_boxes(trained, backbone):
    est = KeypointEstimator(trained[0].model, backbone)
    with pytest.raises(ValidationError, match="1 images but 2 box lists"):
        est.predict([np.zeros((20, 20, 3), np.uint8)], [[], []])
    with pytest.raises(ValidationError, match="positive width"):
        est.predict([np.zeros((20, 20, 3), np.uint8)], [[(0, 0, 0, 5)]])


# -- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(backbone, tmp_path_factory):
    train = make_scenes(SCENES, 30)
    cache = FeatureCache(tmp_path_factory.mktemp("crops"), model=backbone, size=CROP)
    config = KeypointConfig(crop=CROP, fit=FitConfig(epochs=20, batch_size=16, patience=20))
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="only 30 images"):
        result = train_keypoints([s.record for s in train], [s.image for s in train],
                                 label=FIGURE, skeleton=FIGURE_SKELETON, cache=cache,
                                 config=config)
    return result, time.perf_counter() - t0, cache


def test_short_training_clearly_beats_an_untrained_head(trained, backbone):
    result, seconds, cache = trained
    assert seconds < 60
    test = make_scenes(SCENES, 25, start=5000)
    images, truth = [s.image for s in test], [s.record for s in test]
    torch.manual_seed(0)
    untrained = export_keypoints(KeypointHead(len(FIGURE_SKELETON), 32), label=FIGURE,
                                 skeleton=FIGURE_SKELETON, crop=CROP, margin=0.15,
                                 backbone=backbone.name)
    scores = {}
    for name, model in (("trained", result.model), ("untrained", untrained)):
        metrics = evaluate_keypoints(KeypointEstimator(model, backbone), truth, images,
                                     cache=cache)
        scores[name] = metrics.pck
        assert metrics.objects == sum(len(r.annotations) for r in truth)
    assert scores["trained"] >= 0.5, scores
    assert scores["trained"] >= scores["untrained"] + 0.3, scores


def test_predictions_carry_visibility_and_confidence_per_point(trained, backbone):
    result, _, _ = trained
    scene = make_scenes(SCENES, 1, start=6000)[0]
    boxes = [a.bbox for a in scene.record.annotations]
    anns = KeypointEstimator(result.model, backbone).predict([scene.image], [boxes])[0]
    assert len(anns) == len(boxes)
    for ann, box in zip(anns, boxes, strict=True):
        assert ann.label == FIGURE and ann.source == "model" and ann.bbox == box
        pts = np.reshape(ann.keypoints, (len(FIGURE_SKELETON), 3))
        assert set(pts[:, 2]) <= {0, 1, 2}
        assert ((pts[:, 2] > 0) | (pts[:, :2] == 0).all(axis=1)).all()
        scores = ann.attributes["keypoint_scores"]
        assert len(scores) == len(FIGURE_SKELETON) and all(0 <= s <= 1 for s in scores)
        assert 0 <= ann.confidence <= 1


def test_onnx_head_equals_the_torch_head(trained, backbone):
    result, _, cache = trained
    scene = make_scenes(SCENES, 1, start=9000)[0]
    crops = [CropWindow.around(a.bbox, margin=0.15, size=CROP).cut(scene.image)
             for a in scene.record.annotations]
    maps, _ = cache.features(crops)
    with torch.no_grad():
        want = ExportedKeypoints(result.head)(*(torch.from_numpy(maps[m].astype(np.float32))
                                                for m in ("c3", "c4", "c5")))
    got = KeypointEstimator(result.model, backbone).head_outputs(maps)
    for w, g in zip(want, got, strict=True):
        assert np.abs(w.numpy() - g).max() <= 1e-4


def test_saved_model_loads_with_its_skeleton(trained, backbone, tmp_path):
    result, _, _ = trained
    loaded = KeypointModel.load(result.model.save(tmp_path / "kp"))
    assert loaded.skeleton.flip_pairs == FIGURE_SKELETON.flip_pairs
    assert (loaded.label, loaded.crop, loaded.margin) == (FIGURE, CROP, 0.15)
    scene = make_scenes(SCENES, 1, start=8000)[0]
    boxes = [[a.bbox for a in scene.record.annotations]]
    a = KeypointEstimator(result.model, backbone).predict([scene.image], boxes)
    b = KeypointEstimator(loaded, backbone).predict([scene.image], boxes)
    assert a == b


def test_visibility_share_counts_wrong_visibility_and_pck_ignores_it():
    scene = make_scenes(SCENES, 1, start=4000)[0]
    truth = scene.record
    k = len(FIGURE_SKELETON)
    preds = []
    for a in truth.annotations:
        pts = list(a.keypoints)
        first = next(i for i in range(k) if pts[3 * i + 2] == 2)
        pts[3 * first + 2] = 1  # a visible point predicted hidden, at the right place
        preds.append(Annotation(FIGURE, bbox=a.bbox, keypoints=pts, source="model",
                                confidence=0.8))
    m = keypoint_metrics([truth], [preds], label=FIGURE, skeleton=FIGURE_SKELETON)
    assert m.pck == 1.0
    assert m.visibility == pytest.approx(1 - 1 / k, abs=1e-4)


def test_unusable_keypoint_settings_are_refused():
    with pytest.raises(ValidationError, match="margin 2"):
        KeypointConfig(margin=2)
    with pytest.raises(ValidationError) as err:
        KeypointConfig(crop=100)
    assert "multiple of 32" in err.value.problems[0]


def test_jittered_boxes_stay_near_the_labeled_box():
    rng = np.random.default_rng(0)
    boxes = np.array([jittered_box((100, 50, 40, 80), rng, 0.15) for _ in range(200)])
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.abs(centres - (120, 90)).max(axis=0) == pytest.approx((3, 6), abs=0.1)
    assert boxes[:, 2].min() >= 40 * np.exp(-0.15) - 1e-9
    assert boxes[:, 3].max() <= 80 * np.exp(0.15) + 1e-9
    assert len({tuple(b) for b in boxes}) == 200


def test_training_crops_add_jittered_views_of_training_objects_only(trained):
    info = trained[0].model.info
    assert info["train_crops"] == 2 * info["train_objects"]  # own box + one jittered
    assert info["train_objects"] + info["held_out_objects"] == info["objects"]
