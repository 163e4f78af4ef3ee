"""Where jobs run: a command in its process group, a function trial.

:func:`run_command` and :func:`run_function` run in a Ray worker (a call on an actor of the run's
pool, :mod:`.workers`, or a Ray task for a job started on its own) and return an
:class:`~gml_ray.engine.spec.Outcome`.
"""
from __future__ import annotations

import functools
import importlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import ray

from gml_ray import checkpoints, reporting
from gml_ray.engine.channel import SCALARS, START
from gml_ray.engine.jobtree import JobTree
from gml_ray.engine.messages import EXIT, STREAM_AFTER_S, Batcher, Sender, node_name, pump
from gml_ray.engine.procgroup import (
    TOKEN_ENV,
    WATCHDOG,
    end_group_in_background,
    kill_group,
    kill_marked,
    lifeline_fd,
    shell,
)
from gml_ray.engine.spec import JobSpec, Outcome
from gml_ray.engine.timers import alarm
from gml_ray.vocab import JobStatus

CANCEL_CHECK_S = 0.2  # how often a command job looks for a cancel while its process runs
ESCAPE_CHECK_S = 0.2  # a scalar pipe still open this long after the job's group ended: look for escapees
# How long the outcome waits for the pipe's last reports to be read and sent: on a machine that
# is far behind (hundreds of jobs starting on a few cores) sending them can take seconds, and a
# report sent after the outcome would come too late to count.
READER_DRAIN_S = 120.0


def job_environ(spec: JobSpec) -> dict[str, str]:
    """The ``GML_*`` variables a job sees (command jobs in their environment, function trials in
    ``os.environ`` while they run)."""
    env = {"GML_JOB_ID": str(spec.job_id), "GML_JOB_NAME": spec.name, "GML_JOB_ATTEMPT": str(spec.attempt),
           "GML_JOB_DIR": spec.job_dir, checkpoints.ENV_DIR: spec.checkpoint_dir or os.path.join(spec.job_dir, "checkpoints"),
           **spec.env}
    if spec.restore_from is not None:
        env[checkpoints.ENV_RESTORE] = spec.restore_from
        env[checkpoints.ENV_RESTORE_STEP] = str(spec.restore_step)
    return env


