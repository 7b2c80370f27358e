"""A workspace: the database, the blob store and the settings, opened together.

``init(path)`` creates one; ``open_workspace(path)`` opens it and brings the database schema up
to date. The methods here are the Python API; the CLI and the web server call the same ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from labelwise.config import DATABASE_FILE, Settings
from labelwise.db import migrate
from labelwise.db.engine import make_engine, make_sessionmaker
from labelwise.errors import ConfigError, WorkspaceError
from labelwise.storage import BlobStore, open_store

MARKER = "labelwise.json"


class Workspace:
    """An open workspace. Use as a context manager, or call ``close()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.workspace.resolve()
        self.engine: Engine = make_engine(settings.resolved_database_url)
        migrate.upgrade(self.engine)
        self._sessions = make_sessionmaker(self.engine)

    # -- plumbing -----------------------------------------------------------------------------
    @cached_property
    def store(self) -> BlobStore:
        return open_store(self.settings.resolved_storage_url)

    @contextmanager
    def session(self, *, pinned: bool = False) -> Iterator[Session]:
        """A database session. ``pinned``: it keeps one pooled connection for its whole life,
        however many transactions it runs (a web request: one checkout, not one per
        transaction)."""
        if not pinned:
            with self._sessions() as s:
                yield s
            return
        with self._sessions.kw["bind"].connect() as conn, self._sessions(bind=conn) as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        url = make_url(self.settings.resolved_database_url).render_as_string(hide_password=True)
        return f"Workspace({str(self.path)!r}, database={url!r})"

    # -- datasets -----------------------------------------------------------------------------
    def import_dataset(self, fmt: str, source: str | Path, **options: Any):
        """Import a dataset file or folder; see ``labelwise.io.formats`` for formats/options."""
        from labelwise.io.service import import_dataset

        return import_dataset(self, fmt, source, **options)

    def export_dataset(self, dataset: str, fmt: str, dest: str | Path, **options: Any):
        """Export a dataset (or one split) to ``dest`` in ``fmt``."""
        from labelwise.io.service import export_dataset

        return export_dataset(self, dataset, fmt, dest, **options)

    def datasets(self) -> list[dict[str, Any]]:
        from labelwise.db import queries

        with self.session() as s:
            return queries.list_datasets(s)

    def dataset_summary(self, dataset: str) -> dict[str, Any]:
        from labelwise.db import queries

        with self.session() as s:
            return queries.dataset_summary(s, queries.get_dataset(s, dataset))

    def create_split(self, dataset: str, name: str, **how: Any) -> dict[str, Any]:
        """Create split ``name`` from one of ``fraction=`` (with ``seed=``), ``tag=``, ``paths=``."""
        from labelwise.db import queries
        from labelwise.db.splits import split_from

        with self.session() as s, s.begin():
            row, n, desc = split_from(s, queries.get_dataset(s, dataset), name, **how)
            return {"id": row.id, "name": row.name, "num_assets": n, "how": desc}

    def add_class(
        self,
        dataset: str,
        name: str,
        *,
        kind: str = "object",
        tool: str | None = "bbox",
        skeleton: str | None = None,
        color: str | None = None,
    ) -> dict[str, Any]:
        """Add a class to a dataset's schema; ``skeleton`` names a template for keypoints."""
        from labelwise.core.schema import LabelClass, skeleton_template
        from labelwise.db import queries
        from labelwise.db.schemas import add_class
        from labelwise.errors import ValidationError

        try:
            sk = skeleton_template(skeleton) if skeleton else None
            cls = LabelClass(name, kind, tool if kind == "object" else None, color=color,
                             skeleton=sk)
        except (KeyError, ValueError) as err:
            raise ValidationError(str(err).strip('"')) from err
        with self.session() as s, s.begin():
            return queries.class_public(add_class(s, queries.get_dataset(s, dataset), cls))

    def list_assets(self, dataset: str, **options: Any) -> dict[str, Any]:
        """One page of assets: ``{"items": [...], "next_cursor": str | None}``."""
        from labelwise.db import queries

        with self.session() as s:
            return queries.list_assets(s, queries.get_dataset(s, dataset).id, **options)

    # -- embeddings ---------------------------------------------------------------------------
    def embed(self, dataset: str, **options: Any):
        """Compute and cache a dataset's embeddings; see ``labelwise.embeddings.embed_dataset``.

        Options: ``model=``, ``size=``, ``engine=`` (local|ray), ``batch_size=``, ``objects=``,
        ``split=``, ``ray_address=``, ``progress=``. Returns an ``EmbedReport``.
        """
        from labelwise.embeddings.pipeline import embed_dataset

        return embed_dataset(self, dataset, **options)

    def register_model(self, name: str, path: str | Path, **options: Any):
        """Add a custom ONNX embedding model; see ``labelwise.embeddings.register_onnx_model``.

        Options: ``input_size=``, ``mean=``, ``std=``, ``output=``, ``scale=``, ``replace=``.
        """
        from labelwise.embeddings.backbones import register_onnx_model

        return register_onnx_model(self, name, path, **options)

    def similar(self, asset_id: int, **options: Any) -> list[dict[str, Any]]:
        """The images most like an asset, nearest first: ``[{"distance", "asset"}, ...]``.

        Options: ``k=`` (10), ``model=``, ``size=``; see ``labelwise.embeddings.search``.
        """
        from labelwise.embeddings.search import similar_to_asset

        return similar_to_asset(self, asset_id, **options)

    def similar_to_image(self, dataset: str, image: bytes, **options: Any) -> list[dict[str, Any]]:
        """The images of ``dataset`` most like an image given as bytes; options as ``similar``."""
        from labelwise.embeddings.search import similar_to_image

        return similar_to_image(self, dataset, image, **options)

    def near_duplicates(self, dataset: str, **options: Any):
        """Groups of near-identical images (a ``DuplicateReport``).

        Options: ``threshold=`` (cosine distance), ``verify=`` (pixel check, default on), ``min_ncc=``, ``model=``, ``size=``.
        """
        from labelwise.embeddings.search import near_duplicates

        return near_duplicates(self, dataset, **options)

    def embedding_map(self, dataset: str, *, recompute: bool = False, **options: Any):
        """The dataset's stored 2-D map (an ``EmbeddingMap``), made first if there is none.

        ``recompute=True`` makes it anew; options: ``model=``, ``size=``, and with
        ``recompute`` also ``method=`` (umap|pca) and ``seed=``.
        """
        from labelwise.embeddings.search import compute_map, get_or_compute_map

        if recompute:
            return compute_map(self, dataset, **options)
        return get_or_compute_map(self, dataset, **options)

    # -- Auto-Curate (``labelwise curate ...``) ---------------------------------------------
    def curate(self, dataset: str, *, budget: str | int, name: str, **options: Any):
        """Choose ``budget`` images ("25%" or a count) as split ``name``: a ``Selection``.

        Options: ``mode=`` (auto|unlabeled|labeled|objects), ``seed=``, ``from_split=``,
        ``replace=``, ``verify=``, ``model=``, ``size=``; see ``labelwise.curate.service``.
        """
        from labelwise.curate.service import select_split

        return select_split(self, dataset, budget=budget, name=name, **options)

    def curate_validation(self, dataset: str, *, size: int, **options: Any):
        """A clean validation split of ``size`` images (a ``Selection``).

        Options: ``name=`` ("val"), ``exclude=`` (the training split), ``seed=``, ``replace=``.
        """
        from labelwise.curate.service import validation_set

        return validation_set(self, dataset, size=size, **options)

    def curation_scores(self, dataset: str, *, compute: bool = False, **options: Any):
        """Stored Auto-Curate scores: with ``compute=True`` score the dataset anew (options
        ``objects=``, ``seed=``, ``verify=``, ``model=``, ``size=``; returns a ``ScoreRun``),
        else one page of the stored ones (options of ``service.list_scores``)."""
        from labelwise.curate.service import compute_scores, list_scores

        if compute:
            return compute_scores(self, dataset, **options)
        return list_scores(self, dataset, **options)

    def mislabels(self, dataset: str, **options: Any) -> list[dict[str, Any]]:
        """Labeled items most likely mislabeled first. Options: ``top=``, ``objects=``,
        ``min_score=``, ``recompute=``; ``mark_for_review(items)`` flags them."""
        from labelwise.curate.service import mislabels

        return mislabels(self, dataset, **options)

    def mark_for_review(self, dataset: str, items: list[dict[str, Any]]) -> int:
        """Flag ``items`` (from ``mislabels``) and tag their images ``needs-review``."""
        from labelwise.curate.service import mark_for_review

        return mark_for_review(self, dataset, items)

    # -- team: users and API tokens (``labelwise user ...``) -------------------------------
    # Run as the workspace operator, like the CLI: no sign-in; user dicts never hold a hash.
    def add_user(self, username: str, *, role: str, password: str,
                 display_name: str = "") -> dict[str, Any]:
        """Add a user with a workspace role (owner, admin, manager, reviewer, labeler)."""
        from labelwise.workflow import operator

        return operator.add_user(self, username, role=role, password=password,
                                 display_name=display_name)

    def users(self) -> list[dict[str, Any]]:
        """Every user (deactivated ones too), in creation order."""
        from labelwise.workflow import operator

        return operator.users(self)

    def set_role(self, user: int | str, role: str) -> dict[str, Any]:
        """Change a user's workspace role; the last active owner keeps theirs."""
        from labelwise.workflow import operator

        return operator.set_role(self, user, role)

    def deactivate_user(self, user: int | str) -> dict[str, Any]:
        """Stop a user signing in: their sessions end, their tokens stop working."""
        from labelwise.workflow import operator

        return operator.deactivate_user(self, user)

    def activate_user(self, user: int | str) -> dict[str, Any]:
        """Let a deactivated user sign in again."""
        from labelwise.workflow import operator

        return operator.activate_user(self, user)

    def set_password(self, user: int | str, password: str) -> dict[str, Any]:
        """Set a user's password; their web sessions end (API tokens keep working)."""
        from labelwise.workflow import operator

        return operator.set_password(self, user, password)

    def create_token(self, user: int | str, name: str, *,
                     expires_days: int | None = None) -> dict[str, Any]:
        """A new API token for ``user``; ``["token"]`` is the only copy of the secret."""
        from labelwise.workflow import operator

        return operator.create_token(self, user, name, expires_days=expires_days)

    def tokens(self, user: int | str) -> list[dict[str, Any]]:
        """A user's API tokens (names and first characters, never the tokens)."""
        from labelwise.workflow import operator

        return operator.tokens(self, user)

    def revoke_token(self, user: int | str, token_id: int) -> dict[str, Any]:
        """Revoke one of ``user``'s API tokens; requests using it answer 401 from now on."""
        from labelwise.workflow import operator

        return operator.revoke_token(self, user, token_id)

    # -- team: projects (``labelwise project ...``) ----------------------------------------
    # Actions are recorded under ``by`` (username or id), by default the first owner.
    def create_project(self, name: str, dataset: int | str, *, split: str | None = None,
                       description: str = "", import_labels: bool = True,
                       by: int | str | None = None) -> dict[str, Any]:
        """A project on a dataset (or one split): one todo task per image, a copy of the
        schema, the dataset's labels as pre-labels unless ``import_labels=False``."""
        from labelwise.workflow import operator

        return operator.create_project(self, name, dataset, split=split,
                                       description=description, import_labels=import_labels,
                                       by=by)

    def projects(self) -> list[dict[str, Any]]:
        """Every project with its task counts per status."""
        from labelwise.workflow import operator

        return operator.list_projects(self)

    def project_summary(self, project: int | str) -> dict[str, Any]:
        """A project (name or id) with its classes, members and task counts."""
        from labelwise.workflow import operator

        return operator.project_summary(self, project)

    def add_member(self, project: int | str, user: int | str, *, role: str) -> dict[str, Any]:
        """Make ``user`` a manager, reviewer or labeler of the project (or change their role)."""
        from labelwise.workflow import operator

        return operator.add_member(self, project, user, role=role)

    def assign(self, project: int | str, users: list[int | str] | str, *,
               asset_ids: list[int] | None = None, spread: int | None = None,
               role: str = "labeler", by: int | str | None = None) -> dict[str, int]:
        """Assign tasks: ``asset_ids`` to one user, or ``spread=N`` unassigned tasks to each
        user. Returns the number of tasks given, by username."""
        from labelwise.workflow import operator

        return operator.assign(self, project, users, asset_ids=asset_ids, spread=spread,
                               role=role, by=by)

    def project_export(self, project: int | str, fmt: str, dest: str | Path | None = None, *,
                       approved_only: bool = False, copy_images: bool = True,
                       options: dict[str, Any] | None = None,
                       by: int | str | None = None) -> dict[str, Any]:
        """Write the project's labels in ``fmt`` to ``dest`` (None: snapshot only) and keep a
        frozen snapshot; ``options`` go to the writer, e.g. ``{"task": "detect"}`` for yolo."""
        from labelwise.workflow import operator

        return operator.export_project(self, project, fmt, dest, approved_only=approved_only,
                                       copy_images=copy_images, options=options, by=by)

    def project_exports(self, project: int | str) -> list[dict[str, Any]]:
        """The project's export snapshots, oldest first."""
        from labelwise.workflow import operator

        return operator.project_exports(self, project)

    # -- Custom Auto-Label (``labelwise autolabel ...``, ``labelwise review ...``) ------------
    def autolabel_train(self, dataset: str, *, name: str, **options: Any):
        """Train model ``name`` (its next version) on the dataset's labels: a ``TrainResult``.

        Options: ``source_split=`` or ``source_export=`` (a project export id), ``task=``
        (auto|category|multilabel|boxes|keypoints), ``options=`` (``seed``, ``head``, ...),
        ``progress=``; see ``labelwise.autolabel.service.train``.
        """
        from labelwise.autolabel.service import train

        return train(self, dataset, name=name, **options)

    def autolabel_show(self, name: str, version: int | None = None) -> dict[str, Any]:
        """A model's card (of its latest version, or ``version``) and its versions."""
        from labelwise.autolabel.service import show

        return show(self, name, version)

    def autolabel_models(self) -> list[dict[str, Any]]:
        """Every auto-label model with its task, dataset and latest version."""
        from labelwise.autolabel.service import list_models

        return list_models(self)

    def autolabel_apply(self, name: str, dataset: str, **options: Any):
        """Pre-label the dataset's unlabeled images with model ``name``: an ``ApplyResult``.

        Options: ``split=``, ``version=``, ``engine=`` (local|ray), ``ray_address=``,
        ``progress=``.
        """
        from labelwise.autolabel.service import apply

        return apply(self, name, dataset, **options)

    def autolabel_next(self, dataset: str, *, budget: int | str, name: str,
                       **options: Any) -> dict[str, Any]:
        """Pick the next ``budget`` images to label (uncertainty + diversity) as split ``name``.

        Options: ``model=``, ``version=``, ``seed=``, ``replace=``.
        """
        from labelwise.autolabel.service import next_batch

        return next_batch(self, dataset, budget=budget, name=name, **options)

    def autolabel_export(self, name: str, dest: str | Path, *,
                         version: int | None = None) -> Path:
        """Write a model version's ONNX file to ``dest``."""
        from labelwise.autolabel.service import export_onnx

        return export_onnx(self, name, version, dest)

    def review_queue(self, dataset: str, **options: Any) -> dict[str, Any]:
        """A page of pre-labels, most uncertain first. Options: ``run=``, ``model=``,
        ``bucket=``, ``status=``, ``cursor=``, ``limit=``."""
        from labelwise.autolabel.service import review_queue

        return review_queue(self, dataset, **options)

    def review_accept(self, dataset: str, *, bucket: str = "easy",
                      **options: Any) -> dict[str, Any]:
        """Accept a bucket's pending pre-labels; says its expected error rate. Options:
        ``run=``, ``model=``, ``dry_run=``."""
        from labelwise.autolabel.service import accept

        return accept(self, dataset, bucket=bucket, **options)

    def review_reject(self, dataset: str, asset_ids: list[int], **options: Any) -> dict[str, Any]:
        """Reject the pending pre-labels of ``asset_ids`` (their model labels are deleted).
        Options: ``run=``, ``model=``."""
        from labelwise.autolabel.service import reject

        return reject(self, dataset, asset_ids, **options)


