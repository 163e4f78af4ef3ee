"""``gml-ray`` (and the manual's ``search-init``, ``search-run``, ``search-ctl``).

User mistakes (config, flags, unknown tasks) print one red line and exit 2, never a traceback.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
from typing import Any, Optional

import typer
import yaml
from gml_ray.cli import command_done, command_started, sigterm_received, views
from gml_ray.cli.common import (
    WORKDIR_HELP,
    console,
    err_console,
    last_work_dir,
    open_store,
    resolve_workdir,
    select_jobs,
)
from gml_ray.cli.report_cmds import register as register_report_cmds
from gml_ray.cli.report_cmds import watch as watch_task
from gml_ray.cli.serve_cmds import register as register_serve_cmds
from gml_ray.cli.tracking_cmds import register as register_tracking_cmds
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from gml_ray.errors import EnvironmentFault, UserError
from gml_ray.objectives import FRONT_COLUMNS, Front, front_summary, job_outcome, task_front
from gml_ray.optimize import has_result
from gml_ray.vocab import JobStatus, TaskStatus

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="gml-ray: GML hyperparameter search on Ray.")
ctl_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                      help="Look at and control tasks.")
app.add_typer(ctl_app, name="ctl")


@app.command()
def init(workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP)) -> None:
    """Create the work dir and its store."""
    from gml_ray.store.store import Store
    store = Store(resolve_workdir(workdir))
    console.print(f"gml-ray store ready at {store.path}")


@app.command()
def run(
    config: str = typer.Argument(..., help="the search_config.yaml"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="task name (default: task_<time>)"),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
    symlinks: Optional[str] = typer.Option(None, "--symlinks", help="comma-separated paths to link, not copy"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted task"),
    changed_config: bool = typer.Option(False, "--changed-config",
                                        help="with --resume: go on with a config that differs from the one the task ran"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join [env RAY_ADDRESS]"),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", help="CPUs of a local Ray (default: all)"),
    num_gpus: Optional[int] = typer.Option(None, "--num-gpus", help="GPUs of a local Ray (default: those it finds)"),
    code_dir: Optional[str] = typer.Option(None, "--code-dir", help="the code jobs run (default: the config's directory)"),
    no_snapshot: bool = typer.Option(False, "--no-snapshot", help="run jobs in the code dir itself, not a copy"),
    benchmark: bool = typer.Option(False, "--benchmark", help="run the MuJoCo benchmark: no template, "
                                   "scheduler.func_type swimmer|hopper, the Real args are the policy"),
    warm_start_from: Optional[str] = typer.Option(
        None, "--warm-start-from", help="earlier tasks (names, or archives of ctl export) whose results "
        "the searcher learns before its first proposal: OLD[,OLD2,old.tar.gz]"),
) -> None:
    """Run a search: every job of CONFIG, on a local Ray or the cluster at --address."""
    from gml_ray.config.task import load_config
    from gml_ray.errors import NothingToDo, Terminated

    if resume and not task:
        raise UserError("--resume needs --task NAME (the task to continue)")
    if changed_config and not resume:
        raise UserError("--changed-config goes with --resume (a new task runs its config as it is)")
    scheduler = None
    where = f" --workdir {shlex.quote(workdir)}" if workdir else ""
    try:
        cfg = load_config(config, mode="mujoco" if benchmark else None)  # the mujoco job mode (gml_ray.mujoco)
        for warning in cfg.warnings:
            err_console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
        for notice in cfg.notices:
            err_console.print(Text(f"note: {notice}"), soft_wrap=True)
        from gml_ray.engine.scheduler import NaiveScheduler  # Ray: only once the config is good

        scheduler = NaiveScheduler(resolve_workdir(workdir), cfg,
                                   [s for s in (symlinks or "").split(",") if s],
                                   task=task, code_dir=code_dir, address=address, num_cpus=num_cpus,
                                   num_gpus=num_gpus, resume=resume, snapshot=not no_snapshot,
                                   changed_config=changed_config, warm_start_from=warm_start_from)
        _run_task(scheduler, cfg, config, where)
        command_done()  # inside the try: a SIGTERM before this line still gets the line below
    except NothingToDo as exc:
        console.print(str(exc))
    except KeyboardInterrupt as exc:  # Ctrl+C or SIGTERM, at any moment of the command
        terminated = isinstance(exc, Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        if scheduler is not None:
            scheduler.abandon(f"{what if terminated else 'interrupted (Ctrl+C)'}")
        store = scheduler.store if scheduler is not None else None
        jobs = store.jobs(scheduler.task) if store is not None else []
        if jobs:
            _print_jobs(store, scheduler.task)
        if store is None:
            line = f"{what}: no task was started"
        elif not jobs:
            line = f"{what}: task {scheduler.task} ended before any job ran (ERROR)"
        elif any(j["status"] == JobStatus.PAUSED for j in jobs):
            paused = sum(j["status"] == JobStatus.PAUSED for j in jobs)
            line = (f"{what}: {paused} job{'s' if paused > 1 else ''} of {scheduler.task} paused at "
                    f"{'their' if paused > 1 else 'its'} checkpoint{'s' if paused > 1 else ''}; "
                    f"`--resume` goes on from there")
        elif store.require_task(scheduler.task)["status"] == TaskStatus.ERROR:
            line = f"{what}: running jobs of {scheduler.task} were stopped (ERROR)"
        else:
            line = f"{what}: task {scheduler.task} had ended ({store.require_task(scheduler.task)['status']})"
        err_console.print(Text(line, style="red"), soft_wrap=True)
        raise typer.Exit(143 if terminated else 130) from None


def _run_task(scheduler, cfg, config: str, where: str) -> None:
    """``run``'s work once the config is read: prepare, run with a live progress line, report."""
    store = scheduler.prepare()
    started = time.time()
    before = store.require_task(scheduler.task).get("elapsed_before") or 0.0  # earlier attempts

    def view():
        row = {"name": scheduler.task,
               "best_reward": store.best_reward(scheduler.task, cfg.optimize_mode)}
        return views.progress_view(row, store.status_counts(scheduler.task),
                                   before + time.time() - started)

    console.print(f"task [bold]{scheduler.task}[/]: store {escape(store.path)}")
    if cfg.compare_label:  # GML printed the pavi compare's URL here: the report is gml-ray's view
        console.print(f"compare {cfg.compare_label}: gml-ray ctl report --task {scheduler.task}{where}",
                      soft_wrap=True)
    with Live(view(), console=console, refresh_per_second=4, transient=False) as live:
        try:
            summary = scheduler.run(on_progress=lambda: live.update(view()),
                                    on_notice=lambda text: live.console.print(Text(f"warning: {text}", style="yellow")))
        except RuntimeError as exc:  # the scheduler failed (e.g. a plugin raised): say where to look
            live.update(view())
            err_console.print(Text(f"error: {exc}", style="bold red"), soft_wrap=True)
            err_console.print(f"details: {os.path.join(scheduler.task_dir, 'scheduler.log')}")
            raise typer.Exit(1) from None
        live.update(view())
    if not console.is_terminal:
        console.print()  # Live leaves its last frame without a line break when piped
    if summary.get("spilled"):
        # The store could not take the run's last writes: the table would show them as they were.
        why = summary.get("reason") or ""
        why = why if "could not be written" in why else "the store could not be written" + (f"; {why}" if why else "")
        err_console.print(Text(f"error: task {scheduler.task} ended ERROR ({why}): what jobs reported since is in "
                               f"{summary['spilled']}; `gml-ray run {config} --task {scheduler.task}{where} "
                               f"--resume` loads it", style="bold red"), soft_wrap=True)
        raise typer.Exit(1)
    front = _print_jobs(store, scheduler.task)
    counts = summary["counts"]
    reason = f" ({summary['reason']})" if summary.get("reason") else ""
    best = summary["best_reward"]
    best_text = f", best {cfg.reward_attribute} = {views.fmt_value(best)} ({summary['best_job']})" \
        if best is not None else ""
    if front is not None and front.spec.multi:
        best_text = f", front {len(front.members)} jobs, hypervolume {views.fmt_value(front.hypervolume)}"
    console.print(f"task {scheduler.task} {summary['status']}{reason}: "
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                  + f"{best_text} in {views.fmt_duration(before + time.time() - started)}")
    console.print(f"see: gml-ray ctl show --task {scheduler.task}{where}", soft_wrap=True,
                  markup=False, highlight=False)
    failure = _no_result(store, scheduler.task, cfg)
    if failure:
        err_console.print(Text(f"error: {failure}", style="bold red"), soft_wrap=True)
        raise typer.Exit(1)