def run_command(spec: JobSpec, channel: Any = None) -> Outcome:
    """Run ``spec.command`` in a new process group; returns the outcome dict."""
    sender = Sender(spec, channel)
    os.makedirs(spec.job_dir, exist_ok=True)
    cancel = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    # ray.cancel() interrupts the main thread (as SIGINT would); turn that into a clean kill.
    old_handler = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if in_main else None
    env = dict(os.environ)
    # `python` in a template means the interpreter gml-ray runs on, even without an activated venv.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(job_environ(spec))
    env["PYTHONUNBUFFERED"] = "1"
    token = f"{os.getpid()}-{spec.job_id}-{spec.attempt}-{time.time_ns()}"
    env[TOKEN_ENV] = token
    compat = reporting.pavi_compat_dir()
    if compat:  # `from pavi import SummaryWriter` works; last on the path, so any other pavi wins
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), compat) if p)
    read_fd = write_fd = None
    if spec.collect_metrics:
        read_fd, write_fd = os.pipe()
        env[reporting.ENV_FD] = str(write_fd)
        env.pop(reporting.ENV_METRICS, None)
    else:
        env[reporting.ENV_METRICS] = "none"
    out: Any = subprocess.DEVNULL
    err: Any = subprocess.DEVNULL
    if spec.generate_log:
        out = open(os.path.join(spec.job_dir, "stdout.log"), "ab")
        err = open(os.path.join(spec.job_dir, "stderr.log"), "ab")
    started = time.time()
    status, message, rc = JobStatus.FINISHED, "", None
    proc = None
    reader = None
    batcher: Batcher | None = None
    tree: JobTree | None = None
    try:
        try:
            close = f"exec {write_fd}>&-; " if write_fd is not None else ""
            spare = 4 if write_fd == 3 else 3  # a free descriptor in the shell for the lifeline
            command = WATCHDOG.format(spare=spare, close=close) + (spec.command or "")
            tree = JobTree(token)  # this process adopts what the job leaves behind
            proc = subprocess.Popen([*shell(), command], cwd=spec.cwd, env=env, stdout=out,
                                    stderr=err, stdin=lifeline_fd(), start_new_session=True,
                                    pass_fds=(write_fd,) if write_fd is not None else ())
            tree.started(proc.pid)
        except OSError as exc:
            return {"status": JobStatus.ERROR, "message": f"cannot start: {exc}", "exit_code": None,
                    "node": node_name(), "started": started, "ended": time.time(), "sent": sender.sent}
        finally:
            if write_fd is not None:
                os.close(write_fd)
        batcher = Batcher(sender, {"node": node_name(), "pid": proc.pid, "started": started})
        if read_fd is not None:
            reader = threading.Thread(target=pump, args=(read_fd, batcher.add), daemon=True)
            reader.start()
        done = threading.Event()
        def reap(p: subprocess.Popen = proc) -> None:
            p.wait()
            done.set()
        threading.Thread(target=reap, daemon=True).start()
        deadline = started + spec.time_limit if spec.time_limit else None
        while True:
            timeout = CANCEL_CHECK_S
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.time()))
            if done.wait(timeout):
                break
            tree.reap()
            if cancel.is_set():
                status, message = JobStatus.KILLED, "cancelled"
                break
            if deadline is not None and time.time() >= deadline:
                status, message = JobStatus.KILLED, f"time_limits_per_job ({spec.time_limit:g}s) reached"
                break
        # Whatever the outcome, nothing of the job's process group outlives it. A killed job is
        # reported once its group is gone; after a normal exit only stragglers (and the watchdog)
        # are left, and the SIGKILL after the grace period can happen in the background.
        if status == JobStatus.FINISHED:
            proc.wait()
            end_group_in_background(proc)
        else:
            kill_group(proc)
            proc.wait()
        # And what left the group (setsid, a daemon, env={}): the job's tree, now adopted by this
        # process; without a subreaper (or for a killed job, as well) what carries its token.
        tree.end()
        if status != JobStatus.FINISHED or not tree.subreaper:
            kill_marked(token)
        if reader is not None:
            reader.join(timeout=ESCAPE_CHECK_S)
            if reader.is_alive():  # something that left the group holds the scalar pipe open
                kill_marked(token)
        rc = proc.returncode
        if status == JobStatus.FINISHED and rc != 0:
            status = JobStatus.ERROR
            message = f"exit code {rc}" if rc > 0 else f"killed by signal {-rc}"
    finally:
        if tree is not None:
            tree.close()  # no longer a subreaper (when the job could not start, or failed here)
        if reader is not None:
            reader.join(timeout=READER_DRAIN_S)
            if reader.is_alive():
                message = (message + "; " if message else "") + \
                    f"its scalar pipe was still being read {READER_DRAIN_S:g}s after it ended: later reports are lost"
        if batcher is not None:
            batcher.close()
        if read_fd is not None:
            os.close(read_fd)
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    result: Outcome = {"status": status, "message": message, "exit_code": rc, "node": node_name(),
              "started": started, "ended": time.time(), "sent": sender.sent}
    held = batcher.held if batcher is not None else []
    if channel is None or held:
        result["scalars"] = sender.kept + held
    return result


_loaded: dict[str, tuple[str, float]] = {}  # module name -> (file, mtime) when imported


