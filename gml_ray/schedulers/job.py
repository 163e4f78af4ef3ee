"""Jobs: one config's run, as a Ray task (manual 3.2: ``start``, ``wait``, ``kill``, ``status``).

A :class:`CommandJob` runs the rendered template in its own process group with a pipe for scalars
(``GML_SCALAR_FD``); a :class:`FunctionJob` calls ``module:callable`` with the config inside the Ray
worker. Both send ``(kind, job_id, attempt, payload)`` messages to the scheduler's channel and return
an outcome dict that says how many messages they sent, so the scheduler knows when it has them all.
"""
from __future__ import annotations

import ctypes
import functools
import importlib
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import ray

from .. import reporting
from ..store import ERROR, FINISHED, KILLED, PENDING, RUNNING
from .channel import SCALARS, START, ChannelName

KILL_GRACE_S = 3.0  # SIGTERM first; SIGKILL whatever is left after this
CANCEL_CHECK_S = 0.2
ZOMBIE_SCAN_AFTER_S = 0.1  # a group still there after this may hold only zombies: look in /proc  # how often a command job looks for a cancel while its process runs


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


def _node_name() -> str:
    """``<ip> <node id prefix>``: the IP for people, the id to tell apart nodes on one host."""
    if not ray.is_initialized():  # a job run outside Ray must not start (or join) a cluster
        return socket.gethostname()
    try:
        node_id = ray.get_runtime_context().get_node_id() or ""
        return f"{ray.util.get_node_ip_address()} {node_id[:8]}".strip()
    except Exception:  # noqa: BLE001 - outside Ray
        return socket.gethostname()


class _Sender:
    """Sends messages to the channel (or keeps them when there is none) and counts them."""

    def __init__(self, spec: JobSpec, channel: Any) -> None:
        self.spec, self.channel, self.sent = spec, channel, 0
        self.kept: list[dict] = []
        self._lock = threading.Lock()

    def send(self, kind: str, payload: Any, wait: bool = True) -> None:
        with self._lock:
            if self.channel is None:
                if kind == SCALARS:
                    self.kept.extend(payload)
                return
            channel = self.channel.handle() if isinstance(self.channel, ChannelName) else self.channel
            ref = channel.put.remote((kind, self.spec.job_id, self.spec.attempt, payload))
            self.sent += 1
        if wait:
            ray.get(ref)