def _no_result(store, task: str, cfg) -> Optional[str]:
    """Why the run produced nothing (no job finished with a reward; with MOCK_PAVI=2 no job
    FINISHED at all), naming the most common failure; None when it produced something."""
    jobs = store.jobs(task)
    if cfg.collect_metrics:
        if any(has_result(j) for j in jobs):
            return None
        what = f"no job of {task} finished with a reward ({cfg.reward_attribute!r})" if cfg.outcome is None \
            else f"no job of {task} finished with a feasible result"
    else:
        if any(j["status"] == JobStatus.FINISHED for j in jobs):
            return None
        what = f"no job of {task} FINISHED"
    if not jobs:
        return f"{what}: no job ran"
    causes: dict[str, int] = {}
    for j in jobs:
        if j["status"] == JobStatus.FINISHED and j.get("feasible") == 0:
            cause = "FINISHED breaking a constraint (" + ", ".join(c.text for c in cfg.outcome_spec.constraints) + ")"
        elif j["status"] == JobStatus.FINISHED:
            cause = f"FINISHED without reporting {cfg.reward_attribute!r}"
            if cfg.collect_metrics and _reported(j, cfg.reward_attribute):  # NaN, inf or text only
                cause = f"FINISHED reporting only NaN, inf or non-numeric values for {cfg.reward_attribute!r}"
        else:
            cause = j["status"] + (f": {j['message']}" if j.get("message") else "")
        causes[cause] = causes.get(cause, 0) + 1
    cause, n = max(causes.items(), key=lambda kv: kv[1])
    return f"{what}: {n} {cause} (logs in {os.path.join(store.work_dir, 'tasks', task, 'jobs')})"


