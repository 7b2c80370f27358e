"""Box detection: features, NMS, targets, refusals, a short training run and the ONNX head."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.autolabel.dense_heads import FitConfig
from labelwise.autolabel.detect import (
    DetectionHead,
    Detector,
    DetectorConfig,
    DetectorModel,
    ExportedDetector,
    detection_data,
    detection_targets,
    evaluate_detector,
    export_detector,
    train_detector,
)
from labelwise.autolabel.features import FeatureCache, Letterbox, letterbox
from labelwise.autolabel.nms import batched_nms, box_iou, nms
from labelwise.autolabel.synthetic import SHAPES, SceneConfig, make_scenes
from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.errors import ValidationError

SIZE = 128
SCENES = SceneConfig(classes=SHAPES, objects=(2, 4), object_size=(32, 80), seed=21)


# -- NMS --------------------------------------------------------------------------------------
def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """NMS straight from its definition: walk boxes by score, keep one unless a kept box
    overlaps it by more than the threshold."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: (-scores[k], k)):
        if all(iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


boxes_strategy = st.integers(0, 40).flatmap(lambda n: st.tuples(
    st.lists(st.tuples(st.floats(0, 90), st.floats(0, 90), st.floats(1, 40), st.floats(1, 40)),
             min_size=n, max_size=n),
    st.lists(st.floats(0, 1), min_size=n, max_size=n),
    st.floats(0.05, 0.95),
))


@settings(max_examples=150, deadline=None)
@given(boxes_strategy)
def test_nms_matches_the_brute_force_definition(case):
    raw, scores, threshold = case
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h in raw]).reshape(-1, 4)
    scores = np.array(scores)
    assert nms(boxes, scores, iou_threshold=threshold).tolist() == brute_force_nms(
        boxes, scores, threshold)


def test_batched_nms_suppresses_only_within_a_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, np.array([0, 0, 1])).tolist() == [0, 2]
    assert nms(boxes, scores, iou_threshold=0.5).tolist() == [0]


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    assert box_iou(a, b)[0] == pytest.approx([1.0, 1 / 3, 0.0, 0.0])


# -- features ---------------------------------------------------------------------------------
def test_letterbox_keeps_the_aspect_and_maps_boxes_both_ways():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 20:60] = 255
    square, lb = letterbox(img, 128)
    assert square.shape == (128, 128, 3)
    assert lb.scale == pytest.approx(0.64) and lb.pad_y == 32 and lb.pad_x == 0
    sq = lb.boxes_to_square(np.array([[20, 40, 40, 20]]))
    assert sq[0] == pytest.approx([12.8, 57.6, 25.6, 12.8])
    x, y, w, h = (round(v) for v in sq[0])
    assert square[y + 2:y + h - 2, x + 2:x + w - 2].min() > 200
    assert lb.boxes_from_square(sq)[0] == pytest.approx([20, 40, 40, 20])


def test_feature_cache_reuses_entries_and_flips(backbone, tmp_path):
    images = [s.image for s in make_scenes(SCENES, 3)]
    cache = FeatureCache(tmp_path, model=backbone, size=SIZE)
    maps, boxes = cache.features(images)
    assert maps["c3"].shape == (3, 40, 16, 16) and maps["c3"].dtype == np.float16
    assert maps["c5"].shape == (3, 320, 4, 4)
    assert all(isinstance(b, Letterbox) for b in boxes)
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 3
    stamps = [f.stat().st_mtime_ns for f in files]
    again, _ = cache.features(images)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not recomputed
    assert np.array_equal(again["c4"], maps["c4"])
    flipped, _ = cache.features(images, flip=True)
    assert len(sorted(tmp_path.rglob("*.npz"))) == 6
    square = letterbox(images[0], SIZE)[0]
    direct = cache.embedder.run(np.ascontiguousarray(square[None, :, ::-1]), outputs=["c3"])
    assert np.allclose(flipped["c3"][0], direct["c3"][0], atol=2e-2)
    assert not np.allclose(flipped["c3"][0], maps["c3"][0], atol=2e-2)


@pytest.mark.parametrize("size", [100, 32, 2048, True])
def test_feature_cache_refuses_unusable_sizes(backbone, tmp_path, size):
    with pytest.raises(ValidationError, match="multiple of 32"):
        FeatureCache(tmp_path, model=backbone, size=size)