def _read_marker(path: Path) -> dict[str, Any]:
    marker = path / MARKER
    if not marker.exists():
        return {}
    try:
        return json.loads(marker.read_text())
    except (json.JSONDecodeError, OSError) as err:
        raise WorkspaceError(f"{marker}: cannot read the workspace file ({err}); fix or delete it")


def open_workspace(path: str | Path | None = None, **overrides: Any) -> Workspace:
    """Open an existing workspace. Settings: arguments, then LABELWISE_* env, then the marker."""
    settings = Settings(**({"workspace": Path(path)} if path is not None else {}), **overrides)
    root = settings.workspace
    marker = _read_marker(root)
    if not marker and not (root / DATABASE_FILE).exists():
        raise WorkspaceError(
            f"no labelwise workspace at {root.resolve()}; create one with `labelwise init {root}` "
            "or point LABELWISE_WORKSPACE at an existing one"
        )
    for key in ("database_url", "storage_url"):
        if getattr(settings, key) is None and marker.get(key):
            setattr(settings, key, marker[key])
    return Workspace(settings)


def init(
    path: str | Path = ".",
    *,
    database_url: str | None = None,
    storage_url: str | None = None,
) -> Workspace:
    """Create (or re-open) a workspace folder with its database and blob store."""
    root = Path(path)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WorkspaceError(f"cannot create workspace folder {root}: {err.strerror}") from err
    settings = Settings(workspace=root, database_url=database_url, storage_url=storage_url)
    marker: dict[str, Any] = {"format": 1}
    for key in ("database_url", "storage_url"):
        value = getattr(settings, key)
        if value is None:
            continue
        if key == "database_url" and make_url(value).password:
            raise ConfigError(
                "a database URL with a password is not written to the workspace file; "
                "set LABELWISE_DATABASE_URL in the environment instead"
            )
        marker[key] = value
    ws = Workspace(settings)
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    ws.store  # noqa: B018 - creates the blob folder
    return ws
