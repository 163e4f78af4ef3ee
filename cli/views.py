"""Rich renderings of the store: task list, job table, scalars, and the live run progress."""
from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gml_ray.engine.spec import job_name
from gml_ray.objectives import Front
from gml_ray.optimize import best_result
from gml_ray.store.archive import format_bytes
from gml_ray.store.schema import run_time
from gml_ray.vocab import JobStatus, OptimizeMode

STATUS_STYLE = {JobStatus.PENDING: "dim", JobStatus.RUNNING: "cyan", JobStatus.FINISHED: "green", JobStatus.ERROR: "red",
                JobStatus.KILLED: "yellow", JobStatus.EARLY_STOPPED: "magenta", JobStatus.PAUSED: "blue"}


def fmt_value(value: Any) -> str:
    if type(value) is float:  # the common case first: called for every cell of 100,000 rows
        return f"{value:.6g}" if value == value else "nan"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if not math.isnan(value) else "nan"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def job_duration(job: dict) -> float | None:
    if not job.get("started"):
        return None
    return (job.get("ended") or time.time()) - job["started"]


def tasks_table(tasks: list[dict]) -> Table:
    table = Table(title="tasks", title_justify="left")
    compare = any(t.get("compare") for t in tasks)
    kept = any(t.get("checkpoint_bytes") for t in tasks)
    paused = any(t["counts"].get(JobStatus.PAUSED) for t in tasks)
    fronts = any(t.get("front") is not None for t in tasks)  # a task with several objectives
    counted = ("jobs", "finished", "running", *(("paused",) if paused else ()), "early stopped", "killed", "error")
    columns = ["task", "status", *counted, "best reward", *(("front", "hypervolume") if fronts else ()),
               "created", "elapsed"]
    if compare:
        columns.insert(2, "compare")
    if kept:
        columns.append("checkpoints")
    for col in columns:
        table.add_column(col, justify="right" if col in (*counted, "checkpoints", "front") else "left")
    for t in tasks:
        c = t["counts"]
        cells = [t["name"], status_text(t["status"]), str(sum(c.values())), str(c.get(JobStatus.FINISHED, 0)),
                 str(c.get(JobStatus.RUNNING, 0) + c.get(JobStatus.PENDING, 0)),
                 *((str(c.get(JobStatus.PAUSED, 0)),) if paused else ()), str(c.get(JobStatus.EARLY_STOPPED, 0)),
                 str(c.get(JobStatus.KILLED, 0)), str(c.get(JobStatus.ERROR, 0)),
                 fmt_value(t["best_reward"]) if t.get("front") is None or not t["front"].spec.multi else "-"]
        if fronts:
            front: Front | None = t.get("front")
            cells += [str(len(front.members)) if front else "-", fmt_value(front.hypervolume) if front else "-"]
        cells += [fmt_time(t["created"]), fmt_duration(run_time(t))]
        if compare:
            cells.insert(2, t.get("compare") or "-")
        if kept:
            cells.append(format_bytes(t.get("checkpoint_bytes") or 0))
        table.add_row(*cells)
    return table


def args_text(arg_dict: dict) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in arg_dict.items())


def best_job_name(task: dict, jobs: list[dict]) -> str | None:
    """The best job, by the rule the scheduler's ``best_job`` follows (:func:`best_result`)."""
    top = best_result(jobs, task.get("optimize_mode") or OptimizeMode.MAXIMIZE)
    return top["name"] if top else None


RICH_MAX_ROWS = 300  # above this a table prints as plain aligned text: rich's layout is too slow


