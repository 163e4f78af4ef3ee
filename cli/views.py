"""Rich renderings of the store: task list, job table, scalars, and the live run progress."""
from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"PENDING": "dim", "RUNNING": "cyan", "FINISHED": "green", "ERROR": "red",
                "KILLED": "yellow", "EARLY_STOPPED": "magenta"}


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
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
    for col in ("task", "status", "jobs", "finished", "running", "failed", "best reward",
                "created", "elapsed"):
        table.add_column(col, justify="right" if col in ("jobs", "finished", "running", "failed") else "left")
    for t in tasks:
        c = t["counts"]
        failed = c.get("ERROR", 0) + c.get("KILLED", 0)
        elapsed = ((t.get("ended") or time.time()) - t["started"]) if t.get("started") else None
        table.add_row(t["name"], status_text(t["status"]), str(sum(c.values())),
                      str(c.get("FINISHED", 0)), str(c.get("RUNNING", 0) + c.get("PENDING", 0)),
                      str(failed), fmt_value(t["best_reward"]), fmt_time(t["created"]),
                      fmt_duration(elapsed))
    return table


def args_text(arg_dict: dict) -> str:
    return " ".join(f"{k}={fmt_value(v)}" for k, v in arg_dict.items())


def best_job_name(task: dict, jobs: list[dict]) -> str | None:
    rewarded = [j for j in jobs if j["reward"] is not None]
    if not rewarded:
        return None
    pick = min if task.get("optimize_mode") == "minimize" else max
    return pick(rewarded, key=lambda j: j["reward"])["name"]


def jobs_table(task: dict, jobs: list[dict], latest: dict[int, dict[str, Any]]) -> Table:
    """One row per job: status, args, reward, the pavi scalar columns, duration (best job starred)."""
    scalar_cols = [c for c in task["scalar_columns"] if c != task["reward_attribute"]]
    best = best_job_name(task, jobs)
    table = Table(title=f"task {task['name']} ({task['status']}), reward = "
                        f"{task['optimize_mode']} {task['reward_attribute']}", title_justify="left")
    table.add_column("job")
    table.add_column("status")
    table.add_column("args", overflow="fold")
    table.add_column("reward", justify="right")
    for col in scalar_cols:
        table.add_column(col, justify="right")
    table.add_column("duration", justify="right")
    table.add_column("node")
    notes = any(j.get("message") and j["status"] != "FINISHED" for j in jobs)
    if notes:
        table.add_column("note", overflow="fold")
    for j in jobs:
        mark = " *" if j["name"] == best else ""
        cells = [j["name"] + mark, status_text(j["status"]), args_text(j["arg_dict"]),
                 fmt_value(j["reward"])]
        cells += [fmt_value(latest.get(j["job_id"], {}).get(c)) for c in scalar_cols]
        cells += [fmt_duration(job_duration(j)), j.get("node") or "-"]
        if notes:
            cells.append(j.get("message") or "" if j["status"] != "FINISHED" else "")
        table.add_row(*cells)
    return table


def scalars_table(jobs: list[dict], scalars: list[dict]) -> Table:
    names = {j["job_id"]: j["name"] for j in jobs}
    table = Table(title="scalars", title_justify="left")
    for col in ("job", "tag", "steps", "values"):
        table.add_column(col, overflow="fold")
    grouped: dict[tuple[int, str], list[dict]] = {}
    for s in scalars:
        grouped.setdefault((s["job_id"], s["tag"]), []).append(s)
    for (job_id, tag), rows in grouped.items():
        values = [fmt_value(r["value"] if r["value"] is not None else r["text"]) for r in rows]
        steps = [str(r["step"]) for r in rows]
        table.add_row(names.get(job_id, str(job_id)), tag, " ".join(steps), " ".join(values))
    return table


def progress_view(task: dict, counts: dict[str, int], started: float) -> Group:
    done = counts.get("FINISHED", 0)
    running = counts.get("RUNNING", 0) + counts.get("PENDING", 0)
    failed = counts.get("ERROR", 0) + counts.get("KILLED", 0)
    early = counts.get("EARLY_STOPPED", 0)
    line = Text.assemble(
        ("task ", "bold"), (task["name"], "bold cyan"), "  ",
        ("done ", ""), (str(done), "green"), "  running ", (str(running), "cyan"),
        "  failed ", (str(failed), "red" if failed else ""),
        *((("  early-stopped ", ""), (str(early), "magenta")) if early else ()),
        "  best ", (fmt_value(task.get("best_reward")), "bold"),
        f"  elapsed {fmt_duration(time.time() - started)}")
    return Group(line)