def _group_exists(pgid: int) -> bool:
    """Whether any process, zombies included, is left in the process group ``pgid`` (cheap)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the process group ``pgid``."""
    if not _group_exists(pgid):
        return False
    if not os.path.isdir("/proc"):
        return True
    # Orphaned members are zombies until init reaps them, which can take seconds: skip those.
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the job's process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    started = time.time()
    deadline, delay = started + KILL_GRACE_S, 0.001
    while time.time() < deadline:
        if proc.poll() is None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(delay)
        # Scanning /proc for zombies costs milliseconds of CPU per job: first give init a moment
        # to reap the group's orphans, which the cheap check then sees gone.
        if not _group_exists(proc.pid) or (time.time() - started > ZOMBIE_SCAN_AFTER_S
                                           and not _group_alive(proc.pid)):
            return
        delay = min(delay * 2, 0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _end_group_in_background(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    threading.Thread(target=_kill_group, args=(proc,), daemon=True).start()


class _Alarm:
    """Runs callbacks after a delay on one daemon thread per process: a ``threading.Timer`` per
    job would start (and join) a thread for every short trial."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}  # token -> (when, callback)
        self._running: int | None = None  # the token whose callback runs now
        self._next = 0
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` after ``delay`` seconds unless cancelled; returns a token."""
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="gml-alarm", daemon=True)
                self._thread.start()
            self._next += 1
            self._due[self._next] = (time.monotonic() + delay, callback)
            self._cv.notify()
            return self._next

    def cancel(self, token: int) -> None:
        """After this returns the callback has either run to its end or will never run."""
        with self._cv:
            self._due.pop(token, None)
            while self._running == token:
                self._cv.wait()

    def _loop(self) -> None:
        with self._cv:
            while True:
                if not self._due:
                    self._cv.wait()
                    continue
                token = min(self._due, key=lambda t: self._due[t][0])
                when, callback = self._due[token]
                wait = when - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                del self._due[token]
                self._running = token
                self._cv.release()
                try:
                    callback()
                except Exception:  # noqa: BLE001 - a failed send is the job's loss, not the alarm's
                    pass
                finally:
                    self._cv.acquire()
                    self._running = None
                    self._cv.notify_all()


_alarm = _Alarm()


class _Batcher:
    """A command job's messages: nothing for its first ``STREAM_AFTER_S``, then START and its
    reports as they come. A job that ends sooner sends no message at all; its reports go back in
    its outcome (``held``), which saves the scheduler a wake-up and a round trip per short job.
    """

    def __init__(self, sender: _Sender, start: dict) -> None:
        self.sender, self.held = sender, []  # held: reports not sent yet
        self._live = False
        self._lock = threading.Lock()
        self._token = _alarm.schedule(STREAM_AFTER_S, lambda: self._go_live(start))

    def _go_live(self, start: dict) -> None:
        with self._lock:
            self._live = True
            self.sender.send(START, start, wait=False)
            if self.held:  # waits, so that later reports cannot overtake these at the channel
                self.sender.send(SCALARS, self.held)
                self.held = []

    def add(self, records: list[dict]) -> None:
        with self._lock:
            if not self._live:
                self.held.extend(records)
                return
        self.sender.send(SCALARS, records)  # waits: a flood of reports is paced by the channel

    def close(self) -> None:
        """Stop the timer; once this returns, ``sender.sent`` counts every message sent."""
        _alarm.cancel(self._token)


def _pump(fd: int, sink: Callable[[list[dict]], None]) -> None:
    """Read JSON lines from the scalar pipe until EOF and hand them to ``sink`` in batches."""
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        if chunk:
            buf += chunk
            lines, _, buf = buf.rpartition(b"\n")
            if not lines:
                continue
        else:
            lines, buf = buf, b""
        records = []
        for line in lines.split(b"\n"):
            if line.strip():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn or foreign line: ignore it rather than lose the rest
                if isinstance(rec, dict) and "t" in rec and "v" in rec:
                    records.append(rec)
        if records:
            sink(records)
        if not chunk:
            return


def _shell() -> list[str]:
    bash = shutil.which("bash")
    return [bash, "-c"] if bash else ["/bin/sh", "-c"]


# Runs in the job's process group beside the command: if the Ray worker that owns the job dies
# (the driver was SIGKILLed, the node lost its raylet), it ends the whole group, so no job
# process outlives its run. It dies with the group when the job ends normally.
# It closes its copy of the scalar pipe, so the pipe's end-of-file still comes with the job's end.
_WATCHDOG = ("( trap - TERM; {close}while kill -0 {pid} 2>/dev/null; do sleep 1; done; "
             "kill -TERM 0; sleep 3; kill -KILL 0 ) >/dev/null 2>&1 </dev/null &\n")


def run_command(spec: JobSpec, channel: Any = None) -> dict:
    """Run ``spec.command`` in a new process group; returns the outcome dict."""
    sender = _Sender(spec, channel)
    os.makedirs(spec.job_dir, exist_ok=True)
    cancel = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    # ray.cancel() interrupts the main thread (as SIGINT would); turn that into a clean kill.
    old_handler = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if in_main else None
    env = dict(os.environ)
    env.update(spec.env)
    # `python` in a template means the interpreter gml-ray runs on, even without an activated venv.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update({"GML_JOB_ID": str(spec.job_id), "GML_JOB_NAME": spec.name,
                "GML_JOB_ATTEMPT": str(spec.attempt),
                "GML_JOB_DIR": spec.job_dir, "PYTHONUNBUFFERED": "1"})
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
    out = err = subprocess.DEVNULL
    if spec.generate_log:
        out = open(os.path.join(spec.job_dir, "stdout.log"), "ab")
        err = open(os.path.join(spec.job_dir, "stderr.log"), "ab")
    started = time.time()
    status, message, rc = FINISHED, "", None
    proc = None
    pump = None
    batcher: _Batcher | None = None
    try:
        try:
            close = f"exec {write_fd}>&-; " if write_fd is not None else ""
            command = _WATCHDOG.format(pid=os.getpid(), close=close) + spec.command
            proc = subprocess.Popen([*_shell(), command], cwd=spec.cwd, env=env, stdout=out,
                                    stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                    pass_fds=(write_fd,) if write_fd is not None else ())
        except OSError as exc:
            return {"status": ERROR, "message": f"cannot start: {exc}", "exit_code": None,
                    "node": _node_name(), "started": started, "ended": time.time(), "sent": sender.sent}
        finally:
            if write_fd is not None:
                os.close(write_fd)
        batcher = _Batcher(sender, {"node": _node_name(), "pid": proc.pid, "started": started})
        if read_fd is not None:
            pump = threading.Thread(target=_pump, args=(read_fd, batcher.add), daemon=True)
            pump.start()
        done = threading.Event()
        threading.Thread(target=lambda: (proc.wait(), done.set()), daemon=True).start()
        deadline = started + spec.time_limit if spec.time_limit else None
        while True:
            timeout = CANCEL_CHECK_S
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.time()))
            if done.wait(timeout):
                break
            if cancel.is_set():
                status, message = KILLED, "cancelled"
                break
            if deadline is not None and time.time() >= deadline:
                status, message = KILLED, f"time_limits_per_job ({spec.time_limit:g}s) reached"
                break
        # Whatever the outcome, nothing of the job's process group outlives it. A killed job is
        # reported once its group is gone; after a normal exit only stragglers (and the watchdog)
        # are left, and the SIGKILL after the grace period can happen in the background.
        if status == FINISHED:
            proc.wait()
            _end_group_in_background(proc)
        else:
            _kill_group(proc)
            proc.wait()
        rc = proc.returncode
        if status == FINISHED and rc != 0:
            status = ERROR
            message = f"exit code {rc}" if rc > 0 else f"killed by signal {-rc}"
    finally:
        if pump is not None:
            pump.join(timeout=10)
        if batcher is not None:
            batcher.close()
        if read_fd is not None:
            os.close(read_fd)
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                f.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    result = {"status": status, "message": message, "exit_code": rc, "node": _node_name(),
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


# A function trial shorter than this sends nothing until it returns; a longer one streams its
# reports at most this often. GML_STREAM_INTERVAL_S (in the workers' environment) overrides it.
STREAM_AFTER_S = float(os.environ.get("GML_STREAM_INTERVAL_S", "0.05"))


def run_function(spec: JobSpec, channel: Any = None,
                 call: Callable[[Callable[[dict], Any], dict], Any] | None = None) -> dict:
    """Call ``module:callable`` with the config; ``gml_ray.report`` streams to the channel.

    A short trial sends no message at all: its scalars come back in the outcome (``scalars``).
    One that runs longer announces its start and streams its reports at most every 50 ms.
    ``call(fn, values)``, if given, makes the call (a :class:`TrialWorker` arms its interrupt there);
    a KeyboardInterrupt ends the trial as KILLED.
    """
    sender = _Sender(spec, channel)
    started = time.time()
    os.makedirs(spec.job_dir, exist_ok=True)
    buffer: list[dict] = []
    last_flush = [started]
    node = _node_name()
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

    announce = _alarm.schedule(STREAM_AFTER_S, go_live) if channel is not None else None

    def sink(records: list[dict]) -> None:
        if not spec.collect_metrics:
            return
        with lock:
            buffer.extend(records)
            # Streaming lets assessors see fresh values; batching keeps short trials to one message.
            if channel is not None and time.time() - last_flush[0] >= STREAM_AFTER_S:
                flush()

    status, message = FINISHED, ""
    reporting.set_function_sink(sink)
    reporting.reset_report_step()
    prev_cwd = os.getcwd()
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
        status, message = KILLED, "cancelled"
    except Exception as exc:  # noqa: BLE001 - the user's function failed: the job is ERROR
        status, message = ERROR, f"{type(exc).__name__}: {exc}"
        if spec.generate_log:
            import traceback
            with open(os.path.join(spec.job_dir, "stderr.log"), "a") as f:
                traceback.print_exc(file=f)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        os.chdir(prev_cwd)
        reporting.set_function_sink(None)
        if announce is not None:
            _alarm.cancel(announce)  # so that `sent` below counts its message if it went out
    return {"status": status, "message": message, "exit_code": None, "node": node,
            "started": started, "ended": time.time(), "sent": sender.sent,
            "scalars": sender.kept + buffer}


def _packed(run: Callable[[JobSpec, Any], dict]) -> Callable[..., dict]:
    """``run`` as a Ray task that also takes ``(spec, channel)`` pickled into one bytes argument:
    Ray passes bytes as they are, where two objects cost two cloudpickle runs per job."""
    @functools.wraps(run)
    def task(spec: JobSpec | bytes, channel: Any = None) -> dict:
        if isinstance(spec, bytes):
            spec, channel = pickle.loads(spec)
        return run(spec, channel)  # type: ignore[arg-type]
    return task


_run_command_remote = ray.remote(max_retries=0)(_packed(run_command))
_run_function_remote = ray.remote(max_retries=0)(_packed(run_function))


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Make ``exc`` raise in thread ``thread_id`` at its next Python instruction (None: take back
    one that has not been raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc) if exc is not None else None)


