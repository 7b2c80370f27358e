"""Load a workspace's images and labels for the box and keypoint models.

The dense kernels (``detect.py``, ``keypoints.py``) take ``ImageRecord``s and (H, W, 3) uint8
arrays; this module builds them from the database rows and the blob store. Images whose
longer side exceeds ``MAX_SIDE`` are shrunk on load (the detector sees at most a few hundred
pixels anyway) and their labels scaled with them; ``LoadedImage.scale`` maps predictions back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from labelwise.core.annotations import Annotation, ImageRecord
from labelwise.core.schema import Skeleton
from labelwise.db.models import AnnotationRow, AssetRow, DatasetRow, LabelClassRow
from labelwise.embeddings.preprocess import decode_image
from labelwise.errors import ImageError, NotFoundError, StorageError
from labelwise.storage import BlobStore, image_key

if TYPE_CHECKING:
    from labelwise.autolabel.training_data import FrozenLabels
    from labelwise.workspace import Workspace

#: Longer image side kept on load; larger images are shrunk (labels scaled to match).
MAX_SIDE = 1024
#: Ids per SQL ``IN (...)`` list: well under SQLite's and PostgreSQL's parameter limits.
ID_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class AssetRef:
    """Where an asset's pixels are: its id, path (for messages), size and blob key."""

    id: int
    path: str
    width: int
    height: int
    blob_key: str


@dataclass(slots=True)
class SchemaClass:
    """An object class of the dataset's schema; ``skeleton`` for keypoint classes."""

    name: str
    tool: str | None
    skeleton: Skeleton | None


@dataclass(slots=True)
class TrainingSet:
    """Labeled images ready for the kernels, in ``asset_ids`` order.

    ``records[i].annotations`` are in the pixels of ``images[i]`` (shrunk by ``scales[i]``).
    """

    dataset: str
    asset_ids: list[int]
    records: list[ImageRecord]
    images: list[np.ndarray]
    scales: list[float]
    classes: dict[str, SchemaClass] = field(default_factory=dict)
    unlabeled: list[int] = field(default_factory=list)  # asset ids left out: no object labels
    export: int | None = None  # the project export the labels come from, if not the dataset

    @property
    def labels_from(self) -> str:
        """Where the labels were read, for messages: the dataset or the export."""
        if self.export is None:
            return f"dataset {self.dataset!r}"
        return f"export {self.export} (dataset {self.dataset!r})"


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield list(ids[start:start + ID_CHUNK])


