"""Helpers for server tests: a small COCO dataset imported for real, users, signed-in clients,
error checks.

    user = make_user(ws, "lena", "labeler")
    client = make_client(ws, user=None)          # anonymous
    csrf = login(client, "lena", PASSWORD)        # now signed in, X-CSRF-Token set
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

import labelwise
from labelwise.db.account_models import UserRow
from labelwise.db.models import AssetRow, DatasetRow, SplitAssetRow, SplitRow
from labelwise.server import create_app
from labelwise.workflow import accounts
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


#: Password of the users the helpers make (unless told otherwise).
PASSWORD = "test-Pa55word"
#: Cheap argon2 parameters for tests (production defaults cost ~0.3 s per hash here).
FAST_HASHING = {"LABELWISE_PASSWORD_MEMORY_KIB": "1024", "LABELWISE_PASSWORD_TIME_COST": "1"}


def make_user(
    ws: labelwise.Workspace, username: str, role: str, *, password: str = PASSWORD
) -> UserRow:
    """A user with this workspace role; an existing one with that name is returned as is."""
    policy = accounts.AuthPolicy.from_settings(ws.settings)
    with ws.session() as s:
        try:
            return accounts.get_user(s, username)
        except labelwise.errors.NotFoundError:
            return accounts.create_user(s, username, password, role=role, policy=policy)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign the client in (it keeps the session cookie); returns the CSRF token, which the
    client now sends as its default X-CSRF-Token header."""
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def make_client(ws: labelwise.Workspace, *, user: str | None = "owner") -> TestClient:
    """A client of the app over ``ws``, signed in as ``user`` (made as an owner when it does
    not exist yet); ``user=None`` for an anonymous client."""
    # The server binds 127.0.0.1 by default and then only answers to loopback Host names.
    client = TestClient(create_app(ws), base_url="http://localhost")
    if user is not None:
        make_user(ws, user, "owner")
        login(client, user)
    return client


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