class TrialWorker:
    """A reusable process for function trials (the body of :data:`TrialActor`): it runs one trial
    at a time with :func:`run_function`, and :meth:`cancel` interrupts the one running.

    A running call on a Ray actor cannot be cancelled by Ray (``ray.cancel`` only sets a flag), so
    the interrupt is a KeyboardInterrupt raised in the trial's thread, armed only while the user's
    function runs. A trial still running ``KILL_GRACE_S`` after it (stuck in C code, or one that
    swallowed the interrupt) is ended by the scheduler killing the actor (:meth:`Job.overdue`);
    the pool replaces it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple | None = None  # (job_id, attempt) of the trial running now
        self._thread = 0  # the thread it runs on
        self._armed = False  # the user's function is running: an interrupt may be raised in it
        self._fired = False
        self._reason: str | None = None
        self._early: dict[tuple, str] = {}  # cancels that came before their trial started

    def run(self, spec: JobSpec | bytes, channel: Any = None) -> dict:
        """Run a trial; ``spec`` may come as ``pickle.dumps((spec, channel))`` (see ``_packed``)."""
        if isinstance(spec, bytes):
            spec, channel = pickle.loads(spec)
        token = (spec.job_id, spec.attempt)
        with self._lock:
            self._current, self._thread = token, threading.get_ident()
            self._armed = self._fired = False
            self._reason = self._early.pop(token, None)
        limit = None
        if spec.time_limit:
            reason = f"time_limits_per_job ({spec.time_limit:g}s) reached"
            limit = _alarm.schedule(spec.time_limit, lambda: self.cancel(token, reason))
        try:
            outcome = run_function(spec, channel, self._call)
        finally:
            if limit is not None:
                _alarm.cancel(limit)
            with self._lock:
                self._current = None
        if outcome["status"] == KILLED and self._reason:
            outcome["message"] = self._reason
        return outcome

    def _call(self, fn: Callable[[dict], Any], values: dict) -> Any:
        with self._lock:
            if self._reason is not None:  # cancelled before the function started
                raise KeyboardInterrupt
            self._armed = True
        try:
            return fn(values)
        finally:
            with self._lock:
                self._armed = False
                if self._fired:  # an interrupt that came as the function returned: drop it
                    _raise_in_thread(self._thread, None)

    def cancel(self, token: tuple, reason: str = "cancelled") -> None:
        """End trial ``token`` (running, or not started yet) as KILLED with ``reason``."""
        token = tuple(token)
        with self._lock:
            if self._current != token:
                if len(self._early) > 1000:  # cancels that came after their trial ended
                    self._early.clear()
                self._early[token] = reason
                return
            if self._reason is None:
                self._reason = reason
            if self._armed and not self._fired:
                self._fired = True
                _raise_in_thread(self._thread, KeyboardInterrupt)


# max_concurrency=3: a trial, a cancel() meanwhile, and room for a second one. max_restarts=0: a
# dead actor is replaced by the pool, never restarted behind its back.
TrialActor = ray.remote(max_concurrency=3, max_restarts=0, max_task_retries=0)(TrialWorker)


def ray_resources(resources: dict[str, float]) -> dict[str, Any]:
    """``task.resources`` as Ray ``.options()`` kwargs (custom names go in ``resources``)."""
    opts: dict[str, Any] = {}
    custom = {}
    for key, value in resources.items():
        if key in ("num_cpus", "num_gpus", "memory"):
            opts[key] = value
        else:
            custom[key] = value
    if custom:
        opts["resources"] = custom
    return opts


def _spec_kwargs(kwargs: dict) -> dict:
    """Pop the JobSpec fields out of a Job constructor's kwargs."""
    keys = ("job_id", "attempt", "time_limit", "generate_log", "collect_metrics", "env")
    return {k: kwargs.pop(k) for k in keys if k in kwargs}


