"""The SQLite store (WAL) under the work dir: tasks, jobs, scalars. The only module that writes SQL.

One writer (the scheduler actor of a run) and any number of readers (``ctl`` commands) work at the
same time. Writers batch their changes in :meth:`Store.transaction`.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import sqlite3
import time
from typing import Any, Iterable

from gml_ray.errors import UserError
from gml_ray.optimize import sign
from gml_ray.store.backlog import Write, is_write_failure
from gml_ray.store.db import Database

# The statuses, flags and helpers live in store_schema (no SQLite); re-exported for callers.
from gml_ray.store.schema import (
    FLAG_NAN,
    STALE_S,
    classify,
    run_alive,
    storable_int,
)
from gml_ray.vocab import ACTIVE_JOB_STATUSES, JobStatus, OptimizeMode, TaskStatus

log = logging.getLogger(__name__)


def _short(value: Any) -> str:
    """A short text for a value that may be a huge integer."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"~{'-' if value < 0 else ''}1e+{int(value.bit_length() * 0.30103)}"
    return repr(value)[:60]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _loads_all(texts: list[str | None]) -> list[Any]:
    """``json.loads`` of each text (None for an empty one), parsed as one JSON array: one call of
    the C parser instead of one per row, which a view of 100,000 jobs notices."""
    present = [t for t in texts if t]
    try:
        parsed = iter(json.loads("[" + ",".join(present) + "]"))
    except ValueError:  # a damaged value: each on its own, so the error names no other row
        parsed = iter([json.loads(t) for t in present])
    return [next(parsed) if t else None for t in texts]


def _decode_jobs(rows: list[dict[str, Any]], columns: Iterable[str] | None) -> list[dict[str, Any]]:
    """Job rows with their JSON columns (those read) decoded."""
    for c in ("config", "arg_dict", "rewards", "violations"):
        if columns is None or c in columns:
            empty: Any = {} if c == "arg_dict" else None
            for r, value in zip(rows, _loads_all([r[c] for r in rows])):
                r[c] = empty if value is None else value
    return rows