def _reported(job: dict, tag: str) -> bool:
    """Whether ``job`` reported ``tag`` at all (its row's latest values, which always keep the
    reward attribute)."""
    try:
        latest = json.loads(job.get("latest") or "{}")
    except ValueError:
        return False
    return isinstance(latest, dict) and tag in latest


def _print_jobs(store, task: str) -> Optional[Front]:
    """Print the task's job table; returns its front (a task with several objectives)."""
    t = store.require_task(task)
    jobs = store.jobs(task)
    front = task_front(t, jobs)
    latest = store.latest_scalars(task, t["scalar_columns"])
    views.jobs_table(t, jobs, latest, front).render(console)
    _print_warm_start(t)
    return front


def _print_warm_start(task: dict) -> None:
    """Where a task started from, under its job table (``--warm-start-from``)."""
    from gml_ray.engine.warm_start import WarmStart

    warm = WarmStart.from_task(task)
    if warm is not None:
        console.print(warm.summary(), soft_wrap=True, markup=False, highlight=False)


@ctl_app.command()
def show(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="show this task's jobs"),
    jobs: Optional[str] = typer.Option(None, "--jobs", help="only these jobs: job_0001,job_0002 or 1,2"),
    scalar: bool = typer.Option(False, "--scalar", help="show the jobs' scalars"),
    out: Optional[str] = typer.Option(None, "--out", help="also write the task to this YAML file"),
    pareto: bool = typer.Option(False, "--pareto", help="only the jobs on the Pareto front (several objectives)"),
    watch: bool = typer.Option(False, "--watch", help="redraw the jobs in place while the task runs (best first)"),
    interval: float = typer.Option(2.0, "--interval", help="seconds between --watch refreshes"),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
) -> None:
    """List tasks, or one task's jobs (with --task)."""
    if watch and (task is None or jobs or scalar or out):
        raise UserError("--watch needs --task, and shows the whole task (no --jobs, --scalar or --out)")
    store = open_store(workdir, write=False)
    if watch:
        watch_task(store, task, console, interval)
        return
    if task is None:
        if jobs or scalar or out or pareto:
            raise UserError("--jobs, --scalar, --out and --pareto need --task")
        tasks = store.list_tasks()
        for row in tasks:
            if row.get("objectives"):
                row["front"] = task_front(row, store.jobs(row["name"], columns=FRONT_COLUMNS))
        console.print(views.tasks_table(tasks))
        return
    t = store.require_task(task)
    front = task_front(t, store.jobs(task, columns=FRONT_COLUMNS)) if t.get("objectives") else None
    if pareto and front is None:
        raise UserError(f"--pareto: task {task} has one objective ({t['reward_attribute']}), no front")
    names = select_jobs(store, task, jobs)
    if pareto and front is not None:
        names = [n for n in (names if names is not None else [j["name"] for j in front.members])
                 if n in front.names]
    rows = store.jobs(task, names, columns=None if out else views.JOB_COLUMNS)
    ids = [j["job_id"] for j in rows]
    if scalar:
        views.scalars_table(rows, store.scalars(task, ids)).render(console)
    else:
        views.jobs_table(t, rows, store.latest_scalars(task, t["scalar_columns"], rows), front).render(console)
        _print_warm_start(t)
    if out:
        _write_yaml(out, t, rows, store.scalars(task, ids) if scalar else None, front)
        console.print(f"wrote {out}")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _write_yaml(path: str, task: dict, jobs: list, scalars: Optional[list], front: Optional[Front] = None) -> None:
    doc: dict[str, Any] = {"task": {k: task[k] for k in ("name", "status", "reward_attribute", "optimize_mode",
                                         "config_path", "code_dir", "task_dir", "message")},
           "jobs": []}
    doc["task"]["created"] = views.fmt_time(task["created"])
    if front is not None:
        doc["task"].update(front_summary(front))
    by_job: dict = {}
    for s in scalars or []:
        value = s["value"] if s["value"] is not None else s["text"]
        by_job.setdefault(s["job_id"], {}).setdefault(s["tag"], []).append(
            {"step": s["step"], "value": _clean(value)})
    for j in jobs:
        entry = {"name": j["name"], "status": j["status"], "args": j["arg_dict"],
                 "reward": _clean(j["reward"]), "duration_s": views.job_duration(j),
                 "node": j["node"], "job_dir": j["job_dir"], "command": j["command"]}
        if j["message"]:
            entry["message"] = j["message"]
        if front is not None:
            entry.update(job_outcome(j, front))
        if scalars is not None:
            entry["scalars"] = by_job.get(j["job_id"], {})
        doc["jobs"].append(entry)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True)