def test_feature_cache_refuses_non_image_arrays(backbone, tmp_path):
    cache = FeatureCache(tmp_path, model=backbone, size=SIZE)
    with pytest.raises(ValidationError, match="uint8"):
        cache.features([np.zeros((20, 20, 3), np.float32)])
    with pytest.raises(ValidationError, match="RGB"):
        cache.features([np.zeros((20, 20, 5), np.uint8)])


# -- targets and refusals ---------------------------------------------------------------------
def test_targets_peak_at_the_centre_cell_and_hold_the_box():
    box = np.array([[40.0, 16.0, 80.0, 48.0]])  # centre (60, 32): cell row 4, column 7
    heat, target, weight = detection_targets(box, np.array([1]), num_classes=2, grid=16)
    assert heat[1, 4, 7] == 1.0 and heat[0].max() == 0.0
    assert heat[1].sum() > 1.0  # a Gaussian around the peak
    assert target[:, 4, 7].tolist() == [40.0, 16.0, 80.0, 48.0]
    assert weight[4, 7] == 1.0 and weight[0, 0] == 0.0


def _records(counts: dict[str, int]) -> list[ImageRecord]:
    recs = []
    for label, n in counts.items():
        for i in range(n):
            recs.append(ImageRecord(path=f"{label}{i}.png", width=64, height=64,
                                    annotations=[Annotation(label, bbox=(4, 4, 20, 20))]))
    return recs


def test_refuses_images_without_boxes():
    recs = [ImageRecord(path="a.png", width=64, height=64,
                        annotations=[Annotation("cat"), Annotation("dog", bbox=(1, 1, 9, 9),
                                                                   source="model")])]
    with pytest.raises(ValidationError, match="none of the 1 images has a box"):
        detection_data(recs)
    with pytest.raises(ValidationError, match="no labeled images"):
        detection_data([])


def test_refuses_classes_with_fewer_than_five_boxes():
    with pytest.raises(ValidationError) as err:
        detection_data(_records({"disc": 6, "square": 3, "triangle": 4}))
    assert "at least 5" in str(err.value)
    assert err.value.problems == ["'square': 3 boxes", "'triangle': 4 boxes"]


def test_refuses_a_requested_class_without_boxes():
    with pytest.raises(ValidationError, match=r"no boxes of class \['rocket'\]"):
        detection_data(_records({"disc": 6}), classes=["disc", "rocket"])


def test_warns_under_a_hundred_images_and_counts_polygons():
    recs = _records({"disc": 5})
    recs.append(ImageRecord(path="p.png", width=64, height=64, annotations=[
        Annotation("disc", polygons=[[0, 0, 10, 0, 10, 8]])]))
    data = detection_data(recs)
    assert data.classes == ["disc"] and data.num_boxes == 6
    assert data.boxes[-1].tolist() == [[0, 0, 10, 8]]
    assert "only 6 labeled images" in data.warnings[0]


def test_train_refuses_mismatched_inputs(backbone, tmp_path):
    cache = FeatureCache(tmp_path, model=backbone, size=SIZE)
    recs = _records({"disc": 5})
    with pytest.raises(ValidationError, match="5 records but 4 images"):
        train_detector(recs, [np.zeros((64, 64, 3), np.uint8)] * 4, cache=cache,
                       config=DetectorConfig(size=SIZE))
    with pytest.raises(ValidationError, match="size=256"):
        train_detector(recs, [np.zeros((64, 64, 3), np.uint8)] * 5, cache=cache)


# -- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(backbone, tmp_path_factory):
    train = make_scenes(SCENES, 48)
    cache = FeatureCache(tmp_path_factory.mktemp("features"), model=backbone, size=SIZE)
    config = DetectorConfig(size=SIZE, fit=FitConfig(epochs=25, batch_size=8, patience=25))
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="only 48 labeled images"):
        result = train_detector([s.record for s in train], [s.image for s in train],
                                cache=cache, config=config)
    return result, time.perf_counter() - t0, cache


