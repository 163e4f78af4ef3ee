"""``ctl report``, ``ctl export-tb`` and the live view behind ``ctl show --task T --watch``.

``register(ctl_app)`` adds the two commands to the ``ctl`` Typer app; :func:`watch` is what
``show --watch`` calls. Nothing here talks SQL: the store, :mod:`gml_ray.views.report` and
:mod:`gml_ray.views.tensorboard` do the work.
"""
from __future__ import annotations

import math
import time
from typing import Any, Optional

import typer
from gml_ray.cli import views
from gml_ray.cli.common import WORKDIR_HELP, console, open_store, select_jobs
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gml_ray.errors import UserError
from gml_ray.objectives import task_front
from gml_ray.optimize import sign
from gml_ray.store.schema import run_time
from gml_ray.vocab import JobStatus, OptimizeMode, TaskStatus

SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 16


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def register(ctl_app: typer.Typer) -> None:
    """Add ``report`` and ``export-tb`` to the ``ctl`` app."""

    @ctl_app.command("report")
    def report_cmd(
        task: str = typer.Option(..., "--task", "-t", help="the task to report"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="the HTML file (default: <task>.report.html)"),
        scalars: Optional[str] = typer.Option(None, "--scalars", help="scalar tags to plot, e.g. acc,loss "
                                              "(default: the reward and pavi.scalars)"),
        max_traces: int = typer.Option(100, "--max-traces", min=1,
                                       help="jobs with a curve of their own (best first); the others are drawn as a band"),
        log_bytes: Optional[int] = typer.Option(None, "--log-bytes", min=0,
                                                help="bytes of log tail kept per job and stream (default: 3 MB shared by all jobs)"),
        workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
    ) -> None:
        """Write one self-contained HTML page for a task: summary, job table, curves, plots, logs."""
        from gml_ray.views.report import write_report

        tags = [s.strip() for s in scalars.split(",") if s.strip()] if scalars else None
        if scalars is not None and not tags:
            raise UserError("--scalars needs at least one scalar name, e.g. --scalars acc,loss")
        info = write_report(open_store(workdir, write=False), task, out, tags, max_traces=max_traces,
                            log_bytes=log_bytes)
        console.print(f"wrote {info.path} ({_size(info.size)}, {info.jobs} jobs, scalars: "
                      f"{', '.join(info.tags) or 'none'}) in {info.seconds:.1f}s")

    @ctl_app.command("export-tb")
    def export_tb_cmd(
        task: str = typer.Option(..., "--task", "-t", help="the task to export"),
        logdir: Optional[str] = typer.Option(None, "--logdir", help="default: <work dir>/tasks/<task>/tensorboard"),
        jobs: Optional[str] = typer.Option(None, "--jobs", help="only these jobs: job_0001,job_0002 or 1,2"),
        workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
    ) -> None:
        """Write a task's scalars and args as TensorBoard event files (one run per job, with HParams)."""
        from gml_ray.views.tensorboard import export_task

        store = open_store(workdir, write=False)  # --logdir may be elsewhere
        store.require_task(task)
        path, n_jobs, n_scalars = export_task(store, task, logdir, select_jobs(store, task, jobs))
        console.print(f"wrote {n_scalars} scalars of {n_jobs} jobs to {path}")
        console.print(f"view them: tensorboard --logdir {path}")


# ---- the live view ---------------------------------------------------------------------------------