class Grid:
    """A table's content; :meth:`render` draws it with rich, or as plain text when it is large."""

    def __init__(self, title: str, columns: list[tuple[str, str]]) -> None:
        self.title, self.columns = title, columns  # (name, "left" | "right")
        self.rows: list[list[str]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append([str(c) for c in cells])

    def rich(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for name, justify in self.columns:
            table.add_column(name, justify=justify,  # type: ignore[arg-type]
                             overflow="fold" if name in ("args", "note", "values", "steps", "attempt") else "ellipsis")
        status = [i for i, (name, _) in enumerate(self.columns) if name == "status"]
        for row in self.rows:
            cells: list[Any] = list(row)
            for i in status:
                cells[i] = status_text(row[i])
            table.add_row(*cells)
        return table

    def plain(self) -> str:
        widths = [max([len(name)] + [len(r[i]) for r in self.rows]) for i, (name, _) in enumerate(self.columns)]
        # One format string for every line: 100,000 rows in a fraction of a second.
        fmt = "  ".join(f"{{:{'>' if j == 'right' else '<'}{w}}}" for w, (_, j) in zip(widths, self.columns))
        header = fmt.format(*[name for name, _ in self.columns]).rstrip()
        lines = [fmt.format(*row).rstrip() for row in self.rows]
        return "\n".join([self.title, header, "-" * len(header), *lines]) + "\n"

    def render(self, console: Any) -> None:
        if len(self.rows) <= RICH_MAX_ROWS:
            console.print(self.rich())
        else:
            console.file.write(self.plain())
            console.file.flush()


# What jobs_table reads of a job (Store.jobs(columns=...)): not its config, command or dir.
JOB_COLUMNS = ("status", "arg_dict", "reward", "started", "ended", "node", "message", "latest", "attempt",
               "parent_id", "parent_step", "rewards", "violations", "feasible")

EARLIER = " (attempt "  # the node column of a job run again: "<node> (attempt 1: <its node>)"


def node_and_attempt(job: dict) -> tuple[str, str]:
    """The node column's two cells: the node of the job's last attempt, and its attempt with the
    earlier attempts' nodes (``2 (1: 192.0.2.2 2a686e5d)``; empty for a first attempt)."""
    node, sep, earlier = (" " + (job.get("node") or "")).partition(EARLIER)
    attempt = int(job.get("attempt") or 1)
    node = node.strip() or "-"
    if attempt <= 1:
        return node, ""
    earlier = earlier[:-1] if sep and earlier.endswith(")") else ""
    return node, f"{attempt}" + (f" ({earlier.replace('; attempt ', '; ')})" if earlier else "")


def outcome_title(front: Front) -> str:
    """The objectives, constraints and front of a task, for a table's title."""
    spec = front.spec
    text = "objectives: " + ", ".join(f"{o.mode.value} {o.name}" for o in spec.objectives)
    if spec.constraints:
        text += "; constraints: " + ", ".join(c.text for c in spec.constraints)
    if spec.multi:
        text += f"; front: {len(front.members)} of {front.considered} jobs, hypervolume {fmt_value(front.hypervolume)}"
    return text


def jobs_table(task: dict, jobs: list[dict], latest: dict[int, dict[str, Any]],
               front: Front | None = None) -> Grid:
    """One row per job: status, args, reward, the pavi scalar columns, duration, node (best job
    starred); with an attempt column (and the earlier attempts' nodes) when a job ran again.
    A task with several objectives or constraints (``front``, from all its jobs): one column per
    objective (the job's last values) instead of the reward, and a ``front`` column marking the
    Pareto jobs (◆) and the infeasible ones."""
    multi = front is not None and front.spec.multi
    shown = front.spec.names[1:] if multi and front is not None else []
    scalar_cols = [c for c in task["scalar_columns"] if c != task["reward_attribute"] and c not in shown]
    on_front = front.names if front is not None else set()
    best = best_job_name(task, jobs) if not multi else None
    notes = any(j.get("message") and j["status"] != JobStatus.FINISHED for j in jobs)
    again = any(int(j.get("attempt") or 1) > 1 for j in jobs)  # some job ran again (--resume, max_retries)
    lineage = any(j.get("parent_id") is not None for j in jobs)  # PBT: jobs continued others
    columns = [("job", "left"), ("status", "left")] + ([("from", "left")] if lineage else [])
    columns += [("args", "left")]
    columns += [(n, "right") for n in front.spec.names] if multi and front is not None else [("reward", "right")]
    columns += [("front", "left")] if front is not None else []
    columns += [(c, "right") for c in scalar_cols]
    columns += [("duration", "right"), ("node", "left")] + ([("attempt", "left")] if again else [])
    columns += [("note", "left")] if notes else []
    compare = f", compare {task['compare']}" if task.get("compare") else ""
    what = outcome_title(front) if front is not None else \
        f"reward = {task['optimize_mode']} {task['reward_attribute']}"
    grid = Grid(f"task {task['name']} ({task['status']}), {what}{compare}", columns)
    for j in jobs:
        cells = [j["name"] + (" *" if j["name"] == best else ""), j["status"]]
        if lineage:
            parent = j.get("parent_id")
            cells.append("" if parent is None else f"{job_name(parent)}@{j.get('parent_step')}")
        cells.append(args_text(j["arg_dict"]))
        if multi:
            values = j.get("rewards") or []
            cells += [fmt_value(values[i] if i < len(values) else None) for i in range(len(shown) + 1)]
        else:
            cells.append(fmt_value(j["reward"]))
        if front is not None:
            cells.append("◆" if j["name"] in on_front else "infeasible" if j.get("feasible") == 0 else "")
        cells += [fmt_value(latest.get(j["job_id"], {}).get(c)) for c in scalar_cols]
        node, attempt = node_and_attempt(j)
        cells += [fmt_duration(job_duration(j)), node] + ([attempt] if again else [])
        if notes:
            cells.append((j.get("message") or "") if j["status"] != JobStatus.FINISHED else "")
        grid.add_row(*cells)
    return grid


def scalars_table(jobs: list[dict], scalars: list[dict]) -> Grid:
    names = {j["job_id"]: j["name"] for j in jobs}
    grid = Grid("scalars", [("job", "left"), ("tag", "left"), ("steps", "left"), ("values", "left")])
    grouped: dict[tuple[int, str, int], list[dict]] = {}
    for s in scalars:
        grouped.setdefault((s["job_id"], s["tag"], s.get("attempt") or 1), []).append(s)
    resumed = {job_id for job_id, _, attempt in grouped if attempt > 1}
    for (job_id, tag, attempt), rows in grouped.items():
        values = [fmt_value(r["value"] if r["value"] is not None else r["text"]) for r in rows]
        steps = [str(r["step"]) for r in rows]
        name = names.get(job_id, str(job_id))
        if job_id in resumed:  # a job run again by --resume: each attempt's values apart
            name += f" (attempt {attempt})"
        grid.add_row(name, tag, " ".join(steps), " ".join(values))
    return grid


def count_parts(counts: dict[str, int]) -> list[str | tuple[str, str]]:
    """The job counts of a progress line, as ``Text.assemble`` parts: done, running, failed,
    and paused and early-stopped when there are any."""
    done = counts.get(JobStatus.FINISHED, 0)
    running = counts.get(JobStatus.RUNNING, 0) + counts.get(JobStatus.PENDING, 0)
    failed = counts.get(JobStatus.ERROR, 0) + counts.get(JobStatus.KILLED, 0)
    paused = counts.get(JobStatus.PAUSED, 0)
    early = counts.get(JobStatus.EARLY_STOPPED, 0)
    return ["  done ", (str(done), "green"), "  running ", (str(running), "cyan"),
            "  failed ", (str(failed), "red" if failed else ""),
            *(("  paused ", (str(paused), "blue")) if paused else ()),
            *(("  early-stopped ", (str(early), "magenta")) if early else ())]


def progress_view(task: dict, counts: dict[str, int], elapsed: float) -> Group:
    line = Text.assemble(
        ("task ", "bold"), (task["name"], "bold cyan"), *count_parts(counts),
        "  best ", (fmt_value(task.get("best_reward")), "bold"),
        f"  elapsed {fmt_duration(elapsed)}")
    return Group(line)