class Store(Database):
    """A connection to ``<work_dir>/gml.db``; ``create=False`` refuses a work dir that has none.

    ``read_only=True`` opens an existing store for reading only (a read-only work dir or file
    system): no schema changes, no writes; if SQLite cannot even create its WAL index there, the
    file is read as immutable (what the last run checkpointed into it)."""

    # ---- tasks --------------------------------------------------------------------------------

    def create_task(self, name: str, **fields: Any) -> None:
        """Insert a task row (status RUNNING); raises UserError if the name is taken."""
        fields = {"status": JobStatus.RUNNING, "created": time.time(), **fields}
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
        """Every task with its job counts per status, best reward and checkpoint bytes."""
        tasks = self._query("SELECT * FROM tasks ORDER BY created")
        counts = self._query("SELECT task, status, COUNT(*) AS n FROM jobs GROUP BY task, status")
        best = self._query("SELECT task, MAX(reward) AS hi, MIN(reward) AS lo FROM jobs "
                           "WHERE reward IS NOT NULL AND status != ? GROUP BY task", [JobStatus.ERROR])
        by_task: dict[str, dict[str, int]] = {}
        for c in counts:
            by_task.setdefault(c["task"], {})[c["status"]] = c["n"]
        best_by = {b["task"]: b for b in best}
        try:
            kept = {r["task"]: r["n"] for r in self._query(
                "SELECT task, SUM(bytes) AS n FROM checkpoints GROUP BY task")}
        except sqlite3.OperationalError:  # a read-only store of an earlier schema: none recorded
            kept = {}
        for t in tasks:
            t["counts"] = by_task.get(t["name"], {})
            t["checkpoint_bytes"] = int(kept.get(t["name"]) or 0)
            b = best_by.get(t["name"])
            t["best_reward"] = None if b is None else (b["hi"] if sign(t["optimize_mode"]) > 0 else b["lo"])
        return tasks

    def reap_dead_runs(self, stale_s: float = STALE_S) -> list[str]:
        """Mark tasks whose run died (driver killed, head node lost) as ERROR, with their active jobs.

        A run is alive while its driver process is (checked by pid on the driver's host), and,
        seen from another host, while its heartbeat (written every :data:`HEARTBEAT_S` by a
        thread of the driver, whatever its loop is doing) is newer than ``stale_s``. Returns the
        names of the tasks it marked.
        """
        dead: list[str] = []
        if self.read_only:
            return dead
        for t in self._query("SELECT name, host, pid, heartbeat, started FROM tasks WHERE status = ?",
                             [TaskStatus.RUNNING]):
            if run_alive(t, stale_s):
                continue
            try:
                if self._reap(t["name"], stale_s):
                    dead.append(t["name"])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                # A writer holds the store (a run whose searcher thinks inside a round, say):
                # it is alive, and it writes a fresh heartbeat when it lets go. Look next time.
        return dead

    def _reap(self, name: str, stale_s: float) -> bool:
        with self.transaction(wait_s=1.0):
            # Checked again under the write lock: a resume may have claimed it meanwhile, or
            # the commit that let the lock go carried a fresh heartbeat.
            rows = self._query("SELECT name, host, pid, heartbeat, started, status FROM tasks "
                               "WHERE name = ?", [name])
            if not rows or rows[0]["status"] != JobStatus.RUNNING or run_alive(rows[0], stale_s):
                return False
            beat = rows[0]["heartbeat"]
            # they ended with the run, at its last heartbeat, not when this noticed it
            self.mark_active_jobs(name, JobStatus.ERROR, "the run died (no heartbeat)", ended=beat)
            self._exec("UPDATE tasks SET status = ?, message = ?, ended = ? WHERE name = ?",
                       [JobStatus.ERROR, "the run died (no heartbeat)", beat, name])
        return True

    def best_reward(self, task: str, optimize_mode: str = OptimizeMode.MAXIMIZE) -> float | None:
        agg = "MAX" if sign(optimize_mode) > 0 else "MIN"
        # an ERROR job's reward is no result (--resume runs it again): optimize.has_result's rule
        rows = self._query(f"SELECT {agg}(reward) AS r FROM jobs WHERE task = ? AND status != ? "
                           "AND (feasible IS NULL OR feasible != 0)",
                           [task, JobStatus.ERROR])
        return rows[0]["r"] if rows else None

    def heartbeat(self, name: str) -> bool:
        """Record that the task's run is alive; False if the store has no such task (any more)."""
        return self._exec("UPDATE tasks SET heartbeat = ? WHERE name = ?",
                          [time.time(), name]).rowcount > 0

    def request_stop(self, name: str) -> None:
        self._exec("UPDATE tasks SET stop_requested = 1 WHERE name = ?", [name])

    def stop_requested(self, name: str) -> bool:
        rows = self._query("SELECT stop_requested FROM tasks WHERE name = ?", [name])
        return bool(rows and rows[0]["stop_requested"])

    # ---- jobs -----------------------------------------------------------------------------------

    def add_job(self, task: str, job_id: int, name: str, config: Any, arg_dict: dict,
                command: str | None, job_dir: str, status: str = JobStatus.PENDING, attempt: int = 1,
                started: float | None = None) -> None:
        self._exec("INSERT INTO jobs (task, job_id, name, status, config, arg_dict, command, job_dir,"
                   " created, attempt, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [task, job_id, name, status, _dumps(config), _dumps(arg_dict), command, job_dir,
                    time.time(), attempt, started])

    def update_job(self, task: str, job_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE jobs SET {sets} WHERE task = ? AND job_id = ?",
                   [*fields.values(), task, job_id])

    def jobs(self, task: str, names: Iterable[str] | None = None,
             columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The task's jobs in launch order (only ``names`` when given), config and arg_dict
        decoded; ``columns`` reads only those (job_id and name always), which a view of 100,000
        jobs needs to be quick."""
        cols = "*" if columns is None else ", ".join(dict.fromkeys(["job_id", "name", *columns]))
        sql, params = f"SELECT {cols} FROM jobs WHERE task = ?", [task]
        wanted = None if names is None else list(dict.fromkeys(names))
        if wanted is not None and len(wanted) <= 500:  # SQLite caps the number of parameters
            sql += f" AND name IN ({', '.join('?' * len(wanted))})"
            params += wanted
        rows = self._query(sql + " ORDER BY job_id", params)
        if wanted is not None and len(wanted) > 500:
            keep = set(wanted)
            rows = [r for r in rows if r["name"] in keep]
        return _decode_jobs(rows, columns)

    def jobs_since(self, task: str, after_id: int, job_ids: Iterable[int] = ()) -> list[dict[str, Any]]:
        """The rows of the task's jobs that a live view must read again: those launched after job
        ``after_id``, the active ones (PENDING, RUNNING) and ``job_ids`` (active when last read)."""
        ids = list(job_ids)[:500]  # SQLite caps the number of parameters
        active = list(ACTIVE_JOB_STATUSES)
        sql = (f"SELECT * FROM jobs WHERE task = ? AND (job_id > ? OR status IN ({', '.join('?' * len(active))})"
               + (f" OR job_id IN ({', '.join('?' * len(ids))})" if ids else "") + ") ORDER BY job_id")
        return _decode_jobs(self._query(sql, [task, after_id, *active, *ids]), None)

    def scalars_since(self, task: str, after_rowid: int, tags: Iterable[str],
                      limit: int = 50_000) -> list[dict[str, Any]]:
        """Up to ``limit`` scalars of ``tags`` written after row ``after_rowid``, in write order,
        each with its ``rowid`` (what a live view asks for next)."""
        tg = list(tags)
        if not tg:
            return []
        rows = self._query(
            # +task, +tag: walk the rowid range, not the (task, ...) index, which holds every row of the task
            "SELECT rowid, job_id, tag, step, value, text, flag, attempt FROM scalars WHERE rowid > ? "
            f"AND +task = ? AND +tag IN ({', '.join('?' * len(tg))}) ORDER BY rowid LIMIT ?",
            [after_rowid, task, *tg, limit])
        for r in rows:
            if r["flag"] == FLAG_NAN:
                r["value"] = math.nan
        return rows

    def last_scalar_rowid(self) -> int:
        """The newest scalar row's id (0 when there is none): where a live view starts reading."""
        return self._query("SELECT MAX(rowid) AS n FROM scalars")[0]["n"] or 0

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection has committed since
        this one last asked (a cheap "anything new?")."""
        return self._query("PRAGMA data_version")[0]["data_version"]

    def status_counts(self, task: str) -> dict[str, int]:
        rows = self._query("SELECT status, COUNT(*) AS n FROM jobs WHERE task = ? GROUP BY status", [task])
        return {r["status"]: r["n"] for r in rows}

    def mark_cancelled_as(self, task: str, status: str, since: float, message: str) -> int:
        """Jobs that ended as cancelled (KILLED) since ``since`` get ``status``: a terminal's Ctrl+C
        reaches the job processes too, sometimes before the run's own stop does."""
        cur = self._exec("UPDATE jobs SET status = ?, message = ? WHERE task = ? AND status = ? "
                         "AND message = ? AND ended >= ?",
                         [status, message, task, JobStatus.KILLED, "cancelled", since])
        return cur.rowcount

    def mark_active_jobs(self, task: str, status: str, message: str,
                         ended: float | None = None) -> int:
        """Set every PENDING/RUNNING job of ``task`` to ``status``; returns how many changed.
        A job without an end time gets ``ended`` (default now), but never one before its start."""
        end = time.time() if ended is None else ended
        cur = self._exec("UPDATE jobs SET status = ?, message = ?, "
                         "ended = COALESCE(ended, MAX(COALESCE(started, ?), ?)) "
                         "WHERE task = ? AND status IN (?, ?)",
                         [status, message, end, end, task, *ACTIVE_JOB_STATUSES])
        return cur.rowcount

    # ---- scalars --------------------------------------------------------------------------------

    def add_scalars(self, task: str, rows: Iterable[tuple[int, str, int | None, Any, int | None, int]]) -> None:
        """Insert ``(job_id, tag, step, raw_value, created_ms, attempt)`` rows."""
        self.insert_scalar_rows([(task, job_id, tag, step, *classify(raw), created, attempt)
                                 for job_id, tag, step, raw, created, attempt in rows])

    def insert_scalar_rows(self, rows: Iterable[tuple]) -> None:
        """Insert rows already classified: ``(task, job_id, tag, step, value, text, flag, created_ms,
        attempt)``, with ``(value, text, flag) = classify(raw)`` (the scheduler's hot path).

        A row SQLite cannot store as it is (a step of 10**30, a tag or step that is a list) never
        fails the batch: its step (or ``created``) becomes NULL and its tag text, and one warning
        per job and tag goes to the log."""
        rows = rows if isinstance(rows, list) else list(rows)
        sql = ("INSERT INTO scalars (task, job_id, tag, step, value, text, flag, created, attempt) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        with self._lock:
            if not self.defer_failed_writes:
                self._insert_rows(sql, rows)
                return
            write: Write = (sql, rows, True)
            if self.backlog.failing:
                self.backlog.pending.append(write)
                return
            try:
                self._insert_rows(sql, rows)
            except sqlite3.OperationalError as exc:
                if not is_write_failure(exc):
                    raise
                self._lose_transaction(exc, write)
                return
            if self._conn.in_transaction:
                self.backlog.journal.append(write)

    def _insert_rows(self, sql: str, rows: list[tuple]) -> None:
        with self._lock:
            self._conn.execute("SAVEPOINT scalar_rows")
            try:
                try:
                    self._conn.executemany(sql, rows)
                except (OverflowError, sqlite3.InterfaceError, sqlite3.ProgrammingError, TypeError,
                        ValueError):
                    # A row could not be bound: undo the rows bound before it, then store them all
                    # with the unstorable fields made storable.
                    self._conn.execute("ROLLBACK TO scalar_rows")
                    self._conn.executemany(sql, [self._storable_row(r) for r in rows])
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # none of the batch, then the error
                    self._conn.execute("ROLLBACK TO scalar_rows")
                    self._conn.execute("RELEASE scalar_rows")
                raise
            self._conn.execute("RELEASE scalar_rows")

    def _storable_row(self, row: tuple) -> tuple:
        task, job_id, tag, step, value, text, flag, created, attempt = row
        fixed = []
        if not isinstance(tag, str):
            tag = classify(tag)[1] if not isinstance(tag, (int, float)) else str(tag)
            fixed.append("its tag is not text (stored as text)")
        if step is not None and (storable_int(step) is None and not isinstance(step, str)):
            fixed.append(f"its step {_short(step)} does not fit SQLite (stored without a step)")
            step = None
        if created is not None and storable_int(created) is None:
            created = None
        if not isinstance(value, (float, type(None))) and not isinstance(value, int):
            value, text, flag = classify(value)
        if text is not None and not isinstance(text, str):
            text = classify(text)[1]
        if fixed:
            key = (task, job_id, tag)
            if key not in self._warned:
                self._warned.add(key)
                log.warning("job %s of %s: scalar %r: %s (warned once per job and tag)",
                            job_id, task, tag, "; ".join(fixed))
        return task, job_id, tag, step, value, text, flag, created, attempt

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

    def latest_scalars(self, task: str, tags: Iterable[str],
                       jobs: list[dict[str, Any]] | None = None) -> dict[int, dict[str, Any]]:
        """``{job_id: {tag: latest value}}`` for the given tags (text for non-numeric values).

        Read from the jobs' ``latest`` column, which the scheduler keeps as scalars arrive, so this
        costs nothing however many scalars a task has; jobs written without it fall back to a scan.
        ``jobs``: rows of :meth:`jobs` read with the ``latest`` column (saves reading them again).
        """
        tags = list(tags)
        if not tags:
            return {}
        out: dict[int, dict[str, Any]] = {}
        missing = False
        if jobs is None or any("latest" not in j for j in jobs):
            jobs = self._query("SELECT job_id, latest FROM jobs WHERE task = ?", [task])
        for r, latest in zip(jobs, _loads_all([r["latest"] for r in jobs])):
            if latest is None:
                missing = True
                continue
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

    def carry_scalars(self, task: str, job_id: int, from_attempt: int, to_attempt: int, up_to_step: int) -> int:
        """A job restarted from its checkpoint at ``up_to_step``: its earlier attempt's scalars up
        to that step become the new attempt's, so its curve goes on from there (what the earlier
        attempt reported after the checkpoint stays that attempt's). Returns how many moved."""
        cur = self._exec("UPDATE scalars SET attempt = ? WHERE task = ? AND job_id = ? AND attempt = ? "
                         "AND step IS NOT NULL AND step <= ?",
                         [to_attempt, task, job_id, from_attempt, up_to_step])
        return int(cur.rowcount)

    def copy_scalars(self, task: str, from_job: int, to_job: int, up_to_step: int) -> int:
        """A PBT job continues another's line from its checkpoint at ``up_to_step``: that job's
        scalars up to the step (of its latest attempt) are copied as the new job's first attempt's,
        so its curve is the whole line. Returns how many were copied."""
        cur = self._exec(
            "INSERT INTO scalars (task, job_id, tag, step, value, text, flag, created, attempt) "
            "SELECT task, ?, tag, step, value, text, flag, created, 1 FROM scalars WHERE task = ? AND job_id = ? "
            "AND step IS NOT NULL AND step <= ? AND attempt = (SELECT MAX(attempt) FROM scalars "
            "WHERE task = ? AND job_id = ?) ORDER BY rowid",
            [to_job, task, from_job, up_to_step, task, from_job])
        return int(cur.rowcount)

    # ---- checkpoints ----------------------------------------------------------------------------

    def add_checkpoint(self, task: str, job_id: int, attempt: int, step: int, path: str, size: int,
                       created: int) -> None:
        """Record a checkpoint a job announced (one of the same path is replaced)."""
        self._exec("DELETE FROM checkpoints WHERE task = ? AND job_id = ? AND path = ?", [task, job_id, path])
        self._exec("INSERT INTO checkpoints (task, job_id, attempt, step, path, bytes, created) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", [task, job_id, attempt, step, path, size, created])

    def checkpoints(self, task: str, job_id: int | None = None) -> list[dict[str, Any]]:
        """A task's recorded checkpoints (one job's when given), by job and step (the newest last;
        a job's steps only grow, whatever order its announcements arrived in)."""
        sql = "SELECT job_id, attempt, step, path, bytes, created FROM checkpoints WHERE task = ?"
        params: list[Any] = [task]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        return self._query(sql + " ORDER BY job_id, step, rowid", params)

    def remove_checkpoint(self, task: str, job_id: int, path: str) -> None:
        self._exec("DELETE FROM checkpoints WHERE task = ? AND job_id = ? AND path = ?", [task, job_id, path])

    def checkpoint_bytes(self, task: str) -> int:
        """Bytes of the checkpoints a task keeps."""
        return int(self._query("SELECT COALESCE(SUM(bytes), 0) AS n FROM checkpoints WHERE task = ?",
                               [task])[0]["n"])

    # ---- whole tasks: delete, export, import -----------------------------------------------------

    TABLES = ("tasks", "jobs", "scalars", "checkpoints")

    def delete_task(self, name: str) -> None:
        """Delete a task's rows (tasks, jobs, scalars, checkpoints) in one transaction."""
        with self.transaction():
            self._exec("DELETE FROM checkpoints WHERE task = ?", [name])
            self._exec("DELETE FROM scalars WHERE task = ?", [name])
            self._exec("DELETE FROM jobs WHERE task = ?", [name])
            self._exec("DELETE FROM tasks WHERE name = ?", [name])

    def dump_task(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """Every row of a task, raw (as stored), by table: what an export holds."""
        key = {"tasks": "name", "jobs": "task", "scalars": "task", "checkpoints": "task"}
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
