"""Synthetic scenes with known labels: shapes and stick figures pasted on real photos.

Every scene is fully determined by ``(config.seed, index)``, so a test or a benchmark can make
the same images again anywhere. Backgrounds are random crops of scikit-image's bundled photos
(no download), flipped, colour-jittered and noised; on them go a few objects that never
overlap:

- ``disc``, ``square``, ``triangle``: filled shapes of random size, rotation, colour and
  shading, labeled with their exact polygon and its box;
- ``figure``: an articulated stick figure in a random pose, labeled with 14 keypoints on
  ``FIGURE_SKELETON`` (left limbs in one colour, right limbs in another, so left and right can
  be told apart), an RLE mask of its visible pixels and its box. Part of some figures is
  hidden behind a patch of another photo: the points under it are labeled hidden (v=1);
  points cut off by the image edge are not labeled (v=0).

Thin random strokes add clutter that belongs to no class. Example::

    config = SceneConfig(classes=("disc", "square", "triangle"), seed=7)
    scenes = make_scenes(config, 100)
    scenes[0].image.shape, scenes[0].record.annotations[0].bbox
    write_coco_scenes(scenes, "synthetic/", schema=scene_schema(config))  # labelwise import coco
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from labelwise.core.annotations import Annotation, DatasetDraft, ImageRecord
from labelwise.core.schema import LabelClass, LabelSchema, Skeleton, flip_pairs_by_name
from labelwise.errors import ValidationError

SHAPES: tuple[str, ...] = ("disc", "square", "triangle")
FIGURE = "figure"
SCENE_CLASSES: tuple[str, ...] = (*SHAPES, FIGURE)

_FIGURE_POINTS = [
    "head", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
    "left_ankle", "right_ankle",
]
_P = {name: i for i, name in enumerate(_FIGURE_POINTS)}
_FIGURE_EDGES = [
    (_P[a], _P[b]) for a, b in [
        ("head", "neck"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
        ("left_hip", "right_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ]
]
#: The stick figure's 14 points; flip pairs swap left_* and right_*.
FIGURE_SKELETON = Skeleton(
    _FIGURE_POINTS, _FIGURE_EDGES, flip_pairs_by_name(_FIGURE_POINTS), template=None
)

# Photos bundled with scikit-image (none needs a download); grey ones get a random tint.
BACKGROUNDS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "clock",
    "immunohistochemistry", "hubble_deep_field", "grass", "gravel", "brick",
)


@dataclass(frozen=True, slots=True)
class SceneConfig:
    """What scenes to make. Sizes are pixels; ``object_size`` bounds an object's longer side."""

    width: int = 320
    height: int = 240
    classes: tuple[str, ...] = SHAPES
    objects: tuple[int, int] = (1, 4)
    object_size: tuple[int, int] = (28, 96)
    occluded: float = 0.3  # share of figures partly hidden behind a patch
    cut_by_edge: float = 0.15  # share of figures allowed to reach past the image edge
    clutter: int = 6  # at most this many unlabeled strokes per scene
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        unknown = sorted(set(self.classes) - set(SCENE_CLASSES))
        if not self.classes or unknown:
            problems.append(f"classes {list(self.classes)}: choose from {list(SCENE_CLASSES)}")
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096):
            problems.append(f"image size {self.width}x{self.height}: use 32..4096 per side")
        lo, hi = self.objects
        if not 0 <= lo <= hi:
            problems.append(f"objects {self.objects}: give (min, max) with 0 <= min <= max")
        small, large = self.object_size
        if not 8 <= small <= large <= min(self.width, self.height) // 2:
            problems.append(
                f"object_size {self.object_size}: give (min, max) with 8 <= min <= max <= "
                f"half the shorter image side ({min(self.width, self.height) // 2})"
            )
        for name in ("occluded", "cut_by_edge"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} {getattr(self, name)}: give a share between 0 and 1")
        if problems:
            raise ValidationError("the scene settings are not usable", problems=problems)


@dataclass(slots=True)
class Scene:
    """One generated image, its labels, and each annotation's visible pixels (N, H, W) bool."""

    image: np.ndarray
    record: ImageRecord
    masks: np.ndarray = field(repr=False)


def scene_schema(config: SceneConfig) -> LabelSchema:
    """The label schema of scenes made with ``config``: a class per object kind."""
    schema = LabelSchema()
    for name in config.classes:
        if name == FIGURE:
            schema.add(LabelClass(FIGURE, tool="keypoints",
                                  skeleton=Skeleton.from_dict(FIGURE_SKELETON.to_dict())))
        else:
            schema.add(LabelClass(name, tool="polygon"))
    return schema