def sparkline(values: list[float], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` finite values as block characters (low ▁ ... high █)."""
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)][-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return SPARKS[3] * len(vals)
    return "".join(SPARKS[min(7, int((v - lo) / (hi - lo) * 8))] for v in vals)


def _pick_rows(task: dict, jobs: list[dict], limit: int) -> list[dict]:
    """Best reward first; running jobs are always shown, then as many others as fit."""
    s = sign(task.get("optimize_mode") or OptimizeMode.MAXIMIZE)

    def key(j: dict) -> tuple:
        return (j["reward"] is None, -s * j["reward"] if j["reward"] is not None else 0, j["job_id"])
    running = [j for j in jobs if j["status"] == JobStatus.RUNNING]
    others = sorted((j for j in jobs if j["status"] != JobStatus.RUNNING), key=key)
    picked = running + others[:max(0, limit - len(running))]
    return sorted(picked, key=key)


def watch_view(store: Any, task: str, height: int = 40, interval: float | None = None) -> Group:
    """One frame of the live view: a progress line and the jobs table (best first)."""
    t = store.require_task(task)
    jobs = store.jobs(task)
    counts = store.status_counts(task)
    t["best_reward"] = store.best_reward(task, t.get("optimize_mode") or "maximize")
    elapsed = run_time(t)
    front = task_front(t, jobs)  # several objectives or constraints: the front so far
    best_part: list[Any] = [f"  best {t['reward_attribute']} ", (views.fmt_value(t["best_reward"]), "bold")]
    if front is not None and front.spec.multi:
        best_part = [f"  front {len(front.members)} jobs, hypervolume ", (views.fmt_value(front.hypervolume), "bold")]
    head = Text.assemble(
        ("task ", "bold"), (task, "bold cyan"), "  ", (t["status"], views.STATUS_STYLE.get(t["status"], "")),
        *views.count_parts(counts), *best_part, f"  elapsed {views.fmt_duration(elapsed)}")
    limit = max(3, height - 9)
    rows = _pick_rows(t, jobs, limit)
    tags = [c for c in (t["scalar_columns"] or [t["reward_attribute"]]) if c]
    latest = store.latest_scalars(task, tags)
    running_ids = [j["job_id"] for j in rows if j["status"] == JobStatus.RUNNING]
    history: dict[tuple[int, str], list[float]] = {}
    if running_ids and tags:
        for s in store.scalars(task, running_ids, tags):
            history.setdefault((s["job_id"], s["tag"]), []).append(
                s["value"] if s["value"] is not None else math.nan)
    best = views.best_job_name(t, jobs) if front is None or not front.spec.multi else None
    on_front = front.names if front is not None else set()
    table = Table(expand=False)
    table.add_column("job", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("args", overflow="fold", ratio=1)
    table.add_column("reward", justify="right", no_wrap=True)
    shown_tags = [c for c in tags if c != t["reward_attribute"]]
    table.add_column(f"{t['reward_attribute']} (latest)", justify="right", no_wrap=True)
    for c in shown_tags:
        table.add_column(c, justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for j in rows:
        mark = " *" if j["name"] == best else " ◆" if j["name"] in on_front else " ✗" if j.get("feasible") == 0 else ""
        cells: list[Any] = [j["name"] + mark, views.status_text(j["status"]),
                            views.args_text(j["arg_dict"]), views.fmt_value(j["reward"])]
        for c in [t["reward_attribute"], *shown_tags]:
            value = views.fmt_value(latest.get(j["job_id"], {}).get(c))
            spark = sparkline(history.get((j["job_id"], c), [])) if j["status"] == JobStatus.RUNNING else ""
            cells.append(Text.assemble((spark + " ", "cyan"), value) if spark else value)
        cells.append(views.fmt_duration(views.job_duration(j)))
        table.add_row(*cells)
    parts: list[Any] = [head, table]
    hidden = len(jobs) - len(rows)
    foot = f"{hidden} more jobs not shown (gml-ray ctl show --task {task}); " if hidden > 0 else ""
    if t["status"] == TaskStatus.RUNNING:
        every = f"every {interval:g}s" if interval else "live"
        parts.append(Text(f"{foot}refreshing {every} at {views.fmt_time(time.time())}; Ctrl+C to quit",
                          style="dim"))
    elif foot:
        parts.append(Text(foot.rstrip("; "), style="dim"))
    return Group(*parts)


def watch(store: Any, task: str, console: Console, interval: float = 2.0,
          max_refreshes: int | None = None) -> str:
    """Redraw :func:`watch_view` in place every ``interval`` seconds until the task is no longer
    RUNNING (one last frame is drawn), Ctrl+C, or ``max_refreshes`` frames. Returns the task's
    last status. A console that is not a terminal gets the last frame only.
    """
    store.require_task(task)
    if interval <= 0:
        raise UserError("--interval must be more than 0 seconds")
    refreshes, status = 0, TaskStatus.RUNNING

    def frame() -> Group:
        nonlocal refreshes, status
        refreshes += 1
        store.reap_dead_runs()  # a run killed outright must not be watched forever
        status = store.require_task(task)["status"]  # read first: the frame may show a newer state
        return watch_view(store, task, console.size.height, interval)

    with Live(frame(), console=console, auto_refresh=False, transient=False,
              vertical_overflow="crop") as live:
        try:
            while status == TaskStatus.RUNNING and (max_refreshes is None or refreshes < max_refreshes):
                time.sleep(interval)
                live.update(frame(), refresh=True)
        except KeyboardInterrupt:
            pass
    return status
