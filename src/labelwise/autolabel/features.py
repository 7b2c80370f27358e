"""Backbone feature maps for the dense heads, computed once with ONNX Runtime and cached.

The detection and keypoint heads train on EfficientNet-Lite0's ``c3``, ``c4`` and ``c5`` maps
(strides 8, 16, 32), never on the backbone itself: ONNX Runtime computes them once per image
and per horizontal flip, and they are cached on disk as float16. An image is first
letterboxed to a square ``size`` (aspect kept, grey padding); ``Letterbox`` maps boxes and
points between the image and the square. Cache entries are keyed by the image's content
hash, the size, the flip and the backbone, so a changed image, size or model never reads a
stale entry. Example::

    cache = FeatureCache("cache/", model=builtin_model(models_dir), size=256)
    maps = cache.features(images)               # {"c3": (N, 40, 32, 32) float16, ...}
    flipped = cache.features(images, flip=True)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from labelwise.embeddings.backbones import FEATURE_STRIDES, EmbeddingModel, OnnxEmbedder
from labelwise.errors import ValidationError

MAPS: tuple[str, ...] = tuple(FEATURE_STRIDES)  # ("c3", "c4", "c5")
PAD_VALUE = 127  # pixels the backbone normalises to 0: padding adds no signal
FeatureMaps = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image sits in the ``size`` x ``size`` square: ``square = image * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    size: int

    def boxes_to_square(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) ``x, y, w, h`` image pixels -> square pixels."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4) * self.scale
        return b + np.array([self.pad_x, self.pad_y, 0.0, 0.0])

    def boxes_from_square(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) ``x, y, w, h`` square pixels -> image pixels."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4) - np.array([self.pad_x, self.pad_y, 0, 0])
        return b / self.scale


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize (H, W, 3) uint8 to fit ``size`` x ``size``, centred on grey; return it and the map."""
    img = as_rgb(image)
    h, w = img.shape[:2]
    box = _letterbox_of(img.shape, size)
    nw, nh = max(1, round(w * size / max(h, w))), max(1, round(h * size / max(h, w)))
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    px, py = int(box.pad_x), int(box.pad_y)
    resized = img if (nw, nh) == (w, h) else np.asarray(
        Image.fromarray(img).resize((nw, nh), Image.Resampling.BILINEAR))
    out[py:py + nh, px:px + nw] = resized
    return out, box


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Check an image array and return it as (H, W, 3) uint8 (grey is copied to 3 channels)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValidationError(
            f"images must be uint8 pixel arrays (H, W, 3), got {img.dtype} {list(img.shape)}; "
            "decode the file with Pillow and pass np.asarray(image.convert('RGB'))"
        )
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise ValidationError(
            f"images must be (H, W, 3) RGB arrays, got shape {list(img.shape)}; convert the "
            "image to RGB first"
        )
    return np.ascontiguousarray(img[..., :3])


def content_key(image: np.ndarray) -> str:
    """A hash of an image's pixels and shape: equal pixels, equal key."""
    img = np.ascontiguousarray(image)
    digest = hashlib.sha256(repr((img.shape, str(img.dtype))).encode())
    digest.update(memoryview(img).cast("B"))
    return digest.hexdigest()[:32]