def make_scenes(config: SceneConfig, n: int, *, start: int = 0) -> list[Scene]:
    """Scenes ``start`` .. ``start + n - 1``; scene i is the same whatever ``start`` and ``n``."""
    if n < 0 or start < 0:
        raise ValidationError(f"scene count {n} and start {start} must both be >= 0")
    return [make_scene(config, i) for i in range(start, start + n)]


def make_scene(config: SceneConfig, index: int) -> Scene:
    """Scene number ``index`` of ``config``: always the same pixels and labels."""
    rng = np.random.default_rng([config.seed, index])
    w, h = config.width, config.height
    canvas = _background(rng, w, h)
    _clutter(rng, canvas, config.clutter)
    taken: list[tuple[float, float, float, float]] = []
    annotations: list[Annotation] = []
    masks: list[np.ndarray] = []
    count = int(rng.integers(config.objects[0], config.objects[1] + 1))
    for _ in range(count):
        label = config.classes[int(rng.integers(len(config.classes)))]
        size = float(rng.uniform(*config.object_size))
        if label == FIGURE:
            placed = _place_figure(rng, canvas, config, size, taken)
        else:
            placed = _place_shape(rng, canvas, label, size, taken)
        if placed is not None:
            annotations.append(placed[0])
            masks.append(placed[1])
    name = f"scene_{config.seed}_{index:06d}.png"
    record = ImageRecord(path=name, width=w, height=h, annotations=annotations,
                         external_id=index + 1, metadata={"scene_seed": config.seed})
    stack = np.stack(masks) if masks else np.zeros((0, h, w), bool)
    return Scene(image=canvas, record=record, masks=stack)


def write_coco_scenes(scenes: Sequence[Scene], folder: str | Path, *, schema: LabelSchema) -> Path:
    """Write ``folder/images/*.png`` and ``folder/annotations.json``; return the JSON's path.

    The folder imports with ``labelwise import coco folder/annotations.json --images
    folder/images``.
    """
    from labelwise.io.coco import write_coco

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        Image.fromarray(scene.image).save(folder / "images" / scene.record.path)
    draft = DatasetDraft(schema=schema, images=[s.record for s in scenes], source=str(folder))
    result = write_coco(draft, folder)
    return result.files[0]


# -- backgrounds ------------------------------------------------------------------------------
@functools.cache
def _photo(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError as err:
        raise ValidationError(
            "synthetic scenes use scikit-image's bundled photos as backgrounds; install it "
            "with `pip install scikit-image` (part of labelwise's `dev` extra)"
        ) from err
    img = np.asarray(getattr(skimage.data, name)())
    return img[..., :3] if img.ndim == 3 else img


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    photo = _photo(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    ph, pw = photo.shape[:2]
    # A random crop with the output's aspect ratio, between 40% and 100% of what fits.
    fit = min(pw / w, ph / h)
    scale = fit * float(rng.uniform(0.4, 1.0))
    cw, ch = max(8, int(w * scale)), max(8, int(h * scale))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = Image.fromarray(photo[y0:y0 + ch, x0:x0 + cw]).resize((w, h), Image.Resampling.BILINEAR)
    img = np.asarray(crop, dtype=np.float32)
    if img.ndim == 2:  # a grey photo: tint it
        img = img[..., None] * rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    gain = rng.uniform(0.8, 1.2, size=3) * rng.uniform(0.7, 1.3)
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.7, 1.2) + mean  # contrast
    img = img * gain + rng.normal(0.0, rng.uniform(0.0, 8.0), size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, most: int) -> None:
    """Thin unlabeled strokes, so that not every edge in a scene belongs to an object."""
    h, w = canvas.shape[:2]
    im = Image.fromarray(canvas)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(0, most + 1))):
        pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(3)]
        draw.line(pts, fill=_colour(rng), width=int(rng.integers(1, 3)))
    canvas[:] = np.asarray(im)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated, not too dark colour (HSV with s >= 0.45, v >= 0.4)."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.45, 1.0), rng.uniform(0.4, 1.0)
    i = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    r, g, b = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