_optioned: dict[tuple, Any] = {}


def _with_options(remote: Any, opts: dict[str, Any]) -> Any:
    """``remote.options(**opts)``, made once per set of options (it builds a class each time).

    Only plain options (numbers, strings, dicts of them) are cached: an object's repr may not say
    what it holds."""
    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return v is None or isinstance(v, (bool, int, float, str))

    if not plain(opts):
        return remote.options(**opts)
    key = (id(remote), repr(sorted(opts.items())))
    if key not in _optioned:
        if len(_optioned) > 64:
            _optioned.clear()
        _optioned[key] = remote.options(**opts)
    return _optioned[key]


LOST_ERRORS = tuple(getattr(ray.exceptions, name) for name in (
    "NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError",
    "OwnerDiedError", "ActorDiedError") if hasattr(ray.exceptions, name))


class Job:
    """One config's run on Ray. ``start()`` submits it, ``wait()`` blocks for its outcome,
    ``kill()`` ends it (its whole process group), ``status`` is PENDING → RUNNING → an end status.

    With a ``pool`` (:class:`~gml_ray.schedulers.pool.ActorPool`) the job runs on a free actor of
    it, which goes back to the pool when the outcome is read; otherwise it is a Ray task.
    """

    _remote: Any = None

    def __init__(self, spec: JobSpec, arg_dict: dict | None = None, config: Any = None,
                 resources: dict[str, float] | None = None, channel: Any = None,
                 pool: Any = None) -> None:
        self.spec = spec
        self.pool = pool
        self._slot: int | None = None
        self._actor: Any = None
        self.run_started: float | None = None  # when it began to run (its START message says)
        self._kill_asked_at: float | None = None  # when kill() asked the pool actor to stop it
        self._actor_ended = False
        self.name = spec.name
        self.arg_dict = dict(arg_dict or {})
        self.config = config
        self.resources = dict(resources or {"num_cpus": 1})
        self.channel = channel
        self.ref: Any = None
        self.outcome: dict | None = None
        self._status = PENDING
        self.kill_status: str | None = None  # the end status a kill() asked for
        self.kill_message = ""
        self.reward: float | None = None  # best reward_attribute value so far
        self.rendered: Any = None  # the RenderedJob it came from (its File args' copies)

    @property
    def command(self) -> str | None:
        return self.spec.command

    @property
    def status(self) -> str:
        if self.outcome is None and self.ref is not None and self._status in (PENDING, RUNNING):
            ready, _ = ray.wait([self.ref], timeout=0)
            if ready:
                self.wait()
        return self._status

    @property
    def _token(self) -> tuple[int, int]:
        """Names this run of the job to its actor (for ``cancel``)."""
        return (self.spec.job_id, self.spec.attempt)

    @property
    def starts_running(self) -> bool:
        """Whether it runs as soon as it is started (an actor of the pool is waiting for it)."""
        return self.pool is not None

    def mark_running(self) -> bool:
        """PENDING → RUNNING; False if the job was past PENDING already (or never started)."""
        if self._status == PENDING and self.outcome is None and self.ref is not None:
            self._status = RUNNING
            return True
        return False

    def start(self, **kwargs: Any) -> "Job":
        if self.ref is not None:
            return self
        if self.pool is not None:
            self._slot, self._actor = self.pool.acquire()
            self.ref = self._submit(self._actor)
            return self
        opts = ray_resources(self.resources)
        opts.update(kwargs)
        remote = _with_options(self._remote, opts)
        if self.channel is None or isinstance(self.channel, ChannelName):
            self.ref = remote.remote(pickle.dumps((self.spec, self.channel)))
        else:  # an actor handle needs Ray's own pickling
            self.ref = remote.remote(self.spec, self.channel)
        return self

    def wait(self, timeout: float | None = None) -> dict | None:
        """The outcome dict once the job ended (None if ``timeout`` passed first)."""
        if self.outcome is not None:
            return self.outcome
        ready, _ = ray.wait([self.ref], timeout=timeout)
        if not ready:
            return None
        return self.resolve()

    def _submit(self, actor: Any) -> Any:
        """Run this job on ``actor`` (of the pool); returns the call's ref."""
        raise TypeError(f"a {type(self).__name__} runs as a Ray task, not on an actor pool")

    def resolve(self) -> dict:
        """Read the finished Ray task's outcome (its error becomes an ERROR outcome)."""
        try:
            outcome = ray.get(self.ref)
        except ray.exceptions.TaskCancelledError:
            outcome = {"status": KILLED, "message": "cancelled before it started", "sent": 0}
        except ray.exceptions.RayError as exc:
            text = " ".join(str(exc).split())
            outcome = {"status": ERROR, "message": f"{type(exc).__name__}: {text[:300]}", "sent": None,
                       # the job's node or worker died under it: worth running again elsewhere
                       "lost": isinstance(exc, LOST_ERRORS)}
        # A pool actor that died after its job was asked to stop died of that stop.
        ended_by_kill = self._actor is not None and outcome.get("lost")
        if self.kill_status is not None and (outcome["status"] == KILLED or ended_by_kill):
            outcome["status"] = self.kill_status
            outcome["message"] = self.kill_message or outcome.get("message", "")
            outcome["lost"] = False
        self.outcome = outcome
        self._status = outcome["status"]
        if self.pool is not None and self._slot is not None:
            # No outcome from the actor (it died, or was ended): a fresh one replaces it.
            self.pool.release(self._slot, dead=outcome.get("sent", 0) is None)
            self._slot = None
        return outcome

    def kill(self, status: str = KILLED, message: str = "") -> None:
        """End the job; its status becomes ``status`` (KILLED, EARLY_STOPPED or ERROR)."""
        if self.ref is None or self.outcome is not None:
            return
        if self.kill_status is None:
            self.kill_status, self.kill_message = status, message
        if self._actor is not None:
            if self._kill_asked_at is None:
                self._kill_asked_at = time.time()
            self._actor.cancel.remote(self._token, message or "cancelled")
        else:
            ray.cancel(self.ref, force=False)

    def overdue(self, now: float) -> str | None:
        """Why this job, on a pool actor, should be ended with its actor: it outlived a kill() or
        its time limit (which the actor enforces, from the START it sent) by ``KILL_GRACE_S``.
        None if it should not."""
        if self._actor is None or self.outcome is not None or self._actor_ended:
            return None
        if self._kill_asked_at is not None and now - self._kill_asked_at > KILL_GRACE_S:
            return self.kill_message or "cancelled"
        limit = self.spec.time_limit
        if limit and self.run_started is not None and now - self.run_started > limit + KILL_GRACE_S:
            return f"time_limits_per_job ({limit:g}s) reached"
        return None

    def end_actor(self, reason: str) -> None:
        """Kill the job's pool actor; the job ends KILLED with ``reason`` (unless a kill() gave
        its status first). The pool replaces the actor."""
        self._actor_ended = True
        if self.kill_status is None:
            self.kill_status, self.kill_message = KILLED, reason
        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:  # noqa: BLE001 - gone already
            pass