@ctl_app.command()
def stop(
    task: str = typer.Option(..., "--task", "-t", help="the task to stop"),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
) -> None:
    """Stop a running task: its pending and running jobs become KILLED."""
    store = open_store(workdir)
    t = store.require_task(task)
    if t["status"] != TaskStatus.RUNNING:
        raise UserError(f"task {task} is not running (it is {t['status']})")
    store.request_stop(task)
    console.print(f"stop requested for {task}; its run ends its jobs within seconds")


@ctl_app.command()
def rm(
    task: str = typer.Option(..., "--task", "-t", help="the task to delete"),
    summary: str = typer.Option("summary.yaml", "--summary", help="where to write the task's summary first"),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
) -> None:
    """Delete a task's files and rows, after writing its summary (jobs' args, status, reward)."""
    from gml_ray.store.archive import remove_task
    path = remove_task(open_store(workdir), task, summary)
    console.print(f"removed task {task}; its summary is in {path}")


@ctl_app.command("export")
def export_cmd(
    task: str = typer.Option(..., "--task", "-t", help="the task to export"),
    tar_path: Optional[str] = typer.Option(None, "--tar-path", help="default: archive/<task>.<timestamp>.tar.gz"),
    checkpoints: bool = typer.Option(False, "--checkpoints", help="also carry the jobs' checkpoints"),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
) -> None:
    """Write a task (rows and files) to a .tar.gz."""
    from gml_ray.store.archive import export_task
    path = export_task(open_store(workdir, write=False), task, tar_path, checkpoints=checkpoints)
    console.print(f"exported task {task} to {path}")