# -- shapes -----------------------------------------------------------------------------------
def _shape_polygon(rng: np.random.Generator, label: str, size: float) -> np.ndarray:
    """The outline (P, 2) of a shape whose longer side is about ``size``, centred at 0."""
    angle = float(rng.uniform(0, 2 * math.pi))
    if label == "disc":
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        aspect = float(rng.uniform(0.75, 1.0))
        pts = np.stack([np.cos(t), aspect * np.sin(t)], axis=1) * (size / 2)
    elif label == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * (size / (2 * math.sqrt(2)))
    else:  # an equilateral triangle
        t = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) - math.pi / 2
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * (size / math.sqrt(3))
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _free_spot(
    rng: np.random.Generator, extent: np.ndarray, w: int, h: int,
    taken: list[tuple[float, float, float, float]], *, spill: float = 0.0,
) -> tuple[float, float] | None:
    """A centre where ``extent`` (min/max offsets, (2, 2)) fits and meets no taken box."""
    (x_lo, y_lo), (x_hi, y_hi) = extent
    sx, sy = spill * (x_hi - x_lo), spill * (y_hi - y_lo)
    for _ in range(40):
        cx = float(rng.uniform(-x_lo - sx, w - x_hi + sx))
        cy = float(rng.uniform(-y_lo - sy, h - y_hi + sy))
        box = (cx + x_lo - 3, cy + y_lo - 3, cx + x_hi + 3, cy + y_hi + 3)  # 3 px apart
        if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1] or t[3] <= box[1]
               for t in taken):
            taken.append(box)
            return cx, cy
    return None


