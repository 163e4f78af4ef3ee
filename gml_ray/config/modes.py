"""Job modes: ways of running a task's jobs that bring config rules of their own.

A task runs the rendered template, or ``task.function``; a mode replaces both (``gml-ray run
--benchmark`` evaluates a MuJoCo policy per config). The package that brings a mode registers it
under the ``gml_ray.modes`` entry-point group (``gml_ray.mujoco`` registers ``mujoco``), and
its jobs' kind under ``gml_ray.job_kinds`` with the same name: the core names no mode.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from typing import Any

from gml_ray.config.search_args import SearchArg
from gml_ray.config.validate import Ctx

ENTRY_POINTS = "gml_ray.modes"


class JobMode(ABC):
    """A mode's config rules. One instance per mode; it holds no state of a task."""

    name: str = ""  # what ``parse_config(mode=...)`` names, and the job kind its jobs run as
    option: str = ""  # how a user asks for it on the command line (``--benchmark``)
    title: str = ""  # what it is, in messages (``the MuJoCo benchmark``)
    scheduler_keys: tuple[str, ...] = ()  # keys of ``scheduler:`` only this mode reads
    searcher_keys: tuple[str, ...] = ()  # keys of ``searcher:`` only this mode reads (not kwargs)

    @abstractmethod
    def parse(self, ctx: Ctx, scheduler: dict[str, Any], args: list[SearchArg],
              searcher: dict[str, Any], notices: list[str]) -> Any:
        """Called by ``parse_config`` once the search args are read: check the config's
        ``scheduler`` and ``searcher`` sections (``searcher`` may be edited: remove the keys
        that are this mode's, not the searcher's kwargs) and return the mode's settings, kept as
        ``TaskConfig.mode_settings``. Raise ``ctx.error(field, message)`` for a mistake."""

    def searcher_kwargs(self, settings: Any, args: list[SearchArg]) -> dict[str, Any]:
        """Settings a searcher gets when its constructor takes them (e.g. ``dims``)."""
        return {}

    def label(self, settings: Any) -> str:
        """What a resumed task must run with again (e.g. the MuJoCo function's name)."""
        return self.name

    def label_of(self, raw: dict[str, Any]) -> str | None:
        """The :meth:`label` a stored raw config ran with in this mode, or None if it did not
        run in this mode (``--resume`` compares them)."""
        return None


_MODES: dict[str, JobMode] = {}
_loaded_all = False


def _load(name: str | None) -> None:
    global _loaded_all
    for ep in entry_points(group=ENTRY_POINTS):
        if (name is None or ep.name == name) and ep.name not in _MODES:
            mode = ep.load()()
            _MODES[mode.name or ep.name] = mode
    if name is None:
        _loaded_all = True


def job_mode(name: str) -> JobMode:
    """The registered mode ``name``; ValueError naming the known ones otherwise."""
    if name not in _MODES:
        _load(name)
    if name not in _MODES:
        raise ValueError(f"unknown job mode {name!r} (known: {', '.join(m.name for m in known_modes()) or 'none'})")
    return _MODES[name]


def known_modes() -> list[JobMode]:
    """Every mode the installed packages register."""
    if not _loaded_all:
        _load(None)
    return list(_MODES.values())