def asset_refs(ws: Workspace, asset_ids: Sequence[int], *, dataset_id: int | None = None
               ) -> list[AssetRef]:
    """The assets ``asset_ids`` in that order; NotFoundError lists ids that do not exist (or
    are not in ``dataset_id``)."""
    ids = [int(a) for a in asset_ids]
    found: dict[int, AssetRef] = {}
    with ws.session() as s:
        for chunk in _chunks(ids):
            q = select(AssetRow.id, AssetRow.path, AssetRow.width, AssetRow.height,
                       AssetRow.content_hash, AssetRow.format).where(AssetRow.id.in_(chunk))
            if dataset_id is not None:
                q = q.where(AssetRow.dataset_id == dataset_id)
            for aid, path, w, h, chash, fmt in s.execute(q):
                found[aid] = AssetRef(aid, path, w, h, image_key(chash, fmt))
    missing = [a for a in ids if a not in found]
    if missing:
        where = f" in dataset {dataset_id}" if dataset_id is not None else ""
        shown = ", ".join(str(a) for a in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise NotFoundError(
            f"{len(missing)} asset id(s) not found{where}: {shown}; pass ids of the dataset's "
            "assets (`labelwise datasets show`)")
    return [found[a] for a in ids]


def read_image(ws: Workspace, ref: AssetRef) -> tuple[np.ndarray, float]:
    """The asset's pixels as (H, W, 3) uint8, shrunk to ``MAX_SIDE``, and the scale applied.

    Raises ImageError naming the asset when its blob is missing or does not decode.
    """
    return read_pixels(ws.store, ref, max_pixels=ws.settings.max_image_pixels)


def read_pixels(store: BlobStore, ref: AssetRef, *, max_pixels: int
                ) -> tuple[np.ndarray, float]:
    """``read_image`` from a blob store (what a Ray worker has instead of the workspace)."""
    name = f"asset {ref.id} ({ref.path})"
    try:
        data = store.get_bytes(ref.blob_key)
    except (StorageError, OSError) as err:
        raise ImageError(
            f"{name}: the stored image cannot be read ({err}); import the image again or "
            "leave the asset out") from err
    try:
        im = decode_image(data, name=name, max_pixels=max_pixels)
    except ImageError:
        raise
    except Exception as err:
        raise ImageError(
            f"{name}: the stored image does not decode ({type(err).__name__}: {err}); import "
            "a good copy again or leave the asset out") from err
    scale = min(1.0, MAX_SIDE / max(im.size))
    if scale < 1.0:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(im.convert("RGB"), dtype=np.uint8), scale


def schema_classes(ws: Workspace, dataset_id: int) -> tuple[str, dict[str, SchemaClass]]:
    """The dataset's name and its object classes by name."""
    with ws.session() as s:
        ds = s.get(DatasetRow, int(dataset_id))
        if ds is None:
            raise NotFoundError(f"no dataset with id {dataset_id}; pass the id of an existing "
                                "dataset (`labelwise datasets list`)")
        rows = s.scalars(select(LabelClassRow).where(LabelClassRow.schema_id == ds.schema_id,
                                                     LabelClassRow.kind == "object")).all()
        classes = {r.name: SchemaClass(r.name, r.tool,
                                       Skeleton.from_dict(r.skeleton) if r.skeleton else None)
                   for r in rows}
        return ds.name, classes


def load_training_set(ws: Workspace, *, dataset_id: int, asset_ids: Sequence[int],
                      labels: FrozenLabels | None = None) -> TrainingSet:
    """The assets' images and their object annotations (human and model, as stored), or,
    with ``labels``, the objects frozen in a project export (and its classes' skeletons)
    instead: both are in the image's original pixels and scaled alike.

    An asset without any object labeled by a person is taken as not labeled yet (its objects
    would otherwise teach the model they are background) and left out, listed in
    ``unlabeled``; when no asset has one, all are kept, for the caller to refuse.
    """
    name, classes = schema_classes(ws, dataset_id)
    refs = asset_refs(ws, asset_ids, dataset_id=dataset_id)
    if labels is None:
        annotations = _annotations(ws, dataset_id, [r.id for r in refs])
    else:
        annotations = labels.by_asset
        for label, skeleton in labels.skeletons.items():
            classes[label].skeleton = skeleton
    labeled = [r for r in refs if any(a.source == "human" for a in annotations.get(r.id, []))]
    kept = {r.id for r in labeled}
    unlabeled = [r.id for r in refs if r.id not in kept] if labeled else []
    refs = labeled or refs
    records, images, scales = [], [], []
    for ref in refs:
        image, scale = read_image(ws, ref)
        h, w = image.shape[:2]
        anns = [_scaled(a, scale) for a in annotations.get(ref.id, [])]
        records.append(ImageRecord(path=ref.path, width=w, height=h, annotations=anns,
                                   external_id=ref.id, origin=f"asset {ref.id}"))
        images.append(image)
        scales.append(scale)
    return TrainingSet(dataset=name, asset_ids=[r.id for r in refs], records=records,
                       images=images, scales=scales, classes=classes, unlabeled=unlabeled,
                       export=None if labels is None else labels.source.get("export"))


def _annotations(ws: Workspace, dataset_id: int, ids: list[int]) -> dict[int, list[Annotation]]:
    """Object annotations per asset. A pre-label a reviewer accepted as it was counts as a
    person's label (``source="human"``); a pending or edited one stays ``"model"`` (the
    dataset holds the model's guess, the correction lives in the project), so no model
    learns from its own guesses."""
    from labelwise.autolabel.training_data import trusted

    a = AnnotationRow
    out: dict[int, list[Annotation]] = {}
    with ws.session() as s:
        for chunk in _chunks(ids):
            q = (select(a.asset_id, LabelClassRow.name, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h,
                        a.polygons, a.keypoints, a.iscrowd, a.area, trusted(a), a.confidence)
                 .join(LabelClassRow, LabelClassRow.id == a.class_id)
                 .where(a.dataset_id == dataset_id, a.asset_id.in_(chunk),
                        LabelClassRow.kind == "object")
                 .order_by(a.id))
            for aid, label, x, y, w, h, polys, kps, crowd, area, ok, conf in s.execute(q):
                out.setdefault(aid, []).append(Annotation(
                    label=label, bbox=None if x is None else (x, y, w, h), polygons=polys,
                    keypoints=kps, iscrowd=bool(crowd), area=area,
                    source="human" if ok else "model", confidence=conf))
    return out


def _scaled(a: Annotation, s: float) -> Annotation:
    """``a`` in the pixels of its image shrunk by ``s`` (keypoint visibility unchanged)."""
    if s == 1.0:
        return a
    kps: list[Any] | None = None
    if a.keypoints is not None:
        kps = [v * s if i % 3 != 2 else v for i, v in enumerate(a.keypoints)]
    return Annotation(
        label=a.label, bbox=None if a.bbox is None else tuple(v * s for v in a.bbox),
        polygons=None if a.polygons is None else [[v * s for v in p] for p in a.polygons],
        keypoints=kps, iscrowd=a.iscrowd, area=None if a.area is None else a.area * s * s,
        source=a.source, confidence=a.confidence)
