"""Custom Auto-Label: train models on a few labeled images, pre-label the rest."""

# Boxes and keypoints (torch heads on cached backbone maps), re-exported lazily: importing
# the package must not pay for importing torch.
_DENSE_EXPORTS = {
    "FeatureCache": "features", "SceneConfig": "synthetic", "make_scenes": "synthetic",
    "write_coco_scenes": "synthetic", "DetectorConfig": "detect", "DetectorModel": "detect",
    "Detector": "detect", "train_detector": "detect", "evaluate_detector": "detect",
    "KeypointConfig": "keypoints", "KeypointModel": "keypoints",
    "KeypointEstimator": "keypoints", "train_keypoints": "keypoints",
    "evaluate_keypoints": "keypoints", "keypoint_metrics": "detection_metrics",
}
# Categorization (heads on the stored embeddings), lazily too.
_CATEGORIZATION_EXPORTS = {
    "TrainOptions": "classify", "TrainedClassifier": "classify",
    "train_classifier": "classify", "ModelCard": "card", "render_card": "card",
    "fit_buckets": "uncertainty", "DifficultyBuckets": "uncertainty",
    "select_next_batch": "active", "save_classifier": "store", "load_classifier": "store",
    "export_onnx": "store", "list_versions": "store",
}


def __getattr__(name: str):  # returns whatever object the name re-exports
    module = _DENSE_EXPORTS.get(name) or _CATEGORIZATION_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelwise.autolabel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"labelwise.autolabel.{module}"), name)
