"""Stored models: ONNX equals the numpy model, versions, cards, and refusals."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from labelwise.autolabel.card import ModelCard, render_card
from labelwise.autolabel.classify import TrainOptions, train_classifier
from labelwise.autolabel.store import (
    export_onnx,
    list_versions,
    load_classifier,
    save_classifier,
)
from labelwise.errors import NotFoundError, ValidationError

from .blobs import blobs, multilabel_blobs

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def single():
    X, y = blobs(60, spread=3.0)
    return train_classifier(X, y, classes=CLASSES), X


@pytest.fixture(scope="module")
def multi():
    X, Y = multilabel_blobs(300)
    return train_classifier(X, Y, classes=list("wxyz"), multi_label=True), X


def _onnx_probs(data: bytes, X: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"embedding": X.astype(np.float32)})[0]


@pytest.mark.parametrize("which", ["single", "multi"])
def test_onnx_gives_the_numpy_model_probabilities(which, request):
    model, X = request.getfixturevalue(which)
    X_new = X + np.random.default_rng(3).normal(size=X.shape).astype(np.float32)
    onnx_p = _onnx_probs(export_onnx(model), X_new)
    assert np.abs(onnx_p - model.predict_proba(X_new)).max() < 1e-5


def test_onnx_of_an_mlp_head_matches_too():
    X, y = blobs(60, spread=3.0)
    model = train_classifier(X, y, classes=CLASSES, options=TrainOptions(head="mlp"))
    assert model.head.kind == "mlp"
    assert np.abs(_onnx_probs(export_onnx(model), X) - model.predict_proba(X)).max() < 1e-5


def test_versions_are_kept_and_loaded(tmp_path, single):
    model, X = single
    folder = tmp_path / "models" / "autolabel" / "pets"
    assert list_versions(folder) == []
    v1 = save_classifier(folder, model, embedding={"model": "efficientnet-lite0", "size": 112})
    v2 = save_classifier(folder, model)
    assert (v1.name, v2.name) == ("v1", "v2") and list_versions(folder) == [1, 2]
    assert sorted(p.name for p in v1.iterdir()) == ["card.json", "model.json", "model.onnx"]
    latest = load_classifier(folder)
    assert latest.version == 2 and latest.card.name == "pets"
    first = load_classifier(folder, version=1)
    assert first.card.embedding == {"model": "efficientnet-lite0", "size": 112}
    assert first.info["data_digest"] == model.card.data_digest
    assert np.abs(first.predict_proba(X) - model.predict_proba(X)).max() < 1e-5


def test_apply_labels_and_buckets_every_item(tmp_path, single, multi):
    for model, X in (single, multi):
        folder = tmp_path / ("m" + str(model.multi_label))
        stored = load_classifier(save_classifier(folder, model).parent)
        out = stored.apply(X)
        assert np.array_equal(out.labels, model.predict(X))
        assert set(out.buckets.tolist()) <= {"easy", "medium", "hard"}
        assert sum(b["count"] for b in out.summary.values()) == len(X)
        assert ((out.confidence >= 0) & (out.confidence <= 1)).all()


def test_the_onnx_file_stands_alone(tmp_path, multi):
    import onnx

    model, X = multi
    path = save_classifier(tmp_path / "tags", model) / "model.onnx"
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["classes"]) == list("wxyz")
    assert json.loads(meta["thresholds"]) == pytest.approx(model.thresholds.tolist())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"embedding": X[:5]})[0].shape == (5, 4)


def test_missing_models_and_wrong_embeddings_are_refused(tmp_path, single):
    model, _ = single
    with pytest.raises(NotFoundError, match="no stored model versions"):
        load_classifier(tmp_path / "nothing")
    folder = tmp_path / "pets"
    save_classifier(folder, model, embedding={"model": "efficientnet-lite0", "size": 224})
    with pytest.raises(NotFoundError, match=r"no version 7 \(versions: v1\)"):
        load_classifier(folder, version=7)
    with pytest.raises(ValidationError, match="takes 16 .*efficientnet-lite0 at 224 px"):
        load_classifier(folder).predict_proba(np.zeros((3, 8), np.float32))


def test_card_round_trips_and_renders(single):
    from rich.console import Console

    card = single[0].card
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card
    console = Console(record=True, width=120)
    console.print(render_card(card))
    text = console.export_text()
    assert "per class (held-out)" in text and "confusion matrix" in text and "fox" in text
    with pytest.raises(ValidationError, match="card version 99 is not supported"):
        ModelCard.from_dict({**card.to_dict(), "card_version": 99})
    with pytest.raises(ValidationError, match="unknown fields"):
        ModelCard.from_dict({**card.to_dict(), "colour": "red"})
