"""Errors a user can fix; the CLI prints them as one line and exits 2."""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's config or command line (never shown with a traceback)."""


class ConfigError(UserError):
    """A config mistake, located by file and field path: ``file: task.search_args[1].data: msg``."""

    def __init__(self, message: str, path: str = "", file: str | None = None) -> None:
        super().__init__(message)
        self.message, self.path, self.file = message, path, file

    def __str__(self) -> str:
        prefix = f"{self.file}: " if self.file else ""
        where = f"{self.path}: " if self.path else ""
        return f"{prefix}{where}{self.message}"
