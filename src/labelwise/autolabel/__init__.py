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


def __getattr__(name: str):  # returns whatever object the name re-exports
    module = _DENSE_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labelwise.autolabel' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"labelwise.autolabel.{module}"), name)
