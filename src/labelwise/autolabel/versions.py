"""Named models and their versions: folders under the workspace, rows in the database.

A model ``NAME`` keeps its versions in ``<workspace>/models/autolabel/NAME/vN``; each version
folder is written whole into a temporary folder and renamed into place, and only then gets
its ``autolabel_versions`` row, so neither a reader nor the database ever sees half a model.
Categorization versions are written by ``store.save_classifier``; boxes and keypoints
versions here, around the files the dense trainer writes into ``vN/dense``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelwise.autolabel.store import list_versions
from labelwise.db.autolabel_models import AutolabelModelRow, AutolabelVersionRow
from labelwise.db.models import DatasetRow
from labelwise.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from labelwise.workspace import Workspace

MODELS_DIR = Path("models") / "autolabel"
DENSE_DIR = "dense"
DENSE_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    """A model name doubles as a folder name: letters, digits, '.', '_', '-' (1-100)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"model name {name!r} is not usable: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. --name shoes-v1)"
        )
    return name


def model_root(ws: Workspace, name: str) -> Path:
    return ws.path / MODELS_DIR / check_name(name)


def get_model(s: Session, name: str) -> AutolabelModelRow:
    row = s.scalar(select(AutolabelModelRow).where(AutolabelModelRow.name == name))
    if row is None:
        names = s.scalars(select(AutolabelModelRow.name).order_by(AutolabelModelRow.name)
                          .limit(20)).all()
        raise NotFoundError(
            f"no auto-label model {name!r} (models: {', '.join(names) or 'none'}); train one "
            "with `labelwise autolabel train DATASET --from SPLIT --name NAME`"
        )
    return row


def get_version(s: Session, model: AutolabelModelRow, version: int | None) -> AutolabelVersionRow:
    """Version ``version`` of ``model``, or its latest."""
    q = select(AutolabelVersionRow).where(AutolabelVersionRow.model_id == model.id)
    rows = list(s.scalars(q.order_by(AutolabelVersionRow.version)))
    if not rows:
        raise NotFoundError(f"model {model.name!r} has no trained version; train it again")
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    raise NotFoundError(f"model {model.name!r} has no version {version} (versions: "
                        f"{', '.join(f'v{r.version}' for r in rows)})")


def versions_of(s: Session, model: AutolabelModelRow) -> list[AutolabelVersionRow]:
    return list(s.scalars(select(AutolabelVersionRow).where(
        AutolabelVersionRow.model_id == model.id).order_by(AutolabelVersionRow.version)))


def save_dense_version(root: Path, *, name: str, task: str, train) -> tuple[Path, dict]:
    """Write the next version of a boxes/keypoints model: ``train(folder)`` fills
    ``vN/dense`` and returns the trainer's result; card.json and model.json go beside it.
    Returns (version folder, card dict)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    (tmp / DENSE_DIR).mkdir(parents=True)
    try:
        result = train(tmp / DENSE_DIR)
        card = dict(result.card)
        card.setdefault("task", task)
        card["warnings"] = list(dict.fromkeys([*card.get("warnings", []), *result.warnings]))
        while True:  # another writer may take a number first: try the next one
            version = (list_versions(root) or [0])[-1] + 1
            card.update(name=name, version=version)
            (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
            (tmp / "model.json").write_text(json.dumps(
                {"format": DENSE_FORMAT, "task": task, "version": version,
                 "meta": result.meta}, indent=2) + "\n")
            dest = root / f"v{version}"
            try:
                os.rename(tmp, dest)
                return dest, card
            except OSError:
                if not dest.exists():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_dense_info(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise NotFoundError(f"{folder}: the stored model cannot be read ({err}); retrain it"
                            ) from err


def model_public(s: Session, model: AutolabelModelRow) -> dict[str, Any]:
    versions = versions_of(s, model)
    latest = versions[-1] if versions else None
    card = latest.card if latest is not None else {}
    return {
        "name": model.name, "task": model.task, "dataset_id": model.dataset_id,
        "dataset": s.get(DatasetRow, model.dataset_id).name, "created_at": model.created_at,
        "versions": len(versions), "latest_version": latest.version if latest else None,
        "accuracy": card.get("accuracy"),
    }


def version_public(row: AutolabelVersionRow) -> dict[str, Any]:
    return {"version": row.version, "path": row.path, "trained_on": row.trained_on,
            "created_at": row.created_at}