class FeatureCache:
    """c3/c4/c5 maps of letterboxed images, computed in batches and cached under ``folder``.

    ``model`` is the backbone (the built-in EfficientNet-Lite0 or any model with the same
    outputs); ``threads`` defaults to every core. With ``folder=None`` nothing is cached (for
    inference on images seen once); with ``write=False`` cached maps are read but new ones are
    not kept (pre-labeling a large set would otherwise fill the disk, ~180 KB per image at 256).
    """

    def __init__(
        self,
        folder: str | Path | None,
        *,
        model: EmbeddingModel,
        size: int,
        batch_size: int = 32,
        threads: int | None = None,
        write: bool = True,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 1024 \
                or size % 32:
            raise ValidationError(
                f"feature size {size!r} is not usable; pass a multiple of 32 between 64 and "
                "1024 (e.g. 256), so the stride 32 map has whole cells"
            )
        if batch_size < 1:
            raise ValidationError(f"batch_size {batch_size} must be at least 1")
        self.folder = None if folder is None else Path(folder) / model.name
        self.model = model
        self.size = size
        self.batch_size = batch_size
        self.threads = threads
        self.write = write
        self._embedder: OnnxEmbedder | None = None

    @property
    def embedder(self) -> OnnxEmbedder:
        if self._embedder is None:
            self._embedder = OnnxEmbedder(self.model, threads=self.threads)
            missing = [m for m in MAPS if m not in self._embedder.output_names]
            if missing:
                raise ValidationError(
                    f"backbone {self.model.name!r} has no output {missing} (outputs: "
                    f"{self._embedder.output_names}); dense heads need the stride 8/16/32 "
                    "maps c3, c4 and c5 of the built-in efficientnet-lite0"
                )
        return self._embedder

    def features(
        self, images: Sequence[np.ndarray], *, flip: bool = False
    ) -> tuple[FeatureMaps, list[Letterbox]]:
        """Maps for every image (float16, NCHW) and each image's letterbox, cached.

        With ``flip`` the maps are those of the letterboxed image mirrored left to right.
        """
        imgs = [as_rgb(image) for image in images]
        keys = [content_key(img) for img in imgs]
        boxes = [_letterbox_of(img.shape, self.size) for img in imgs]
        entries: list[FeatureMaps | None] = [self._read(k, flip) for k in keys]
        todo = [i for i, e in enumerate(entries) if e is None]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            batch = np.stack([letterbox(imgs[i], self.size)[0] for i in chunk])
            if flip:
                batch = np.ascontiguousarray(batch[:, :, ::-1])
            out = self.embedder.run(batch, outputs=list(MAPS))
            for row, i in enumerate(chunk):
                entries[i] = {m: out[m][row].astype(np.float16) for m in MAPS}
                self._write(keys[i], flip, entries[i])
        if not keys:
            return {m: np.zeros((0, 1, 1, 1), np.float16) for m in MAPS}, boxes
        return {m: np.stack([e[m] for e in entries]) for m in MAPS}, boxes

    def run(self, images: Sequence[np.ndarray]) -> tuple[FeatureMaps, list[Letterbox]]:
        """Maps of images without caching (for inference on images seen once), float32."""
        squares, boxes = zip(*(letterbox(img, self.size) for img in images), strict=True)
        out = self.embedder.run(np.stack(squares), outputs=list(MAPS))
        return {m: out[m] for m in MAPS}, list(boxes)

    def _path(self, key: str, flip: bool) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}-{self.size}-{'flip' if flip else 'orig'}.npz"

    def _write(self, key: str, flip: bool, maps: FeatureMaps) -> None:
        if self.folder is None or not self.write:
            return
        path = self._path(key, flip)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:  # written whole, then renamed: readers never see half
            np.savez(fh, **maps)
        os.replace(tmp, path)

    def _read(self, key: str, flip: bool) -> FeatureMaps | None:
        """The cached maps, or None when absent or damaged (a damaged file is removed)."""
        if self.folder is None:
            return None
        path = self._path(key, flip)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return {m: data[m] for m in MAPS}
        except (OSError, ValueError, KeyError, EOFError):
            path.unlink(missing_ok=True)  # computed again by the caller
            return None


def _letterbox_of(shape: tuple[int, ...], size: int) -> Letterbox:
    """The letterbox ``letterbox`` would use for an image of ``shape``, without resizing it."""
    h, w = shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Rounding makes the two axes' scales differ slightly; their mean is off by < 0.5 px.
    return Letterbox(scale=(nw / w + nh / h) / 2, pad_x=(size - nw) // 2, pad_y=(size - nh) // 2,
                     size=size)