def test_short_training_clearly_beats_an_untrained_head(trained, backbone):
    result, seconds, cache = trained
    assert seconds < 60
    test = make_scenes(SCENES, 40, start=5000)
    images, truth = [s.image for s in test], [s.record for s in test]
    torch.manual_seed(0)
    untrained = export_detector(DetectionHead(len(SHAPES), 32), classes=result.model.classes,
                                size=SIZE, backbone=backbone.name)
    scores = {}
    for name, model in (("trained", result.model), ("untrained", untrained)):
        metrics = evaluate_detector(Detector(model, backbone), truth, images, cache=cache)
        scores[name] = metrics.map50
        assert set(metrics.per_class) == set(SHAPES)
    assert scores["trained"] >= 0.4, scores
    assert scores["trained"] >= scores["untrained"] + 0.3, scores
    assert result.history.train_loss[-1] < result.history.train_loss[0]
    assert result.model.info["boxes"] == sum(len(s.record.annotations) for s in make_scenes(
        SCENES, 48))


def test_predictions_are_model_annotations_inside_the_image(trained, backbone):
    result, _, _ = trained
    scene = make_scenes(SCENES, 1, start=7000)[0]
    found = Detector(result.model, backbone).predict([scene.image], min_score=0.2)[0]
    assert found, "a trained detector finds something in a scene with objects"
    for ann in found:
        x, y, w, h = ann.bbox
        assert ann.source == "model" and ann.label in SHAPES
        assert 0.2 <= ann.confidence <= 1.0
        assert 0 <= x and 0 <= y and x + w <= scene.record.width + 0.01
        assert y + h <= scene.record.height + 0.01
    assert [a.confidence for a in found] == sorted((a.confidence for a in found), reverse=True)


def test_onnx_head_equals_the_torch_head(trained, backbone):
    result, _, cache = trained
    images = [s.image for s in make_scenes(SCENES, 4, start=9000)]
    maps, _ = cache.features(images)
    with torch.no_grad():
        want = ExportedDetector(result.head)(*(torch.from_numpy(maps[m].astype(np.float32))
                                               for m in ("c3", "c4", "c5")))
    got = Detector(result.model, backbone).head_outputs(maps)
    for w, g in zip(want, got, strict=True):
        assert np.abs(w.numpy() - g).max() <= 1e-4


def test_saved_detector_loads_and_predicts_the_same(trained, backbone, tmp_path):
    result, _, _ = trained
    folder = result.model.save(tmp_path / "det")
    loaded = DetectorModel.load(folder)
    assert loaded.classes == result.model.classes and loaded.size == SIZE
    image = make_scenes(SCENES, 1, start=8000)[0].image
    a = Detector(result.model, backbone).predict([image])[0]
    b = Detector(loaded, backbone).predict([image])[0]
    assert a == b


def test_loading_a_folder_without_a_detector_says_so(tmp_path):
    from labelwise.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no saved detector"):
        DetectorModel.load(tmp_path)


def test_detector_refuses_another_backbone_and_bad_options(trained, backbone):
    result, _, _ = trained
    other = type(backbone)(name="resnet", onnx_path=backbone.onnx_path)
    with pytest.raises(ValidationError, match="trained on backbone 'efficientnet-lite0'"):
        Detector(result.model, other)
    with pytest.raises(ValidationError, match="min_score"):
        Detector(result.model, backbone).predict([np.zeros((32, 32, 3), np.uint8)], min_score=2)


def test_unusable_detector_settings_are_refused_together():
    with pytest.raises(ValidationError) as err:
        DetectorConfig(size=100, width=2, val_fraction=0.9)
    assert len(err.value.problems) == 3
    assert "multiple of 32" in err.value.problems[0]
    with pytest.raises(ValidationError, match="epochs 0 must be at least 1"):
        FitConfig(epochs=0)


def test_a_damaged_cache_file_is_computed_again(backbone, tmp_path):
    image = make_scenes(SCENES, 1)[0].image
    cache = FeatureCache(tmp_path, model=backbone, size=SIZE)
    want, _ = cache.features([image])
    (path,) = tmp_path.rglob("*.npz")
    path.write_bytes(b"not an npz file")
    got, _ = cache.features([image])
    assert np.allclose(got["c5"].astype(np.float32), want["c5"].astype(np.float32), atol=1e-2)
    assert path.stat().st_size > 1000  # rewritten whole


def test_a_cache_without_a_folder_computes_and_keeps_nothing(backbone, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = make_scenes(SCENES, 1)[0].image
    maps, boxes = FeatureCache(None, model=backbone, size=SIZE).features([image], flip=True)
    assert maps["c3"].shape == (1, 40, 16, 16) and len(boxes) == 1
    assert not list(tmp_path.rglob("*"))
