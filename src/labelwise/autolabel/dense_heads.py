"""Light torch heads on the cached c3/c4/c5 maps, their losses, training loop and ONNX export.

Shared by the detector (``detect.py``) and the keypoint model (``keypoints.py``): a small
feature pyramid fuses the three maps at stride 8; task branches sit on top. Training runs
AdamW with a cosine schedule and keeps the weights of the epoch with the lowest held-out loss
(early stopping). The trained head is exported to ONNX, and inference runs in ONNX Runtime.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labelwise.errors import ValidationError

IN_CHANNELS = {"c3": 40, "c4": 112, "c5": 320}  # EfficientNet-Lite0's maps
HEAT_PRIOR = 0.1  # initial heatmap probability: keeps the focal loss stable at the start


def conv_block(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Neck(nn.Module):
    """c3, c4, c5 -> one (N, width, H/8, W/8) map: 1x1 laterals, top-down sums, two 3x3 convs."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lat3 = conv_block(IN_CHANNELS["c3"], width, 1)
        self.lat4 = conv_block(IN_CHANNELS["c4"], width, 1)
        self.lat5 = conv_block(IN_CHANNELS["c5"], width, 1)
        self.smooth = nn.Sequential(conv_block(width, width), conv_block(width, width))

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        p4 = self.lat4(c4) + F.interpolate(self.lat5(c5), scale_factor=2.0, mode="nearest")
        p3 = self.lat3(c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        return self.smooth(p3)


def prediction_layer(cin: int, cout: int, *, prior: float | None = None) -> nn.Conv2d:
    layer = nn.Conv2d(cin, cout, 1)
    nn.init.normal_(layer.weight, std=0.01)
    nn.init.constant_(layer.bias, 0.0 if prior is None else -math.log((1 - prior) / prior))
    return layer


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
               ) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on Gaussian heatmaps.

    ``target`` is 1 at object centres and decays around them; ``weight`` (broadcastable) is 0
    where nothing is known. Normalised by the number of centres.
    """
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 0.999).float()
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - pos)
    loss = pos_loss + neg_loss
    if weight is not None:
        loss = loss * weight
        pos = pos * weight
    return loss.sum() / pos.sum().clamp(min=1.0)


# -- training ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FitConfig:
    """How long and how fast a head trains. ``max_seconds`` stops it early whatever the rest."""

    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 12
    seed: int = 0
    max_seconds: float | None = None
    # One thread: these small convolutions gain little from a second one, and OpenMP threads
    # that must wait for a busy core (other jobs on the machine) slow every step ten-fold.
    threads: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.threads < 1:
            problems.append(f"threads {self.threads} must be at least 1")
        if self.epochs < 1:
            problems.append(f"epochs {self.epochs} must be at least 1")
        if self.batch_size < 1:
            problems.append(f"batch_size {self.batch_size} must be at least 1")
        if not (self.lr > 0 and self.weight_decay >= 0):
            problems.append(f"lr {self.lr} must be > 0 and weight_decay {self.weight_decay} >= 0")
        if self.patience < 1:
            problems.append(f"patience {self.patience} must be at least 1 epoch")
        if self.max_seconds is not None and self.max_seconds <= 0:
            problems.append(f"max_seconds {self.max_seconds} must be positive (or None)")
        if problems:
            raise ValidationError("the training settings are not usable", problems=problems)


@dataclass(slots=True)
class FitHistory:
    """Per-epoch losses, the epoch kept (0-based) and why training stopped."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = "epochs"  # "epochs", "early" (no better held-out loss) or "time"
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"train_loss": [round(v, 5) for v in self.train_loss],
                "val_loss": [round(v, 5) for v in self.val_loss],
                "best_epoch": self.best_epoch, "stopped": self.stopped,
                "seconds": round(self.seconds, 2)}


#: loss(indices, flipped) -> scalar tensor, for the training samples ``indices``.
LossFn = Callable[[np.ndarray, np.ndarray], torch.Tensor]


def fit(model: nn.Module, loss_fn: LossFn, *, n_train: int, val_loss: Callable[[], float] | None,
        config: FitConfig) -> FitHistory:
    """Train ``model`` on ``n_train`` samples; each sample is seen flipped half the time.

    Keeps the weights of the epoch with the lowest ``val_loss`` (or the last epoch without one).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(model, loss_fn, n_train=n_train, val_loss=val_loss, config=config)
    finally:
        torch.set_num_threads(before)


def _fit(model: nn.Module, loss_fn: LossFn, *, n_train: int,
         val_loss: Callable[[], float] | None, config: FitConfig) -> FitHistory:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = max(config.epochs * math.ceil(n_train / config.batch_size), 1)
    # At least 2 warm-up steps: OneCycleLR divides by zero when the warm-up is exactly 1 step.
    warmup = max(0.05, 2.0 / steps) if steps >= 4 else 0.3
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=steps, pct_start=warmup,
        anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)
    history = FitHistory()
    best, best_state, t0 = math.inf, None, time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(n_train)
        flips = rng.random(n_train) < 0.5
        total = 0.0
        for start in range(0, n_train, config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = loss_fn(idx, flips[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        history.train_loss.append(total / n_train)
        if val_loss is not None:
            model.eval()
            with torch.no_grad():
                history.val_loss.append(float(val_loss()))
            if history.val_loss[-1] < best:
                best, history.best_epoch = history.val_loss[-1], epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - history.best_epoch >= config.patience:
                history.stopped = "early"
                break
        else:
            history.best_epoch = epoch
        if config.max_seconds is not None and time.perf_counter() - t0 > config.max_seconds:
            history.stopped = "time"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - t0
    return history


def check_head_settings(*, size: int, width: int, val_fraction: float, minimum: int) -> None:
    """Refuse head settings that cannot work, listing every problem."""
    problems = []
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 1024 or size % 32:
        problems.append(f"size {size!r}: use a multiple of 32 between 64 and 1024 (e.g. 256)")
    if not 4 <= width <= 512:
        problems.append(f"width {width}: use 4..512 channels (e.g. 32)")
    if not 0.0 <= val_fraction <= 0.5:
        problems.append(f"val_fraction {val_fraction}: hold out between 0 and 0.5 of the data")
    if minimum < 1:
        problems.append(f"minimum examples {minimum}: use at least 1")
    if problems:
        raise ValidationError("the model settings are not usable", problems=problems)


def split_holdout(n: int, *, fraction: float, seed: int, minimum: int = 2
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out): ``fraction`` of ``n`` held out, none if that is < ``minimum``."""
    order = np.random.default_rng(seed).permutation(n)
    k = round(n * fraction)
    if k < minimum or n - k < minimum:
        return np.sort(order), np.zeros(0, int)
    return np.sort(order[k:]), np.sort(order[:k])


def to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# -- ONNX -------------------------------------------------------------------------------------
def export_onnx(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, input_names: list[str],
                output_names: list[str], dynamic_axes: dict) -> bytes:
    """The module as ONNX bytes (opset 17), traced on ``inputs``."""
    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, buf, dynamo=False, opset_version=17,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    return buf.getvalue()


def onnx_session(model_bytes: bytes, *, threads: int | None = None):
    """An ONNX Runtime CPU session for a head exported by ``export_onnx``."""
    import os

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


MAP_AXES = {"c3": {0: "batch", 2: "h8", 3: "w8"}, "c4": {0: "batch", 2: "h16", 3: "w16"},
            "c5": {0: "batch", 2: "h32", 3: "w32"}}
