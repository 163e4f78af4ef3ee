"""What a job is, Ray-free: its spec, its outcome, its name (the CLI and plugins import these).

A :class:`JobSpec` travels to the job's process; an :class:`Outcome` comes back; the scheduler
writes both to the store. Job statuses are :class:`gml_ray.vocab.JobStatus`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

KILL_GRACE_S = 3.0  # SIGTERM first; SIGKILL (or the end of a pool actor) whatever is left after this


def job_name(job_id: int) -> str:
    """``job_0007``: a job's name from its id."""
    return f"job_{job_id:04d}"


@dataclass
class JobSpec:
    """Everything a job's Ray task needs (picklable)."""

    job_id: int = 0
    name: str = "job"
    attempt: int = 1
    command: str | None = None
    function: str | None = None
    values: dict = field(default_factory=dict)  # what a function trial receives
    cwd: str = "."
    job_dir: str = "."
    time_limit: float | None = None
    generate_log: bool = True
    collect_metrics: bool = True
    env: dict = field(default_factory=dict)
    checkpoint_dir: str = ""  # where the job's checkpoints go (GML_CHECKPOINT_DIR)
    restore_from: str | None = None  # the checkpoint it starts from (GML_RESTORE_FROM), if any
    restore_step: int | None = None  # that checkpoint's step



class ScalarRecord(TypedDict, total=False):
    """One reported scalar as it travels (JSON-able, short keys: millions of them cross)."""

    t: str  # tag
    v: object  # value: a number, or text / NaN / inf (stored flagged)
    s: int  # step
    c: int  # created, ms since the epoch


class Outcome(TypedDict, total=False):
    """What a finished job's Ray call returns (and the scheduler reads once)."""

    status: str  # FINISHED, ERROR, KILLED, EARLY_STOPPED
    message: str
    exit_code: int | None
    node: str
    started: float
    ended: float
    sent: int | None  # messages sent to the channel (None: the job died without telling)
    scalars: list[dict]  # ScalarRecords not sent as messages (short jobs, no channel)
    lost: bool  # the job's node or worker died under it: worth running again
