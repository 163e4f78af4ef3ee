"""The words every part of the engine shares: job and task statuses, the optimisation direction.

Each word is a str-valued enum member: it equals its text (``JobStatus.FINISHED == "FINISHED"``),
hashes like it, prints as it, and is stored, sent to JSON and shown as it. So the store, the YAML
files and the messages are unchanged, and a status read back from SQLite (a plain ``str``)
compares equal to the member. ``yaml.safe_dump`` needs the text: pass ``.value``.
"""
from __future__ import annotations

import enum


class Word(str, enum.Enum):
    """A str-valued enum member that behaves as its text (``str()``, f-strings, hashing)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)

    def __hash__(self) -> int:  # Enum hashes the member's name; a word must hash as its text
        return str.__hash__(self)


class JobStatus(Word):
    """A job's status (manual section 2): where it is in its life, or how it ended."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"  # failed, crashed, or cut short by a crashed driver or Ctrl+C
    KILLED = "KILLED"  # `ctl stop`, a time limit, or a stop criterion ending the task
    EARLY_STOPPED = "EARLY_STOPPED"  # the assessor judged it poor
    PAUSED = "PAUSED"  # stopped at a checkpoint it announced; it goes on from there (--resume)

    @property
    def active(self) -> bool:
        """Whether the job has not ended yet (PENDING or RUNNING)."""
        return self in ACTIVE_JOB_STATUSES


ACTIVE_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)


class TaskStatus(Word):
    """A task's status: RUNNING while a driver runs it, then how its last run ended."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"  # the search ran out or a stop criterion ended it
    ERROR = "ERROR"  # its run failed or was lost (crashed driver, Ctrl+C, a lost store)
    KILLED = "KILLED"  # `ctl stop`


class OptimizeMode(Word):
    """Which rewards are better: ``maximize`` (higher) or ``minimize`` (lower).

    Compare rewards through :mod:`gml_ray.optimize`, never with ``>`` and a mode check inline."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    @classmethod
    def parse(cls, value: object) -> OptimizeMode:
        """The mode named by ``value``; ValueError naming both choices for anything else."""
        for mode in cls:
            if value == mode.value:
                return mode
        raise ValueError(f"optimize_mode must be 'maximize' or 'minimize', got {value!r}")
