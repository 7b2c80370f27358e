"""The pixel check passes edited copies and refuses different images, with planted answers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from labelwise.embeddings.verify import DEFAULT_MIN_NCC, pair_similarity, signature
from labelwise.errors import ValidationError


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth random structure: a blurred noise field, like a real photo's low frequencies.
    small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((96, 96), Image.BICUBIC)


def _jpeg(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=60)
    return Image.open(io.BytesIO(buf.getvalue()))


EDITS = {
    "flip": ImageOps.mirror,
    "crop90": lambda im: im.crop((5, 5, 91, 91)),
    "jpeg": _jpeg,
    "brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "resize": lambda im: im.resize((200, 200), Image.BILINEAR),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_copy_passes(edit):
    original = _photo(1)
    sig = np.stack([signature(original), signature(EDITS[edit](original))])
    assert pair_similarity(sig, np.array([[0, 1]]))[0] >= DEFAULT_MIN_NCC


def test_different_images_fail():
    sig = np.stack([signature(_photo(s)) for s in range(20)])
    pairs = np.array([(i, j) for i in range(20) for j in range(i + 1, 20)])
    assert pair_similarity(sig, pairs).max() < DEFAULT_MIN_NCC


def test_symmetric_and_validated():
    sig = np.stack([signature(_photo(1)), signature(ImageOps.mirror(_photo(1)))])
    s = pair_similarity(sig, np.array([[0, 1], [1, 0]]))
    assert s[0] == pytest.approx(s[1])
    with pytest.raises(ValidationError, match="outside"):
        pair_similarity(sig, np.array([[0, 2]]))
    with pytest.raises(ValidationError, match=r"\(n, 6, d\)"):
        pair_similarity(sig[:, :2], np.array([[0, 1]]))


def test_blank_image_matches_nothing():
    sig = np.stack([signature(Image.new("L", (32, 32), 128)), signature(_photo(3))])
    assert abs(pair_similarity(sig, np.array([[0, 1]]))[0]) < 0.05