def _paint(rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray,
           colour: tuple[int, int, int]) -> None:
    """Fill ``mask`` with ``colour`` under a linear shading and fine noise."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    span = max(np.ptp(xs), np.ptp(ys), 1)
    shade = 1.0 + 0.35 * ((xs - xs.mean()) * direction[0] + (ys - ys.mean()) * direction[1]) / span
    pix = np.asarray(colour, np.float32)[None] * shade[:, None]
    pix += rng.normal(0, 6, size=pix.shape)
    canvas[ys, xs] = np.clip(pix, 0, 255).astype(np.uint8)


def _place_shape(rng, canvas, label, size, taken) -> tuple[Annotation, np.ndarray] | None:
    h, w = canvas.shape[:2]
    poly = _shape_polygon(rng, label, size)
    spot = _free_spot(rng, np.stack([poly.min(0), poly.max(0)]), w, h, taken)
    if spot is None:
        return None
    pts = poly + np.asarray(spot)
    flat = [float(round(v, 2)) for v in pts.reshape(-1)]
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).polygon(list(map(tuple, pts.tolist())), fill=1)
    mask = np.asarray(im, bool)
    _paint(rng, canvas, mask, _colour(rng))
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    bbox = (round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
            round(float(y1 - y0), 2))
    return Annotation(label=label, bbox=bbox, polygons=[flat]), mask


# -- stick figures ----------------------------------------------------------------------------
def _figure_pose(rng: np.random.Generator, size: float) -> np.ndarray:
    """The 14 points (14, 2) of a random pose, about ``size`` tall, centred near 0.

    The figure faces the viewer, so its left side is on the image's right.
    """
    s = size
    pts = np.zeros((len(_FIGURE_POINTS), 2))
    pts[_P["neck"]] = (0.0, -0.22 * s)
    pts[_P["head"]] = (rng.uniform(-0.02, 0.02) * s, -0.34 * s)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = np.array([sign * 0.11 * s, -0.19 * s])
        hip = np.array([sign * 0.07 * s, 0.08 * s])
        pts[_P[f"{side}_shoulder"]] = shoulder
        pts[_P[f"{side}_hip"]] = hip
        # Angles from straight down, positive away from the body's midline.
        up, low = rng.uniform(-0.4, 2.6), rng.uniform(-1.2, 1.2)
        elbow = shoulder + 0.16 * s * np.array([sign * math.sin(up), math.cos(up)])
        wrist = elbow + 0.15 * s * np.array([sign * math.sin(up + low), math.cos(up + low)])
        thigh, shin = rng.uniform(-0.2, 0.9), rng.uniform(-0.9, 0.2)
        knee = hip + 0.21 * s * np.array([sign * math.sin(thigh), math.cos(thigh)])
        ankle = knee + 0.2 * s * np.array([sign * math.sin(thigh + shin), math.cos(thigh + shin)])
        pts[_P[f"{side}_elbow"]], pts[_P[f"{side}_wrist"]] = elbow, wrist
        pts[_P[f"{side}_knee"]], pts[_P[f"{side}_ankle"]] = knee, ankle
    lean = rng.uniform(-0.3, 0.3)
    c, sn = math.cos(lean), math.sin(lean)
    return pts @ np.array([[c, sn], [-sn, c]])


def _draw_figure(canvas_size: tuple[int, int], pts: np.ndarray, size: float,
                 colours: Sequence[tuple[int, int, int]]) -> tuple[Image.Image, Image.Image]:
    """The figure drawn on a transparent layer, and its mask."""
    w, h = canvas_size
    layer = Image.new("RGB", (w, h))
    mask = Image.new("L", (w, h), 0)
    limb = max(2, round(0.05 * size))
    body, left, right = colours
    p = {name: tuple(pts[i].tolist()) for name, i in _P.items()}
    torso = [p["left_shoulder"], p["right_shoulder"], p["right_hip"], p["left_hip"]]
    parts = [(torso, body, None)]
    for side, colour in (("left", left), ("right", right)):
        for chain in (("shoulder", "elbow", "wrist"), ("hip", "knee", "ankle")):
            parts.append(([p[f"{side}_{j}"] for j in chain], colour, limb))
    parts.append(([p["neck"], p["head"]], body, limb))
    for target, value in ((layer, None), (mask, 1)):
        draw = ImageDraw.Draw(target)
        for points, colour, width in parts:
            fill = colour if value is None else value
            if width is None:
                draw.polygon(points, fill=fill)
            else:
                draw.line(points, fill=fill, width=width, joint="curve")
        r = 0.08 * size
        hx, hy = p["head"]
        draw.ellipse((hx - r, hy - r, hx + r, hy + r), fill=body if value is None else value)
    return layer, mask


def _place_figure(rng, canvas, config: SceneConfig, size, taken):
    h, w = canvas.shape[:2]
    pose = _figure_pose(rng, size)
    pad = 0.09 * size  # the head's radius and the limbs' width reach past the points
    extent = np.stack([pose.min(0) - pad, pose.max(0) + pad])
    spill = 0.25 if rng.random() < config.cut_by_edge else 0.0
    spot = _free_spot(rng, extent, w, h, taken, spill=spill)
    if spot is None:
        return None
    pts = pose + np.asarray(spot)
    body = _colour(rng)
    left = _colour(rng)
    right = tuple(255 - c for c in left)  # complementary: left and right never look alike
    layer, mask_im = _draw_figure((w, h), pts, size, (body, left, right))
    mask = np.asarray(mask_im, bool)
    if not mask.any():
        return None
    pix = np.asarray(layer)
    canvas[mask] = pix[mask]
    hidden = np.zeros((h, w), bool)
    if rng.random() < config.occluded:
        hidden = _occlude(rng, canvas, mask)
    visible = mask & ~hidden
    ys, xs = np.nonzero(mask)  # the figure's full extent inside the image
    bbox = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1))
    keypoints: list[float] = []
    for x, y in pts:
        xi, yi = math.floor(x), math.floor(y)
        if not (0 <= x < w and 0 <= y < h):
            keypoints += [0.0, 0.0, 0]
        else:
            v = 1 if hidden[yi, xi] else 2
            keypoints += [round(float(x), 2), round(float(y), 2), v]
    ann = Annotation(label=FIGURE, bbox=bbox, rle=_rle(visible), keypoints=keypoints,
                     area=float(visible.sum()))
    return ann, visible


def _occlude(rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Cover a third to a half of the figure, from one side, with a patch of another photo."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    share = rng.uniform(0.33, 0.5)
    side = int(rng.integers(4))
    if side == 0:
        box = (x0, y0, x0 + int((x1 - x0) * share), y1)
    elif side == 1:
        box = (x1 - int((x1 - x0) * share), y0, x1, y1)
    elif side == 2:
        box = (x0, y1 - int((y1 - y0) * share), x1, y1)
    else:
        box = (x0, y0, x1, y0 + int((y1 - y0) * share))
    bx0, by0, bx1, by1 = (int(v) for v in box)
    patch = _background(rng, max(1, bx1 - bx0), max(1, by1 - by0))
    canvas[by0:by1, bx0:bx1] = patch[: by1 - by0, : bx1 - bx0]
    hidden = np.zeros((h, w), bool)
    hidden[by0:by1, bx0:bx1] = True
    return hidden


def _rle(mask: np.ndarray) -> dict:
    """COCO's compressed RLE of a (H, W) bool mask."""
    from pycocotools import mask as mask_utils

    enc = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in enc["size"]], "counts": enc["counts"].decode("ascii")}
