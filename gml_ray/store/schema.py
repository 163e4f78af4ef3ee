"""What the store holds, without SQLite: statuses, scalar flags, the schema, task names,
the classification of reported values. Imported by the CLI, plugins and jobs (no Ray, no SQL)."""
from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import time
from typing import Any

from gml_ray.errors import UserError

DB_NAME = "gml.db"
# The store's schema version, kept in SQLite's ``PRAGMA user_version``. Stores written before
# versioning read 0 and are upgraded by adding the columns they lack (:data:`RENAMED_COLUMNS`
# first). A change to :data:`SCHEMA` bumps this number (tests/store/test_store_upgrade.py holds each
# version's digest); a store with a higher number comes from a newer gml-ray and is refused.
SCHEMA_VERSION = 3  # 2: the checkpoints table; jobs' parent_id, parent_step. 3: objectives, warm_start
# Columns an earlier release named differently: (table, old name, new name, SQL giving the new
# value from the old row). ``elapsed`` (Nov 27-28) was the task's whole run time when it ended;
# ``elapsed_before`` is the time of the attempts before the current one.
RENAMED_COLUMNS = (
    ("tasks", "elapsed", "elapsed_before",
     "MAX(0, COALESCE(elapsed, 0) - COALESCE(MAX(0, COALESCE(ended, heartbeat) - started), 0))"),
)
STALE_S = float(os.environ.get("GML_STALE_S", "60"))  # seen from another host, a RUNNING task whose heartbeat is older has lost its run
HEARTBEAT_S = 2.0  # how often a run's driver writes its heartbeat (a thread of its own)


# Scalar flags: a value that must never be used as a reward is stored with its reason.
FLAG_OK, FLAG_NAN, FLAG_INF, FLAG_TEXT = 0, 1, 2, 3
FLAG_NAMES = {FLAG_OK: "", FLAG_NAN: "nan", FLAG_INF: "inf", FLAG_TEXT: "not a number"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    config_path TEXT,
    config_yaml TEXT,
    code_dir TEXT,
    task_dir TEXT,
    reward_attribute TEXT,
    optimize_mode TEXT,
    scalar_columns TEXT,
    created REAL,
    started REAL,
    ended REAL,
    heartbeat REAL,
    host TEXT,
    pid INTEGER,
    stop_requested INTEGER DEFAULT 0,
    message TEXT,
    elapsed_before REAL DEFAULT 0,  -- run time of the earlier attempts (resume)
    source_dir TEXT,
    compare TEXT,  -- pavi.compare's name (or id): the task's label, as GML showed it
    objectives TEXT,  -- several objectives, constraints: OutcomeSpec.to_json (NULL: reward_attribute alone)
    warm_start TEXT  -- the earlier tasks whose results its searcher was told first (WarmStart.to_json)
);
CREATE TABLE IF NOT EXISTS jobs (
    task TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT,
    arg_dict TEXT,
    command TEXT,
    job_dir TEXT,
    reward REAL,
    created REAL,
    started REAL,
    ended REAL,
    exit_code INTEGER,
    node TEXT,
    message TEXT,
    attempt INTEGER DEFAULT 1,
    latest TEXT,
    parent_id INTEGER,  -- PBT: the job whose checkpoint this one continued from
    parent_step INTEGER,  -- the step of that checkpoint
    rewards TEXT,  -- JSON: each objective's value (tasks with an objectives column)
    violations TEXT,  -- JSON: each constraint's violation (<= 0: it holds)
    feasible INTEGER,  -- 1 when every constraint holds, 0 when not, NULL without constraints
    PRIMARY KEY (task, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(task, status);
CREATE TABLE IF NOT EXISTS scalars (
    task TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    step INTEGER,
    value REAL,
    text TEXT,
    flag INTEGER DEFAULT 0,
    created INTEGER,
    attempt INTEGER DEFAULT 1
);
CREATE INDEX IF NOT EXISTS scalars_by_job ON scalars(task, job_id, tag, step);
CREATE TABLE IF NOT EXISTS checkpoints (  -- the checkpoints jobs announced that still exist
    task TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    attempt INTEGER DEFAULT 1,
    step INTEGER,
    path TEXT NOT NULL,
    bytes INTEGER DEFAULT 0,
    created INTEGER  -- ms since the epoch, when the job announced it
);
CREATE INDEX IF NOT EXISTS checkpoints_by_job ON checkpoints(task, job_id);
"""


TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_task_name(name: str) -> str:
    """A task name is a file name: letters, digits, ``_ . -``, at most 64 characters."""
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name) or ".." in name:
        raise UserError(f"invalid task name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
                        f"starting with a letter or digit")
    return name


def db_path(work_dir: str) -> str:
    return os.path.join(work_dir, DB_NAME)


def classify(value: Any) -> tuple[float | None, str | None, int]:
    """(value, text, flag) for a reported scalar: NaN, inf and non-numbers are kept but flagged.
    An integer too large for a float (``10**400``) is stored as inf of its sign, flagged inf.
    A bool (JSON ``true``) is not a number: text ``True``/``False``, flagged, never a reward."""
    if type(value) is float and math.isfinite(value):  # the common case, first
        return value, None, FLAG_OK
    if isinstance(value, bool):
        return None, str(value), FLAG_TEXT
    if isinstance(value, (int, float)):
        try:
            v = float(value)
        except OverflowError:
            return (math.inf if value > 0 else -math.inf), None, FLAG_INF
        if math.isnan(v):
            return None, "nan", FLAG_NAN
        if math.isinf(v):
            return v, None, FLAG_INF
        return v, None, FLAG_OK
    try:
        text = str(value)[:1000]
    except ValueError:  # an int beyond Python's digit limit inside a container
        text = f"<{type(value).__name__}>"
    return None, text, FLAG_TEXT


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def storable_int(value: Any) -> int | None:
    """``value`` as an integer SQLite can store (a 64-bit one), else None (a bool is not one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, float) and value.is_integer() and INT64_MIN <= value <= INT64_MAX:
        return int(value)
    return None


def run_time(task: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds a task has run over all its attempts: the earlier ones (``--resume``) plus the
    current or last one (to ``now`` while it runs). None if it never started."""
    started = task.get("started") or task.get("created")
    if not started:
        return None
    end = task.get("ended") or (time.time() if now is None else now)
    return (task.get("elapsed_before") or 0.0) + max(0.0, end - started)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def run_alive(task: dict[str, Any], stale_s: float = STALE_S) -> bool:
    """Whether the run of a RUNNING task row (host, pid, heartbeat, started) is alive.

    On the driver's host its process decides: alive while that pid runs a process that started
    before the run did (a reused pid is not the driver), however busy the run is. Elsewhere its
    heartbeat does: alive while it is newer than ``stale_s``."""
    if task.get("host") == socket.gethostname() and task.get("pid"):
        pid = int(task["pid"])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: it exists
        else:
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                        return False  # exited, not yet reaped
        began = _process_start(pid)
        return began is None or not task.get("started") or began <= float(task["started"]) + 1.0
    return time.time() - (task.get("heartbeat") or 0) <= stale_s
