"""Helpers for server tests: a small COCO dataset imported for real, a client, error checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

import labelwise
from labelwise.db.models import AssetRow, DatasetRow, SplitAssetRow, SplitRow
from labelwise.server import create_app
from tests.helpers import make_image, write_json

NUM_IMAGES = 7
NIGHT = {2, 4, 5, 7}  # COCO image ids tagged "night"
VAL = {1, 3, 4}  # COCO image ids put in the "val" split
CATEGORIES = [
    {"id": 1, "name": "cat", "supercategory": "animal"},
    {"id": 2, "name": "dog", "supercategory": "animal"},
]


@dataclass
class Imported:
    """What the test dataset holds, by asset id."""

    dataset_id: int
    name: str
    files: dict[int, Path] = field(default_factory=dict)  # asset id -> original file
    night: set[int] = field(default_factory=set)
    val: set[int] = field(default_factory=set)
    boxes: dict[int, list[tuple[str, list[float]]]] = field(default_factory=dict)


def _coco(folder: Path) -> tuple[Path, dict[str, list[tuple[str, list[float]]]]]:
    """Write NUM_IMAGES images (PNG, one JPEG) and a COCO file with boxes and tags."""
    images, annotations, boxes = [], [], {}
    for i in range(1, NUM_IMAGES + 1):
        name = f"img_{i:02d}.jpg" if i == 3 else f"img_{i:02d}.png"
        size = (240, 160) if i % 2 else (90, 120)
        make_image(folder / "images" / name, size=size, seed=i)
        images.append({"id": i, "file_name": name, "width": size[0], "height": size[1],
                       "tags": ["night"] if i in NIGHT else []})
        boxes[name] = []
        for k in range(i % 3):
            box = [5.0 + k, 6.0 + 2 * k, 20.0, 10.0 + k]
            label = CATEGORIES[k % 2]
            annotations.append({"id": len(annotations) + 1, "image_id": i,
                                "category_id": label["id"], "bbox": box, "area": box[2] * box[3],
                                "iscrowd": 0})
            boxes[name].append((label["name"], box))
    src = write_json(folder / "annotations.json",
                     {"images": images, "annotations": annotations, "categories": CATEGORIES})
    return src, boxes


def import_test_dataset(ws: labelwise.Workspace, folder: Path, *, name: str = "street") -> Imported:
    """Import the test dataset and add a "val" split; returns what it holds by asset id."""
    src, boxes = _coco(folder)
    ws.import_dataset("coco", src, images=folder / "images", dataset=name)
    with ws.session() as s:
        ds = s.scalar(select(DatasetRow).where(DatasetRow.name == name))
        rows = s.scalars(select(AssetRow).where(AssetRow.dataset_id == ds.id))
        assets = {a.path: a.id for a in rows}
        split = SplitRow(dataset_id=ds.id, name="val")
        s.add(split)
        s.flush()
        by_coco_id = {int(p[4:6]): aid for p, aid in assets.items()}
        s.add_all(SplitAssetRow(split_id=split.id, asset_id=by_coco_id[i]) for i in VAL)
        s.commit()
        out = Imported(dataset_id=ds.id, name=name)
    out.files = {aid: folder / "images" / p for p, aid in assets.items()}
    out.night = {by_coco_id[i] for i in NIGHT}
    out.val = {by_coco_id[i] for i in VAL}
    out.boxes = {aid: boxes[p] for p, aid in assets.items()}
    return out


def make_client(ws: labelwise.Workspace) -> TestClient:
    # The server binds 127.0.0.1 by default and then only answers to loopback Host names.
    return TestClient(create_app(ws), base_url="http://localhost")


def assert_error(response, status: int, type_: str, *, contains: str = "") -> dict:
    """The response is the error envelope with this status and type."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"type", "message", "problems"}
    assert err["type"] == type_
    assert contains in err["message"] + " ".join(err["problems"])
    return err