def load_callable(function: str, code_dir: str) -> Any:
    """Import ``module:callable`` from ``code_dir``.

    Ray reuses worker processes across tasks and runs, so a module cached in ``sys.modules`` may
    come from another code dir or be older than its file: then it is imported afresh.
    """
    module_name, _, attr = function.partition(":")
    if code_dir in sys.path:
        sys.path.remove(code_dir)
    sys.path.insert(0, code_dir)
    compat = reporting.pavi_compat_dir()
    if compat and compat not in sys.path:  # last: a pavi of the code dir's own still wins
        sys.path.append(compat)
    module = sys.modules.get(module_name)
    if module is not None:
        file = getattr(module, "__file__", None) or ""
        stale = not os.path.abspath(file).startswith(os.path.join(os.path.abspath(code_dir), ""))
        if not stale and os.path.exists(file):
            stale = _loaded.get(module_name, (file, 0.0)) != (file, os.path.getmtime(file))
        if stale and file and not file.startswith(sys.prefix) and not file.startswith(sys.base_prefix):
            for name in [m for m in sys.modules if m == module_name or m.startswith(module_name + ".")]:
                del sys.modules[name]
            importlib.invalidate_caches()
    module = importlib.import_module(module_name)
    file = getattr(module, "__file__", None)
    if file and os.path.exists(file):
        _loaded[module_name] = (file, os.path.getmtime(file))
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part)
    return fn


EXIT_SEND_S = 5.0  # how long a trial's os._exit may wait for its last messages to reach the channel
_real_exit: Callable[[int], Any] = os._exit
_exit_hook: tuple[int, Callable[[int], None]] | None = None  # (pid, hook) while a trial runs


def _trial_exit(code: int = 0) -> Any:
    """``os._exit`` in a process that runs function trials: while one runs, its reports and the
    exit code go to the scheduler first (the process ends at once, with no outcome to carry them).
    Not in a child the trial forked (multiprocessing's end with ``os._exit`` too)."""
    hook = _exit_hook
    if hook is not None and hook[0] == os.getpid() and isinstance(code, int):
        try:
            hook[1](int(code))
        except BaseException:  # noqa: BLE001 - the process must end whatever happens
            pass
    _real_exit(code)


def _install_exit_hook(hook: Callable[[int], None] | None) -> None:
    global _exit_hook
    if hook is not None and os._exit is not _trial_exit:
        os._exit = _trial_exit  # type: ignore[assignment]
    _exit_hook = (os.getpid(), hook) if hook is not None else None


def _exit_message(code: Any) -> tuple[JobStatus, str, int]:
    """(status, message, exit code) of a trial that called ``sys.exit(code)``: None or 0 is
    FINISHED, another int (True is 1) ERROR with it, anything else (``sys.exit("why")``, which
    Python prints and ends with 1) ERROR with code 1 and the text."""
    if code is None:
        return JobStatus.FINISHED, "", 0
    if isinstance(code, int):
        code = int(code)
        return (JobStatus.FINISHED, "", 0) if code == 0 else (JobStatus.ERROR, f"exited with code {code}", code)
    try:
        text = " ".join(str(code).split())
    except Exception:  # noqa: BLE001 - an object whose str() fails
        text = f"<{type(code).__name__}>"
    return JobStatus.ERROR, f"exited with code 1: {text[:200]}", 1