class CommandJob(Job):
    """Runs a shell command (the rendered template) in the job directory's process group."""

    _remote = _run_command_remote

    def __init__(self, command: str, name: str, arg_dict: dict | None = None,
                 pavi_compare_id: Any = None, symlink_paths: Any = None, *,
                 job_dir: str | None = None, cwd: str | None = None, **kwargs: Any) -> None:
        spec = JobSpec(name=name, command=command, cwd=cwd or os.getcwd(),
                       job_dir=job_dir or os.path.join(os.getcwd(), name), **_spec_kwargs(kwargs))
        super().__init__(spec, arg_dict, **kwargs)


class FunctionJob(Job):
    """Calls ``module:callable`` with the config inside a Ray worker (a function trial): on an
    actor of ``pool`` (a pool of :data:`TrialActor`) when given one, else as a Ray task."""

    _remote = _run_function_remote

    def _submit(self, actor: Any) -> Any:
        if self.channel is None or isinstance(self.channel, ChannelName):
            return actor.run.remote(pickle.dumps((self.spec, self.channel)))
        return actor.run.remote(self.spec, self.channel)  # an actor handle needs Ray's pickling

    def __init__(self, function: str, name: str, values: dict, arg_dict: dict | None = None, *,
                 job_dir: str | None = None, cwd: str | None = None, **kwargs: Any) -> None:
        spec = JobSpec(name=name, function=function, values=dict(values), cwd=cwd or os.getcwd(),
                       job_dir=job_dir or os.path.join(os.getcwd(), name), **_spec_kwargs(kwargs))
        super().__init__(spec, arg_dict, **kwargs)
