"""The SQLite store (WAL) under the work dir: tasks, jobs, scalars. The only module that writes SQL.

One writer (the scheduler actor of a run) and any number of readers (``ctl`` commands) work at the
same time. Writers batch their changes in :meth:`Store.transaction`.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import re
import socket
import sqlite3
import threading
import time
from typing import Any, Iterable, Iterator

from .errors import UserError

DB_NAME = "gml.db"
STALE_S = 60.0  # a RUNNING task whose heartbeat is older than this has lost its run

PENDING, RUNNING, FINISHED, ERROR, KILLED, EARLY_STOPPED = (
    "PENDING", "RUNNING", "FINISHED", "ERROR", "KILLED", "EARLY_STOPPED")
JOB_STATUSES = (PENDING, RUNNING, FINISHED, ERROR, KILLED, EARLY_STOPPED)
ACTIVE = (PENDING, RUNNING)

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
    compare TEXT  -- pavi.compare's name (or id): the task's label, as GML showed it
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
    """(value, text, flag) for a reported scalar: NaN, inf and non-numbers are kept but flagged."""
    if type(value) is float and math.isfinite(value):  # the common case, first
        return value, None, FLAG_OK
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)):
        v = float(value)
        if math.isnan(v):
            return None, "nan", FLAG_NAN
        if math.isinf(v):
            return v, None, FLAG_INF
        return v, None, FLAG_OK
    return None, str(value)[:1000], FLAG_TEXT


def run_time(task: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds a task has run over all its attempts: the earlier ones (``--resume``) plus the
    current or last one (to ``now`` while it runs). None if it never started."""
    started = task.get("started") or task.get("created")
    if not started:
        return None
    end = task.get("ended") or (time.time() if now is None else now)
    return (task.get("elapsed_before") or 0.0) + max(0.0, end - started)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class Store:
    """A connection to ``<work_dir>/gml.db``; ``create=False`` refuses a work dir that has none."""

    def __init__(self, work_dir: str, create: bool = True) -> None:
        self.work_dir = os.path.abspath(work_dir)
        self.path = db_path(self.work_dir)
        if not create and not os.path.exists(self.path):
            raise UserError(f"no gml-ray store at {self.path} (run `gml-ray init` or `gml-ray run` "
                            f"first, or pass --workdir)")
        os.makedirs(self.work_dir, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        # The schema is ensured on every open, reading included: a run may have created the file
        # an instant before its tables.
        with self.transaction():
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring a store written by an older gml-ray up to this schema (new columns only)."""
        for table, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", SCHEMA, re.S):
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            for line in body.strip().splitlines():
                col = line.strip().rstrip(",")
                name = col.split()[0]
                if name not in have and name != "PRIMARY":
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {col}")

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def transaction(self, keep_on_error: bool = False) -> Iterator[None]:
        """Group writes into one commit (re-entrant). An error rolls them back, or with
        ``keep_on_error`` commits what was written before it."""
        with self._lock:
            outer = not self._conn.in_transaction
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if outer:
                    self._conn.execute("COMMIT" if keep_on_error else "ROLLBACK")
                raise
            else:
                if outer:
                    self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def unlocked(self) -> Iterator[None]:
        """Inside a transaction: commit what was written, run the block without holding the
        database's write lock (other runs write to the same file), then open a new transaction."""
        with self._lock:
            inside = self._conn.in_transaction
            if inside:
                self._conn.execute("COMMIT")
            try:
                yield
            finally:
                if inside:
                    self._conn.execute("BEGIN IMMEDIATE")

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, tuple(params))

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, tuple(params)).fetchall()]

    # ---- tasks --------------------------------------------------------------------------------

    def create_task(self, name: str, **fields: Any) -> None:
        """Insert a task row (status RUNNING); raises UserError if the name is taken."""
        fields = {"status": RUNNING, "created": time.time(), **fields}
        if "scalar_columns" in fields and not isinstance(fields["scalar_columns"], str):
            fields["scalar_columns"] = _dumps(fields["scalar_columns"])
        cols = ["name", *fields]
        try:
            self._exec(f"INSERT INTO tasks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [name, *fields.values()])
        except sqlite3.IntegrityError:
            raise UserError(f"task {name!r} already exists (pick another --task name, or "
                            f"`gml-ray ctl rm --task {name}`)") from None

    def update_task(self, name: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE tasks SET {sets} WHERE name = ?", [*fields.values(), name])

    def get_task(self, name: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM tasks WHERE name = ?", [name])
        if not rows:
            return None
        row = rows[0]
        row["scalar_columns"] = json.loads(row["scalar_columns"] or "[]")
        return row

    def require_task(self, name: str) -> dict[str, Any]:
        task = self.get_task(name)
        if task is None:
            names = [t["name"] for t in self._query("SELECT name FROM tasks ORDER BY created")]
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else (
                f" (tasks: {', '.join(names[-5:])})" if names else " (there are no tasks yet)")
            raise UserError(f"no task named {name!r} in {self.work_dir}{hint}")
        return task

    def list_tasks(self) -> list[dict[str, Any]]:
        """Every task with its job counts per status and best reward."""
        tasks = self._query("SELECT * FROM tasks ORDER BY created")
        counts = self._query("SELECT task, status, COUNT(*) AS n FROM jobs GROUP BY task, status")
        best = self._query("SELECT task, MAX(reward) AS hi, MIN(reward) AS lo FROM jobs "
                           "WHERE reward IS NOT NULL GROUP BY task")
        by_task: dict[str, dict[str, int]] = {}
        for c in counts:
            by_task.setdefault(c["task"], {})[c["status"]] = c["n"]
        best_by = {b["task"]: b for b in best}
        for t in tasks:
            t["counts"] = by_task.get(t["name"], {})
            b = best_by.get(t["name"])
            t["best_reward"] = None if b is None else (b["hi"] if t["optimize_mode"] != "minimize" else b["lo"])
        return tasks

    def reap_dead_runs(self, stale_s: float = STALE_S) -> list[str]:
        """Mark tasks whose run died (driver killed, head node lost) as ERROR, with their active jobs.

        A run is dead when its driver's pid is gone on this host, or its heartbeat is older than
        ``stale_s``. Returns the names of the tasks it marked.
        """
        now, host, dead = time.time(), socket.gethostname(), []
        for t in self._query("SELECT name, host, pid, heartbeat FROM tasks WHERE status = ?", [RUNNING]):
            gone = now - (t["heartbeat"] or 0) > stale_s
            if not gone and t["host"] == host and t["pid"]:
                try:
                    os.kill(t["pid"], 0)
                except ProcessLookupError:
                    gone = True  # the driver is gone, and Ray ends its actors and jobs with it
                except PermissionError:
                    pass
            if gone:
                with self.transaction():
                    self.mark_active_jobs(t["name"], ERROR, "the run died (no heartbeat)")
                    self._exec("UPDATE tasks SET status = ?, message = ?, ended = ? WHERE name = ?",
                               [ERROR, "the run died (no heartbeat)", t["heartbeat"], t["name"]])
                dead.append(t["name"])
        return dead

    def best_reward(self, task: str, optimize_mode: str = "maximize") -> float | None:
        agg = "MIN" if optimize_mode == "minimize" else "MAX"
        rows = self._query(f"SELECT {agg}(reward) AS r FROM jobs WHERE task = ?", [task])
        return rows[0]["r"] if rows else None

    def heartbeat(self, name: str) -> None:
        self._exec("UPDATE tasks SET heartbeat = ? WHERE name = ?", [time.time(), name])

    def request_stop(self, name: str) -> None:
        self._exec("UPDATE tasks SET stop_requested = 1 WHERE name = ?", [name])

    def stop_requested(self, name: str) -> bool:
        rows = self._query("SELECT stop_requested FROM tasks WHERE name = ?", [name])
        return bool(rows and rows[0]["stop_requested"])

    # ---- jobs -----------------------------------------------------------------------------------

    def add_job(self, task: str, job_id: int, name: str, config: Any, arg_dict: dict,
                command: str | None, job_dir: str, status: str = PENDING, attempt: int = 1,
                started: float | None = None) -> None:
        self._exec("INSERT INTO jobs (task, job_id, name, status, config, arg_dict, command, job_dir,"
                   " created, attempt, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [task, job_id, name, status, _dumps(config), _dumps(arg_dict), command, job_dir,
                    time.time(), attempt, started])

    def update_job(self, task: str, job_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE jobs SET {sets} WHERE task = ? AND job_id = ?",
                   [*fields.values(), task, job_id])

    def jobs(self, task: str, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The task's jobs in launch order (only ``names`` when given), config and arg_dict decoded."""
        rows = self._query("SELECT * FROM jobs WHERE task = ? ORDER BY job_id", [task])
        if names is not None:
            wanted = set(names)
            rows = [r for r in rows if r["name"] in wanted]
        for r in rows:
            r["config"] = json.loads(r["config"]) if r["config"] else None
            r["arg_dict"] = json.loads(r["arg_dict"]) if r["arg_dict"] else {}
        return rows

    def status_counts(self, task: str) -> dict[str, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM jobs WHERE task = ? GROUP BY status", [task])
        return {r["status"]: r["n"] for r in rows}

    def mark_cancelled_as(self, task: str, status: str, since: float, message: str) -> int:
        """Jobs that ended as cancelled (KILLED) since ``since`` get ``status``: a terminal's Ctrl+C
        reaches the job processes too, sometimes before the run's own stop does."""
        cur = self._exec("UPDATE jobs SET status = ?, message = ? WHERE task = ? AND status = ? "
                         "AND message = ? AND ended >= ?",
                         [status, message, task, "KILLED", "cancelled", since])
        return cur.rowcount

    def mark_active_jobs(self, task: str, status: str, message: str) -> int:
        """Set every PENDING/RUNNING job of ``task`` to ``status``; returns how many changed."""
        cur = self._exec("UPDATE jobs SET status = ?, message = ?, ended = COALESCE(ended, ?) "
                         "WHERE task = ? AND status IN (?, ?)",
                         [status, message, time.time(), task, *ACTIVE])
        return cur.rowcount

    # ---- scalars --------------------------------------------------------------------------------

    def add_scalars(self, task: str, rows: Iterable[tuple[int, str, int | None, Any, int | None, int]]) -> None:
        """Insert ``(job_id, tag, step, raw_value, created_ms, attempt)`` rows."""
        self.insert_scalar_rows([(task, job_id, tag, step, *classify(raw), created, attempt)
                                 for job_id, tag, step, raw, created, attempt in rows])

    def insert_scalar_rows(self, rows: Iterable[tuple]) -> None:
        """Insert rows already classified: ``(task, job_id, tag, step, value, text, flag, created_ms,
        attempt)``, with ``(value, text, flag) = classify(raw)`` (the scheduler's hot path)."""
        with self._lock:
            self._conn.executemany("INSERT INTO scalars (task, job_id, tag, step, value, text, flag, "
                                   "created, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def scalars(self, task: str, job_ids: Iterable[int] | None = None,
                tags: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Scalars of a task ordered by job, tag and step (optionally only some jobs and tags)."""
        sql = "SELECT job_id, tag, step, value, text, flag, created, attempt FROM scalars WHERE task = ?"
        params: list[Any] = [task]
        if job_ids is not None:
            ids = list(job_ids)
            sql += f" AND job_id IN ({', '.join('?' * len(ids))})"
            params += ids
        if tags is not None:
            tg = list(tags)
            sql += f" AND tag IN ({', '.join('?' * len(tg))})"
            params += tg
        rows = self._query(sql + " ORDER BY job_id, tag, attempt, step, rowid", params)
        for r in rows:
            if r["flag"] == FLAG_NAN:
                r["value"] = math.nan
        return rows

    def count_scalars(self, task: str) -> int:
        return self._query("SELECT COUNT(*) AS n FROM scalars WHERE task = ?", [task])[0]["n"]

    def latest_scalars(self, task: str, tags: Iterable[str]) -> dict[int, dict[str, Any]]:
        """``{job_id: {tag: latest value}}`` for the given tags (text for non-numeric values).

        Read from the jobs' ``latest`` column, which the scheduler keeps as scalars arrive, so this
        costs nothing however many scalars a task has; jobs written without it fall back to a scan.
        """
        tags = list(tags)
        if not tags:
            return {}
        out: dict[int, dict[str, Any]] = {}
        missing = False
        for r in self._query("SELECT job_id, latest FROM jobs WHERE task = ?", [task]):
            if r["latest"] is None:
                missing = True
                continue
            latest = json.loads(r["latest"])
            out[r["job_id"]] = {t: latest[t] for t in tags if t in latest}
        if not missing:
            return out
        rows = self._query(
            "SELECT s.job_id, s.tag, s.value, s.text, s.flag FROM scalars s JOIN ("
            "  SELECT job_id, tag, MAX(rowid) AS rid FROM scalars WHERE task = ? AND tag IN "
            f"  ({', '.join('?' * len(tags))}) GROUP BY job_id, tag) m ON s.rowid = m.rid",
            [task, *tags])
        for r in rows:
            value = math.nan if r["flag"] == FLAG_NAN else (r["value"] if r["value"] is not None else r["text"])
            out.setdefault(r["job_id"], {})[r["tag"]] = value
        return out

    # ---- whole tasks: delete, export, import -----------------------------------------------------

    TABLES = ("tasks", "jobs", "scalars")

    def delete_task(self, name: str) -> None:
        """Delete a task's rows (tasks, jobs, scalars) in one transaction."""
        with self.transaction():
            self._exec("DELETE FROM scalars WHERE task = ?", [name])
            self._exec("DELETE FROM jobs WHERE task = ?", [name])
            self._exec("DELETE FROM tasks WHERE name = ?", [name])

    def dump_task(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Every row of a task, raw (as stored), by table: what an export holds."""
        key = {"tasks": "name", "jobs": "task", "scalars": "task"}
        return {t: self._query(f"SELECT * FROM {t} WHERE {key[t]} = ? ORDER BY rowid", [name])
                for t in self.TABLES}

    def load_task(self, name: str, rows: dict[str, list[dict[str, Any]]], replace: bool = False) -> None:
        """Insert a dumped task under ``name`` (its rows' task columns are renamed to it)."""
        with self.transaction():
            if replace:
                self.delete_task(name)
            for table in self.TABLES:
                have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
                for row in rows.get(table, []):
                    row = {k: v for k, v in row.items() if k in have}
                    row["name" if table == "tasks" else "task"] = name
                    cols = list(row)
                    self._exec(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                               f"({', '.join('?' * len(cols))})", [row[c] for c in cols])
