"""What the live dashboard (:mod:`gml_ray.views.dashboard`) reads from the store: a task page's
first payload (the report's, :func:`gml_ray.views.report.collect`) and, after it, only what changed.

Delta protocol. The server keeps, per task, the job rows as the page shows them and a version
number that grows by one at each refresh that changed something, with the version at which each
job last changed. A client sends the ``epoch`` (this server's run) and ``version`` it has and the
id of the last scalar row it has (``rowid``); the answer holds the jobs changed after that
version, the scalars written after that row (of the page's tags) and the task's summary. A client
of another epoch, of a version the server never had, or before a change that moved the jobs'
order, is told to ``reload``. The task list works the same way, keyed by task name.

Reads are short: one ``PRAGMA data_version`` per refresh (at most one refresh per
``MIN_REFRESH_S``, whatever the number of clients), and only when another connection committed:
the jobs launched since, the active ones and those active at the last read (every job every
``FULL_READ_S``, or when the task was resumed). Nothing is ever written.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from gml_ray.objectives import FRONT_COLUMNS, task_front
from gml_ray.optimize import best_result
from gml_ray.store.schema import run_time
from gml_ray.views.report import cell, collect, num, ts
from gml_ray.views.report_objectives import objective_data
from gml_ray.vocab import ACTIVE_JOB_STATUSES, OptimizeMode

EPOCH = secrets.token_hex(6)  # this server's run: a version of another run means nothing here
MIN_REFRESH_S = 0.5  # the store is read at most this often per task, however many clients poll
FULL_READ_S = 30.0  # every job row is read again this often (a safety net; changes come sooner)
MAX_SCALARS = 50_000  # scalar rows per answer (more: the answer says so, the client asks again)


class _WithoutScalars:
    """A store that reads no scalars: the report's payload without its curves, in the time it
    takes to read the job rows (the curves of 10,000 jobs take seconds more; they come after)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rows: list[dict[str, Any]] = []

    def require_task(self, name: str) -> dict[str, Any]:
        return self.store.require_task(name)

    def jobs(self, task: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self.rows = self.store.jobs(task, *args, **kwargs)
        return self.rows

    def scalars(self, *args: Any, **kwargs: Any) -> list:
        return []


def first_payload(store: Any, task: str) -> dict[str, Any]:
    """The report's payload of ``task`` without curves or log tails (each job's latest values from
    its row), and ``rowid``: the newest scalar row when it was read (deltas start there)."""
    rowid = store.last_scalar_rowid()
    proxy = _WithoutScalars(store)
    data = collect(proxy, task, log_bytes=0)
    latest = store.latest_scalars(task, data["tags"], proxy.rows)
    for out in data["jobs"]:
        mine = latest.get(out["id"], {})
        out["latest"] = [cell(mine.get(tg)) for tg in data["tags"]]
    data["rowid"] = rowid
    return data


def curves_payload(store: Any, task: str) -> dict[str, Any]:
    """The curves of the report's payload, and each job's latest values read with them."""
    data = collect(store, task, log_bytes=0)
    return {"curves": data["curves"], "latest": [j["latest"] for j in data["jobs"]],
            "ids": [j["id"] for j in data["jobs"]]}


class TaskLive:
    """One task's job rows as the page shows them, versioned (see the module's docstring)."""

    def __init__(self, store: Any, name: str) -> None:
        self.store, self.name = store, name
        self.lock = threading.Lock()
        self.version = 0
        self.reindexed = 0  # clients older than this version must reload (the jobs' order moved)
        self.raw: dict[int, dict[str, Any]] = {}  # job_id -> the row as read
        self.out: dict[int, dict[str, Any]] = {}  # job_id -> the row as the page has it
        self.changed: dict[int, int] = {}  # job_id -> the version of its last change
        self.order: list[int] = []
        self.index: dict[int, int] = {}
        self.arg_keys: list[str] = []
        self.task: dict[str, Any] | None = None
        self.summary: dict[str, Any] = {}
        self.best_id: int | None = None
        self.seen: Any = None
        self.last_refresh = self.last_full = 0.0

    # ---- reading --------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        with self.lock:
            now = time.time()
            if not force and now - self.last_refresh < MIN_REFRESH_S:
                return
            self.last_refresh = now
            seen = self.store.data_version()
            if not force and seen == self.seen and now - self.last_full < FULL_READ_S:
                return
            self.seen = seen
            t = self.store.require_task(self.name)
            active = [i for i, r in self.raw.items() if r["status"] in ACTIVE_JOB_STATUSES]
            full = (self.task is None or now - self.last_full >= FULL_READ_S or len(active) > 500
                    or t.get("started") != self.task.get("started"))
            if full:
                rows = self.store.jobs(self.name)
                self.last_full = now
            else:
                rows = self.store.jobs_since(self.name, self.order[-1] if self.order else 0, active)
            self._apply(t, rows, now)

    def _apply(self, t: dict[str, Any], rows: list[dict[str, Any]], now: float) -> None:
        version = self.version + 1
        fresh = [r for r in rows if self.raw.get(r["job_id"]) != r]
        for r in fresh:
            self.raw[r["job_id"]] = r
        new_ids = [r["job_id"] for r in fresh if r["job_id"] not in self.index]
        if new_ids:
            if self.order and min(new_ids) < self.order[-1]:
                self.reindexed = version  # a job slipped in before others: indices move
            self.order = sorted(self.raw)
            self.index = {job_id: i for i, job_id in enumerate(self.order)}
        keys = list(dict.fromkeys([*self.arg_keys, *(k for r in fresh for k in r["arg_dict"])]))
        redo = [self.raw[i] for i in self.order] if keys != self.arg_keys or self.reindexed == version else fresh
        self.arg_keys = keys
        tags = [tg for tg in dict.fromkeys(t["scalar_columns"] or [t["reward_attribute"]]) if tg]
        changed = {r["job_id"]: self._row(r, tags) for r in redo}
        all_rows = [self.raw[i] for i in self.order]
        extra = objective_data(t, all_rows, now) if fresh and t.get("objectives") else None
        if extra is not None:  # the front moves with any job: every row's objectives part
            for job_id, more in zip(self.order, extra.jobs):
                row = changed.get(job_id) or dict(self.out[job_id])
                row.update(num(more))
                changed[job_id] = row
        touched = [i for i, row in changed.items() if self.out.get(i) != row]
        for job_id in touched:
            self.out[job_id] = changed[job_id]
            self.changed[job_id] = version
        summary = self._summary(t, all_rows, [self.raw[i] for i in changed], tags, now, extra)
        same_task = self.task is not None and {k: v for k, v in self.task.items() if k != "heartbeat"} == {
            k: v for k, v in t.items() if k != "heartbeat"}
        if touched or not same_task or summary.get("front") != self.summary.get("front"):
            self.version = version
        self.task, self.summary = t, summary

    def _row(self, j: dict[str, Any], tags: list[str]) -> dict[str, Any]:
        """A job as :func:`~gml_ray.views.report.collect` gives it (no log tails, no own_trace;
        ``latest`` only where the row keeps it)."""
        row = {
            "id": j["job_id"], "name": j["name"], "status": j["status"],
            "args": [num(j["arg_dict"].get(k)) if k in j["arg_dict"] else None for k in self.arg_keys],
            "reward": num(j["reward"]),
            "created": ts(j.get("created")), "started": ts(j.get("started")), "ended": ts(j.get("ended")),
            "node": j.get("node"), "message": j.get("message"), "command": j.get("command"),
            "attempt": j.get("attempt") or 1, "exit_code": j.get("exit_code"), "job_dir": j.get("job_dir"),
            "parent": self.index.get(j["parent_id"]) if j.get("parent_id") is not None else None,
            "parent_step": j.get("parent_step"),
        }
        if j.get("latest"):
            try:
                latest = json.loads(j["latest"])
            except ValueError:
                latest = None
            if isinstance(latest, dict):
                row["latest"] = [cell(latest.get(tg)) for tg in tags]
        return row

    def _summary(self, t: dict[str, Any], rows: list[dict[str, Any]], fresh: list[dict[str, Any]],
                 tags: list[str], now: float, extra: Any) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        mode = t["optimize_mode"] or OptimizeMode.MAXIMIZE
        was = self.best_id
        if was is not None and was in self.raw and not any(r["job_id"] == was for r in fresh):
            best = best_result([self.raw[was], *fresh], mode)  # the best is unchanged: only a changed row can beat it
        else:
            best = best_result(rows, mode)
        self.best_id = best["job_id"] if best else None
        out = {"status": t["status"], "message": t.get("message"), "counts": counts,
               "started": ts(t.get("started")), "ended": ts(t.get("ended")),
               "elapsed": ts(run_time(t, now)), "best": self.index[best["job_id"]] if best else None,
               "arg_keys": self.arg_keys, "tags": tags}
        if extra is not None:
            out["front"] = num(extra.summary["front"])
        elif t.get("objectives"):
            out["front"] = self.summary.get("front")
        return out

    # ---- answering ------------------------------------------------------------------------

    def changes(self, epoch: str, version: int, rowid: int) -> dict[str, Any]:
        """What changed after ``version`` and scalar row ``rowid`` (see the module's docstring)."""
        self.refresh()
        with self.lock:
            now = time.time()
            base = {"epoch": EPOCH, "version": self.version, "generated": ts(now),
                    "summary": {**self.summary, "elapsed": ts(run_time(self.task or {}, now))}}
            if epoch != EPOCH or version > self.version or version < self.reindexed:
                return {**base, "reload": True, "jobs": [], "scalars": [], "rowid": rowid}
            jobs = sorted((self.index[i], self.out[i]) for i, v in self.changed.items() if v > version)
            known, tags = self.index, self.summary.get("tags", [])
        rows = self.store.scalars_since(self.name, rowid, tags, MAX_SCALARS)
        more = len(rows) == MAX_SCALARS
        scalars, last = [], rowid
        tag_index = {tg: i for i, tg in enumerate(tags)}
        for s in rows:
            if s["job_id"] not in known:  # a job launched after the refresh: its rows come next time
                more = True
                break
            value = s["value"] if s["value"] is not None else s["text"]
            scalars.append([known[s["job_id"]], tag_index[s["tag"]], s["step"], cell(value), s["attempt"] or 1])
            last = s["rowid"]
        return {**base, "reload": False, "jobs": [[i, row] for i, row in jobs], "scalars": scalars,
                "rowid": last, "more": more}


class TasksLive:
    """The task list (what ``ctl show`` lists), versioned by task name."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.version = 0
        self.rows: dict[str, dict[str, Any]] = {}
        self.changed: dict[str, int] = {}
        self.removed: dict[str, int] = {}
        self.seen: Any = None
        self.last_refresh = 0.0

    def refresh(self) -> None:
        with self.lock:
            now = time.time()
            if now - self.last_refresh < MIN_REFRESH_S:
                return
            self.last_refresh = now
            seen = self.store.data_version()
            if seen == self.seen:
                return
            self.seen = seen
            rows = {t["name"]: self._row(t) for t in self.store.list_tasks()}
            version = self.version + 1
            touched = [n for n, r in rows.items() if self.rows.get(n) != r]
            gone = [n for n in self.rows if n not in rows]
            for n in touched:
                self.changed[n] = version
                self.removed.pop(n, None)
            for n in gone:
                self.removed[n] = version
                self.changed.pop(n, None)
            if touched or gone:
                self.version = version
            self.rows = rows

    def _row(self, t: dict[str, Any]) -> dict[str, Any]:
        row = {k: t.get(k) for k in ("name", "status", "reward_attribute", "optimize_mode", "compare", "message")}
        row.update(counts=t["counts"], best_reward=num(t["best_reward"]),
                   **{k: ts(t.get(k)) for k in ("created", "started", "ended")},
                   elapsed_before=ts(t.get("elapsed_before") or 0.0))
        if t.get("objectives"):
            front = task_front(t, self.store.jobs(t["name"], columns=FRONT_COLUMNS))
            if front is not None and front.spec.multi:
                row.update(front=len(front.members), hypervolume=num(front.hypervolume))
        return row

    def changes(self, epoch: str, version: int) -> dict[str, Any]:
        self.refresh()
        with self.lock:
            base = {"epoch": EPOCH, "version": self.version, "generated": ts(time.time())}
            if epoch != EPOCH or version > self.version:
                return {**base, "reload": True, "tasks": list(self.rows.values()), "removed": []}
            return {**base, "reload": False,
                    "tasks": [self.rows[n] for n, v in self.changed.items() if v > version],
                    "removed": [n for n, v in self.removed.items() if v > version]}
