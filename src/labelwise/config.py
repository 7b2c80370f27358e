"""One Settings object for the whole system (environment prefix ``LABELWISE_``).

| setting           | env var                      | default                                  |
|-------------------|------------------------------|------------------------------------------|
| workspace         | LABELWISE_WORKSPACE          | current folder                           |
| database_url      | LABELWISE_DATABASE_URL       | sqlite:///<workspace>/labelwise.db       |
| storage_url       | LABELWISE_STORAGE_URL        | <workspace>/blobs                        |
| max_image_pixels  | LABELWISE_MAX_IMAGE_PIXELS   | 178956970 (Pillow's bomb limit)          |
| verify_images     | LABELWISE_VERIFY_IMAGES      | true (decode every image on import)      |
| import_workers    | LABELWISE_IMPORT_WORKERS     | number of cores                          |
| host / port       | LABELWISE_HOST / _PORT       | 127.0.0.1 / 8000                         |
| model_cache       | LABELWISE_MODEL_CACHE        | <workspace>/models                       |
| session_*, login_*, secure_cookies, password_* | sign-in and sessions: docs/security.md |
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from labelwise.errors import ConfigError

DATABASE_FILE = "labelwise.db"
BLOB_FOLDER = "blobs"


class Settings(BaseSettings):
    """Configuration read from arguments, then ``LABELWISE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LABELWISE_", extra="ignore")

    workspace: Path = Field(default_factory=Path.cwd, description="Workspace folder.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is the workspace's SQLite file. "
        "Use postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Where image blobs and artifacts live: a folder or any fsspec URL "
        "(s3://bucket/prefix, memory://...). Default: <workspace>/blobs.",
    )
    max_image_pixels: int = Field(
        default=178_956_970,
        gt=0,
        description="Images with more pixels are refused as decompression bombs.",
    )
    verify_images: bool = Field(
        default=True,
        description="Decode every image fully on import to catch truncated files.",
    )
    import_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        gt=0,
        description="Threads that read and check image files during import.",
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port of the web server.")
    model_cache: Path | None = Field(
        default=None,
        description="Folder for the exported built-in embedding models (ONNX); share one "
        "between workspaces to export once. Default: <workspace>/models.",
    )
    session_hours: int = Field(
        default=168, ge=1, le=24 * 365,
        description="A web session ends this many hours after sign-in, however active.",
    )
    session_idle_hours: int = Field(
        default=24, ge=1, le=24 * 365,
        description="A web session unused for this many hours ends early.",
    )
    login_user_limit: int = Field(
        default=5, ge=1,
        description="Failed sign-ins per username within login_window_minutes before 429.",
    )
    login_address_limit: int = Field(
        default=20, ge=1,
        description="Failed sign-ins per client address within login_window_minutes before 429.",
    )
    login_window_minutes: int = Field(
        default=15, ge=1, le=24 * 60,
        description="The time window failed sign-ins are counted in.",
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="Mark session cookies Secure: true, false, or unset to follow the request "
        "scheme (https -> Secure).",
    )
    password_memory_kib: int = Field(
        default=65536, ge=1024, le=4 * 2**20,
        description="Argon2id memory cost per password hash, in KiB.",
    )
    password_time_cost: int = Field(
        default=3, ge=1, le=50,
        description="Argon2id passes per password hash.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("sqlite", "postgresql")):
            raise ConfigError(
                f"LABELWISE_DATABASE_URL={value.split('@')[-1]!r} is not supported: "
                "use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db"
            )
        if value.startswith("postgresql://"):
            # Plain postgresql:// would pick psycopg2, which we do not ship.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.workspace / DATABASE_FILE).resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.workspace / BLOB_FOLDER).resolve())

    @property
    def resolved_model_cache(self) -> Path:
        return (self.model_cache or self.workspace / "models").resolve()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