@ctl_app.command("import")
def import_cmd(
    tar_path: str = typer.Option(..., "--tar-path", help="an archive written by `ctl export`"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="import under this name (default: the archive's)"),
    force: bool = typer.Option(False, "--force", help="replace a task of the same name"),
    max_bytes: str = typer.Option("8G", "--max-bytes", help="refuse an archive that unpacks to more (e.g. 500M, 20G)"),
    max_members: int = typer.Option(200_000, "--max-members", help="refuse an archive with more members"),
    workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
) -> None:
    """Read a task exported with `ctl export`."""
    from gml_ray.store.archive import import_task, parse_size
    from gml_ray.store.store import Store
    store = Store(resolve_workdir(workdir))
    store.reap_dead_runs()  # a task whose run died may be replaced (--force); a live one not
    name = import_task(store, tar_path, task, force,
                       max_bytes=parse_size(max_bytes), max_members=max_members)
    console.print(f"imported task {name} from {tar_path}")


register_report_cmds(ctl_app)  # ctl report, ctl export-tb
register_serve_cmds(ctl_app)  # ctl serve
register_tracking_cmds(ctl_app)  # ctl export-mlflow


def _store_error(exc: Exception) -> str:
    """One line for a SQLite error: the store's file, SQLite's words, and what to do."""
    from gml_ray.store.db import StoreUnreadable
    db = os.path.join(last_work_dir() or resolve_workdir(None), "gml.db")
    text = " ".join(str(exc).split())
    if isinstance(exc, StoreUnreadable):
        return f"{db}: {text}"
    if "readonly" in text or "unable to open" in text or "read-only" in text:
        hint = ("the work dir cannot be written: use --workdir on a writable disk "
                "(`gml-ray ctl show` can still read this one)")
    elif "locked" in text or "busy" in text:
        hint = "another process holds it locked: try again, or stop that process"
    elif "disk" in text and ("full" in text or "I/O" in text):
        hint = "free some space on its disk (or use --workdir elsewhere), then try again"
    else:
        hint = ("the store is damaged: move it aside and import the task from a `gml-ray ctl "
                "export` archive (`ctl import --tar-path ...`), or use another --workdir")
    return f"{db}: {text} ({hint})"


def _main(typer_app: typer.Typer, prog_name: Optional[str] = None, args: Optional[list] = None) -> None:
    import sqlite3
    try:
        command_started()
        typer_app(args=args, prog_name=prog_name)
    except UserError as exc:
        err_console.print(Text(f"error: {exc}", style="bold red"), soft_wrap=True)
        sys.exit(2)
    except EnvironmentFault as exc:
        err_console.print(Text(f"error: {exc}", style="bold red"), soft_wrap=True)
        sys.exit(1)
    except SystemExit as exc:  # typer ends a command interrupted by a signal with 130, silently
        if exc.code == 130 and sigterm_received():
            err_console.print(Text("terminated (SIGTERM)", style="red"))
            sys.exit(143)
        raise
    except KeyboardInterrupt:  # a signal outside typer's own catch (as it builds the command)
        terminated = sigterm_received()
        err_console.print(Text("terminated (SIGTERM)" if terminated else "interrupted", style="red"))
        sys.exit(143 if terminated else 130)
    except sqlite3.DatabaseError as exc:  # environment, not the user's input: exit 1
        err_console.print(Text(f"error: {_store_error(exc)}", style="bold red"), soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a file the command needs (disk full, permissions): exit 1
        if exc.filename is None:
            raise
        err_console.print(Text(f"error: {exc}", style="bold red"), soft_wrap=True)
        sys.exit(1)
    finally:
        command_done()  # whatever the command was, its outcome is decided by now


def main() -> None:
    """Entry point of ``gml-ray``."""
    _main(app, "gml-ray")


def search_init() -> None:
    _main(app, "search-init", ["init", *sys.argv[1:]])


def search_run() -> None:
    _main(app, "search-run", ["run", *sys.argv[1:]])


def search_ctl() -> None:
    _main(ctl_app, "search-ctl")


if __name__ == "__main__":
    main()
