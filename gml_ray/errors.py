"""Every exception a user can meet: errors they can fix (one line, exit 2), faults of the
environment (one line, exit 1), and the ends of a command (nothing to do, SIGTERM)."""
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


class EnvironmentFault(Exception):
    """A fault outside the user's input (the store deleted during a run, a resource no node
    offers any more) that ends a command: the CLI prints it as one line and exits 1."""


class NothingToDo(Exception):
    """A command found its work already done (``run --resume`` of a finished task): the CLI
    prints the message and exits 0."""


class Terminated(KeyboardInterrupt):
    """SIGTERM ended the command (a batch scheduler, ``ray job stop``, ``kill``): a run's jobs
    became ERROR ("terminated (SIGTERM)"); the CLI says so in one line and exits 143."""