def run_function(spec: JobSpec, channel: Any = None,
                 call: Callable[[Callable[[dict], Any], dict], Any] | None = None) -> Outcome:
    """Call ``module:callable`` with the config; ``gml_ray.report`` streams to the channel.

    A short trial sends no message at all: its scalars come back in the outcome (``scalars``).
    One that runs longer announces its start and streams its reports at most every 50 ms.
    ``call(fn, values)``, if given, makes the call (a :class:`TrialWorker` arms its interrupt there);
    a KeyboardInterrupt ends the trial as KILLED.
    """
    sender = Sender(spec, channel)
    started = time.time()
    os.makedirs(spec.job_dir, exist_ok=True)
    buffer: list[dict] = []
    last_flush = [started]
    node = node_name()
    start = {"node": node, "pid": os.getpid(), "started": started}
    lock = threading.Lock()  # the trial's thread reports, the alarm's thread announces

    def flush() -> None:
        if buffer:
            sender.send(SCALARS, list(buffer), wait=False)
            buffer.clear()
        last_flush[0] = time.time()

    def go_live() -> None:
        # The trial outlived STREAM_AFTER_S: announce it, with what it reported so far (which
        # would otherwise wait for its next report, or be lost with a process that is killed).
        with lock:
            sender.send(START, start, False)
            flush()

    announce = alarm.schedule(STREAM_AFTER_S, go_live) if channel is not None else None

    def sink(records: list[dict]) -> None:
        if not spec.collect_metrics:
            return
        with lock:
            buffer.extend(records)
            # Streaming lets assessors see fresh values; batching keeps short trials to one message.
            if channel is not None and time.time() - last_flush[0] >= STREAM_AFTER_S:
                flush()

    def on_exit(code: int) -> None:
        # os._exit(code) in the trial (any thread): its process ends now. What it reported and
        # its code reach the channel before it does (the scheduler finishes it by the code).
        got = lock.acquire(timeout=1.0)
        try:
            if buffer:
                sender.send(SCALARS, list(buffer), timeout=EXIT_SEND_S)
                buffer.clear()
        finally:
            if got:
                lock.release()
        sender.send(EXIT, code, timeout=EXIT_SEND_S)

    status, message, exit_code = JobStatus.FINISHED, "", None
    reporting.set_function_sink(sink)
    if channel is not None:
        _install_exit_hook(on_exit)
    reporting.reset_report_step()
    prev_cwd = os.getcwd()
    environ = job_environ(spec)  # the GML_* variables command jobs see, for the trial's duration
    saved_env = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    # ray.cancel() raises KeyboardInterrupt through the SIGINT handler, which a run started in the
    # background (`cmd &`, nohup) has set to "ignore": put Python's default back for the trial.
    in_main = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler) if in_main else None
    try:
        fn = load_callable(spec.function or "", spec.cwd)
        os.chdir(spec.job_dir)
        value = call(fn, dict(spec.values)) if call is not None else fn(dict(spec.values))
        if isinstance(value, dict):  # a returned dict counts as a final report
            reporting.report(**value)
    except KeyboardInterrupt:
        status, message = JobStatus.KILLED, "cancelled"
    except SystemExit as exc:  # sys.exit(): what it reported counts; 0 (or None) is FINISHED
        status, message, exit_code = _exit_message(exc.code)
        if status == JobStatus.ERROR and spec.generate_log:
            with open(os.path.join(spec.job_dir, "stderr.log"), "a") as f:
                f.write(f"gml_ray: the trial called sys.exit({exc.code!r}): {message}\n")
    except Exception as exc:  # noqa: BLE001 - the user's function failed: the job is ERROR
        status, message = JobStatus.ERROR, f"{type(exc).__name__}: {exc}"
        if spec.generate_log:
            import traceback
            with open(os.path.join(spec.job_dir, "stderr.log"), "a") as f:
                traceback.print_exc(file=f)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        os.chdir(prev_cwd)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        reporting.set_function_sink(None)
        _install_exit_hook(None)
        if announce is not None:
            alarm.cancel(announce)  # so that `sent` below counts its message if it went out
    return {"status": status, "message": message, "exit_code": exit_code, "node": node,
            "started": started, "ended": time.time(), "sent": sender.sent,
            "scalars": [*sender.kept, *buffer]}


def _packed(run: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """``run`` as a Ray task that also takes ``(spec, channel)`` pickled into one bytes argument:
    Ray passes bytes as they are, where two objects cost two cloudpickle runs per job."""
    @functools.wraps(run)
    def task(packed: JobSpec | bytes, channel: Any = None) -> Outcome:
        spec = packed
        if isinstance(packed, bytes):
            spec, channel = pickle.loads(packed)
        return run(spec, channel)
    return task


# Ray tasks of the two runners (what Job.start submits).
run_command_remote = ray.remote(max_retries=0)(_packed(run_command))
run_function_remote = ray.remote(max_retries=0)(_packed(run_function))
