"""Categorization heads on frozen embeddings: fitted with torch, applied with numpy or ONNX.

A head turns embeddings ``X`` (n, d) into class scores (logits) (n, k):

1. rows are scaled to unit length (embedding norms vary with image contrast; direction is
   what carries the content, and the rest of labelwise compares embeddings by cosine);
2. each dimension is standardised with a mean and scale computed on the training rows (plus
   any unlabeled rows passed in, which steadies the statistics when labels are few);
3. ``linear``: one affine layer (multinomial logistic regression, or one-vs-rest logistic
   regression for multi-label); ``mlp``: one hidden ReLU layer before it.

Fitting is full-batch L-BFGS on the mean loss plus ``l2 / 2 * ||W||^2`` (softmax cross-entropy
for single-label, per-class sigmoid cross-entropy for multi-label). Small data sets converge
in well under a second on two cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from labelwise.errors import ValidationError

#: Floor on a dimension's scale, as a share of the mean scale: a dimension constant on the
#: training rows must not blow up on new ones.
SCALE_FLOOR = 1e-2
#: L-BFGS iterations (each one full-batch); the loss has flattened long before on embeddings.
MAX_ITERATIONS = 200
#: Fits on fewer rows than this use one thread: on small matrices, keeping threads in step
#: costs more than the second core gives, badly so when other processes share the cores.
ONE_THREAD_BELOW = 2000
#: Hidden units of the ``mlp`` head.
DEFAULT_HIDDEN = 128


@dataclass
class Head:
    """A fitted head: normalisation, then affine layers with ReLU between them.

    ``layers`` holds (W (in, out), b (out,)) pairs, float32. ``multi_label`` says whether the
    logits feed per-class sigmoids (True) or one softmax (False).
    """

    kind: str
    mean: np.ndarray
    scale: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]
    multi_label: bool
    l2: float
    params: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.layers[-1][1].shape[0])

    def features(self, X: np.ndarray) -> np.ndarray:
        """The normalised input of the first layer: (n, d) float64."""
        Xn = _unit_rows(np.asarray(X, dtype=np.float64))
        return (Xn - self.mean) / self.scale

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Class scores (n, k) float64 for embeddings ``X`` (n, d)."""
        h = self.features(X)
        for i, (W, b) in enumerate(self.layers):
            h = h @ W.astype(np.float64) + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def fit_normaliser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and scale (d,) of unit-length rows of ``X``, float32."""
    Xn = _unit_rows(np.asarray(X, dtype=np.float64))
    mean = Xn.mean(axis=0)
    std = Xn.std(axis=0)
    floor = SCALE_FLOOR * (float(std.mean()) or 1.0)
    return mean.astype(np.float32), np.maximum(std, floor).astype(np.float32)


def fit_head(
    X: np.ndarray,
    targets: np.ndarray,
    *,
    kind: str,
    multi_label: bool,
    num_classes: int,
    l2: float,
    normaliser: tuple[np.ndarray, np.ndarray] | None = None,
    hidden: int = DEFAULT_HIDDEN,
    seed: int = 0,
) -> Head:
    """Fit a ``kind`` head (``linear`` or ``mlp``) on ``X`` (n, d).

    ``targets``: (n,) int class indices for single-label, (n, k) 0/1 for multi-label.
    ``normaliser``: (mean, scale) to use instead of statistics of ``X``.
    Inputs are checked by the caller (``labelwise.autolabel.classify``).
    """
    builder = HEAD_KINDS.get(kind)
    if builder is None:
        raise ValidationError(
            f"unknown head kind {kind!r}; choose one of {', '.join(HEAD_KINDS)}"
        )
    import torch

    mean, scale = normaliser if normaliser is not None else fit_normaliser(X)
    torch.manual_seed(seed)
    feats = (_unit_rows(np.asarray(X, dtype=np.float64)) - mean) / scale
    x = torch.from_numpy(feats.astype(np.float32))
    net = builder(x.shape[1], num_classes, hidden)
    if multi_label:
        y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()
    with _threads(1 if len(x) < ONE_THREAD_BELOW else torch.get_num_threads()):
        _lbfgs(net, lambda: loss_fn(net(x), y), l2=l2)
    layers = [
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
        for m in net.modules() if isinstance(m, torch.nn.Linear)
    ]
    params = {"hidden": hidden} if kind == "mlp" else {}
    return Head(kind=kind, mean=mean, scale=scale, layers=layers, multi_label=multi_label,
                l2=l2, params=params)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _linear(d: int, k: int, hidden: int):
    import torch

    net = torch.nn.Linear(d, k)
    torch.nn.init.zeros_(net.weight)  # the convex problem needs no random start
    torch.nn.init.zeros_(net.bias)
    return net


def _mlp(d: int, k: int, hidden: int):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, k)
    )


def _lbfgs(net, data_loss: Callable, *, l2: float) -> None:
    import torch

    weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Linear)]
    opt = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=MAX_ITERATIONS,
                            history_size=20, tolerance_grad=1e-6, tolerance_change=1e-9,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = data_loss() + 0.5 * l2 * sum((w * w).sum() for w in weights)
        loss.backward()
        return loss

    opt.step(closure)


#: Head architectures by name.
HEAD_KINDS: dict[str, Callable] = {"linear": _linear, "mlp": _mlp}
