"""Every error labelwise raises on purpose.

Each message says what happened, where (file, record), and what to do next. The CLI prints
them without a traceback and exits with ``exit_code``; the API answers with ``http_status``.
"""

from __future__ import annotations


class LabelwiseError(Exception):
    """Root of all labelwise errors."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.message = message
        self.problems = list(problems or [])
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        lines = [self.message, *(f"  - {p}" for p in shown)]
        if more > 0:
            lines.append(f"  ... and {more} more")
        return "\n".join(lines)


class ConfigError(LabelwiseError):
    """A setting is missing, invalid or unsafe."""

    exit_code = 2


class WorkspaceError(LabelwiseError):
    """The workspace folder or its database cannot be opened."""

    exit_code = 2


class NotFoundError(LabelwiseError):
    """A dataset, split, asset or class that was asked for does not exist."""

    exit_code = 3
    http_status = 404


class ConflictError(LabelwiseError):
    """The request clashes with existing state (a name already taken, a stale version)."""

    exit_code = 4
    http_status = 409


class ValidationError(LabelwiseError):
    """Input values are well-formed but not acceptable (bad geometry, unknown class)."""

    exit_code = 65  # EX_DATAERR
    http_status = 422


class FormatError(ValidationError):
    """A file cannot be parsed: malformed JSON, XML, YAML, CSV or an unknown layout."""


class ImageError(ValidationError):
    """An image file is corrupt, truncated, not an image, or too large to decode safely."""


class UnsafePathError(ValidationError):
    """A path points outside the folder it must stay in (../, absolute, symlink out)."""


class ImportValidationError(ValidationError):
    """An import found problems; nothing was written. ``problems`` lists each one."""


class StorageError(LabelwiseError):
    """The blob store cannot read or write."""

    exit_code = 74  # EX_IOERR
    http_status = 500


class AuthenticationError(LabelwiseError):
    """No valid credentials: not signed in, a wrong password, an expired or revoked token."""

    exit_code = 77  # EX_NOPERM
    http_status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="labelwise"'}


class PermissionDeniedError(LabelwiseError):
    """Signed in, but the role does not allow this (or the CSRF token is missing)."""

    exit_code = 77  # EX_NOPERM
    http_status = 403


class TooManyRequestsError(LabelwiseError):
    """Too many failed attempts in a short time; retry after ``retry_after`` seconds."""

    exit_code = 75  # EX_TEMPFAIL
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}
        super().__init__(message)
