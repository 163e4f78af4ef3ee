"""The run's MLflow logger (``tracking.mlflow``): a background thread, off the search's path.

The loop only queues the id of each job that ends (:meth:`MlflowTracker.job_ended`, a queue put);
the thread reads the job's row and scalars from the store with a connection of its own, once the
loop has committed the job's end, maps them (:func:`gml_ray.views.mlflow_records.job_record`, the
mapping ``ctl export-mlflow`` uses) and logs them in ``log_batch`` calls. Importing MLflow and
connecting happen in the thread too.

Failures never reach the search. A tracking server that cannot be reached (or a store that is
busy) is one warning, in ``scheduler.log`` and on the run's console, and the thread retries with
a backoff (1 s doubling to 30 s) while the run goes on; jobs wait in its queue. A request MLflow
refuses as such (a permanent error) skips that job. When the run ends, :meth:`close` waits while the
thread progresses (bounded; a tracker still down is tried every second for 10 s more, so a server
restarted near the end gets the rest): it logs what is queued, then every ended job the experiment does not hold
current (paused jobs retired at the end, a job whose logging was cut short), then ends the parent
run. What is still missing after that, ``gml-ray ctl export-mlflow --task T`` logs later: runs
are found by their tags, so nothing is logged twice.
"""
from __future__ import annotations

import importlib
import logging
import os
import queue
import threading
import time
from collections import deque
from typing import Any, Callable

from gml_ray.config.tracking import MlflowConfig
from gml_ray.store.store import Store
from gml_ray.views.mlflow_export import MlflowSink, MlflowTarget, is_permanent, resolve_target
from gml_ray.views.mlflow_records import job_record, loggable
from gml_ray.vocab import TaskStatus

log = logging.getLogger("gml_ray.scheduler")

FINAL_WAIT_S = 30.0  # at a finished run's end: this long without progress and it stops waiting
FINAL_CAP_S = 600.0  # ... and never longer than this in all, however slowly it progresses
STOPPED_WAIT_S = 5.0  # a run that was stopped or failed waits less: a preemption's grace is short
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 30.0  # retries while MLflow cannot be reached
# At the run's end a tracker that is still down is tried again every CLOSING_PAUSE_S for this long
# (a server restarted near the end gets the rest at once, not after the backoff); then the export.
CLOSING_RETRY_S, CLOSING_PAUSE_S = 10.0, 1.0
COMMIT_WAIT_S = 30.0  # how long a queued job's row may take to show its end (the loop's commit)
POLL_S = 0.05  # how often the thread looks again for that commit
# The MLflow REST client's own retries (7, with a backoff of minutes) and 120 s timeout would hold
# the thread far longer than its own backoff; set for this process (the scheduler actor's) unless
# the user set them.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class MlflowTracker:
    """Logs a run's ended jobs to MLflow from a daemon thread (see the module's docstring).

    ``notify`` takes the one warning, for the console and the log (the loop's
    :meth:`~gml_ray.engine.loop.SchedulerCore.notify`, thread-safe). Calls from
    the loop: :meth:`start`, :meth:`job_ended` (never blocks), :meth:`close` (bounded), :meth:`stats`.
    """

    def __init__(self, cfg: MlflowConfig, work_dir: str, task: str, notify: Callable[[str], None]) -> None:
        self.target: MlflowTarget = resolve_target(work_dir, task, cfg)
        self.work_dir, self.task, self._notify = work_dir, task, notify
        self._queue: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._closing = threading.Event()  # set by close(): also cuts a backoff short
        self._closed_at = 0.0  # when close() began (time.monotonic())
        self._abandoned = False  # close() stopped waiting: the thread stops at its next step
        self._thread: threading.Thread | None = None
        self._warned = False  # the one console warning was given
        self._warn_lock = threading.Lock()  # close() may warn while an abandoned thread does
        self._told: set[int] = set()  # job ids the loop queued
        self._done: set[int] = set()  # job ids logged, or found logged and current
        self.complete = False  # the final pass ran to its end: everything ended is logged
        self.logged = self.current = self.refused = self.retries = 0
        self.busy_s = 0.0  # the thread's time reading the store, mapping and calling MLflow
        self.connect_s = 0.0  # of which importing MLflow and finding the experiment and runs
        self.close_s = 0.0  # how long the run's end waited for the thread
        self.cpu_s = self.connect_cpu_s = 0.0  # the thread's CPU time (a busy machine inflates busy_s)
        self.calls = 0
        self._stirred = time.monotonic()  # the thread's last progress (a step of its set-up, a job logged)
        # Importing MLflow and the first connection (a new local store makes its schema: about 4 s
        # on an idle machine, far more on a loaded one) are not "no progress": the stall timer
        # starts once connected. A remote server that does not answer fails the connection
        # within MLFLOW_HTTP_REQUEST_TIMEOUT, which bounds this phase.
        self._setting_up = True

    # ---- the loop's side ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (a daemon: it never holds the scheduler's process open)."""
        self._thread = threading.Thread(target=self._main, name="gml-mlflow", daemon=True)
        self._thread.start()

    def job_ended(self, job_id: int, name: str) -> None:
        """Queue an ended job (called by the loop as the job ends; its row is committed later)."""
        self._told.add(job_id)
        self._queue.put((job_id, name))

    def close(self, status: str) -> None:
        """The run ended with task ``status``: wait for the thread's final pass — a finished run
        while the thread makes progress (until :data:`FINAL_WAIT_S` pass without any, at most
        :data:`FINAL_CAP_S`), a run that did not finish at most :data:`STOPPED_WAIT_S`.
        Never raises; what it could not log is named in ``scheduler.log`` (and once on the console)."""
        t0 = time.perf_counter()
        try:
            # The wait for progress starts now: an outage before the end is not a stalled final
            # pass (the thread, woken from its backoff, tries again at once).
            self._closed_at = self._stirred = time.monotonic()
            self._closing.set()
            if self._thread is not None:
                self._wait_for_thread(self._thread, finished=status == TaskStatus.FINISHED)
                self._abandoned = self._thread.is_alive()
            self.close_s = time.perf_counter() - t0
            if not self.complete:
                missing = len(self._told - self._done.copy())  # the thread may still run
                what = f"{missing} of its {len(self._told)} ended jobs" if missing else "its last changes"
                self._warn(f"MLflow: {what} could not be logged to {self.target.tracking_uri} before the "
                           f"run ended; `gml-ray ctl export-mlflow --task {self.task} --workdir "
                           f"{self.work_dir}` logs them later")
        except Exception:  # noqa: BLE001 - tracking never fails a search
            log.exception("MLflow tracking: closing failed")

    def _wait_for_thread(self, thread: threading.Thread, finished: bool) -> None:
        # A loaded machine can take longer than FINAL_WAIT_S to import MLflow and make a new local
        # store's schema: a finished run waits on while the thread moves; a stalled one (a server
        # that stopped answering mid-request) is left to the export.
        start = time.monotonic()
        while thread.is_alive():
            now = time.monotonic()
            if not finished and now - start >= STOPPED_WAIT_S:
                return
            stalled = not self._setting_up and now - self._stirred >= FINAL_WAIT_S
            if finished and (stalled or now - start >= FINAL_CAP_S):
                return
            thread.join(0.1)

    def stats(self) -> dict[str, Any]:
        """What the logger did (the run's summary, benchmarks)."""
        return {"logged": self.logged, "current": self.current, "refused": self.refused,
                "retries": self.retries, "complete": self.complete, "busy_s": self.busy_s,
                "connect_s": self.connect_s, "close_s": self.close_s, "calls": self.calls,
                "cpu_s": self.cpu_s, "connect_cpu_s": self.connect_cpu_s,
                "tracking_uri": self.target.tracking_uri, "experiment": self.target.experiment}

    # ---- the thread ---------------------------------------------------------------------------------

    def _warn(self, text: str) -> None:
        """The run's one tracking warning (scheduler.log and the console); later ones are
        logged at INFO: an outage that lasts, and what it left unlogged, are one story."""
        with self._warn_lock:
            first, self._warned = not self._warned, True
        if first:
            self._notify(text)  # the loop's notify writes it to scheduler.log as a WARNING too
        else:
            log.info("%s", text)

    def _main(self) -> None:
        try:
            self._work()
        except Exception:  # noqa: BLE001 - a bug here must not reach the search
            log.exception("MLflow tracking stopped")
        finally:
            self.cpu_s = time.thread_time()

    def _work(self) -> None:
        for key, value in HTTP_ENV.items():
            os.environ.setdefault(key, value)
        importlib.import_module("mlflow")  # the slow import while the run goes on, not at its end
        self._stirred = time.monotonic()
        store = Store(self.work_dir, create=False)
        try:
            sink = self._logging_loop(store)
            if sink is not None and not self._abandoned:
                self._final_pass(store, sink)
        finally:
            store.close()

    def _logging_loop(self, store: Store) -> MlflowSink | None:
        """Log queued jobs until the run closes; returns the sink (None: MLflow was never reached,
        or refused the experiment)."""
        pending: deque[tuple[int, str]] = deque()
        sink: MlflowSink | None = None
        backoff, down = BACKOFF_FIRST_S, False
        while not self._abandoned:
            self._take(pending, block=not pending and not self._closing.is_set())
            if not pending and self._closing.is_set():
                break
            if not pending:
                continue
            try:
                if sink is None:
                    sink = self._connect(store)
                self._log(store, sink, *pending[0])
                pending.popleft()
                if down:
                    log.info("MLflow tracking: %s reachable again", self.target.tracking_uri)
                backoff, down = BACKOFF_FIRST_S, False
            except Exception as exc:  # noqa: BLE001 - MLflow, requests, SQLAlchemy: any of them
                if is_permanent(exc):
                    if sink is None:  # the experiment or parent run itself is refused
                        self._warn(f"MLflow tracking: {self.target.tracking_uri} refused the experiment "
                                   f"{self.target.experiment!r} ({_one_line(exc)}): nothing is logged this run")
                        return None
                    job_id, name = pending.popleft()
                    self.refused += 1
                    text = (f"MLflow tracking: {name} was not logged ({_one_line(exc)}); "
                            f"`gml-ray ctl export-mlflow --task {self.task}` tries again")
                    if self._warned:  # each refused job is news for the log, not the console
                        log.warning("%s", text)
                    else:
                        self._warn(text)
                    continue
                down = True
                self.retries += 1
                self._warn(f"MLflow tracking at {self.target.tracking_uri} is unreachable ({_one_line(exc)}): "
                           f"the search goes on and logging is retried in the background; what is still "
                           f"missing at its end, `gml-ray ctl export-mlflow --task {self.task} --workdir "
                           f"{self.work_dir}` logs later")
                if self._closing.is_set():  # the run has ended: no long backoff
                    if time.monotonic() - self._closed_at >= CLOSING_RETRY_S:
                        return None  # still down: the export logs the rest
                    time.sleep(CLOSING_PAUSE_S)
                    continue
                log.info("MLflow tracking: retrying in %gs", backoff)
                self._closing.wait(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
        return sink

    def _take(self, pending: deque[tuple[int, str]], block: bool) -> None:
        """Move what the loop queued into ``pending`` (waiting a little for it when ``block``)."""
        try:
            if block:
                pending.append(self._queue.get(timeout=0.2))
            while True:
                pending.append(self._queue.get_nowait())
        except queue.Empty:
            pass

    def _connect(self, store: Store) -> MlflowSink:
        t0 = time.perf_counter()
        try:
            sink = MlflowSink(self.target, store.require_task(self.task))
            self._stirred = time.monotonic()
            sink.start()
            return sink
        finally:
            self._stirred = time.monotonic()
            self._setting_up = False  # connected, or failed (then retried with a backoff)
            self.connect_cpu_s = self.cpu_s = time.thread_time()  # MLflow's import and set-up, mostly
            spent = time.perf_counter() - t0
            self.connect_s += spent
            self.busy_s += spent

    def _log(self, store: Store, sink: MlflowSink, job_id: int, name: str) -> None:
        """Log one queued job once the loop's commit shows it ended."""
        deadline = time.monotonic() + COMMIT_WAIT_S
        while True:
            t0 = time.perf_counter()
            rows = store.jobs(self.task, [name])
            self.busy_s += time.perf_counter() - t0
            if rows and loggable(rows[0]):
                break
            if self._closing.is_set() or time.monotonic() > deadline:
                return  # not committed as ended: the final pass (or the export) sees it as it is
            time.sleep(POLL_S)
        job = rows[0]
        t0 = time.perf_counter()
        calls = sink.calls
        try:
            if sink.current(job):
                self.current += 1
            else:
                task_row = sink.task
                sink.log_job(job_record(task_row, job, store.scalars(self.task, [job_id])))
                self.logged += 1
            self._done.add(job_id)
            self._stirred = time.monotonic()
        finally:
            self.cpu_s = time.thread_time()
            self.busy_s += time.perf_counter() - t0
            self.calls += sink.calls - calls

    def _final_pass(self, store: Store, sink: MlflowSink) -> None:
        """Every ended job not current in MLflow, then the parent run's summary and end."""
        t0 = time.perf_counter()
        calls = sink.calls
        try:
            jobs = store.jobs(self.task)
            for job in jobs:
                if self._abandoned:
                    return
                if not loggable(job) or sink.current(job):
                    continue
                sink.log_job(job_record(sink.task, job, store.scalars(self.task, [job["job_id"]])))
                self.logged += 1
                self._done.add(int(job["job_id"]))
                self._stirred = time.monotonic()
            self._done |= {int(j["job_id"]) for j in jobs if loggable(j)}
            sink.finish(store.require_task(self.task), jobs)
            self.complete = True
        except Exception as exc:  # noqa: BLE001 - the export logs the rest
            self._warn(f"MLflow tracking: the run's last logging failed ({_one_line(exc)})")
        finally:
            self.busy_s += time.perf_counter() - t0
            self.calls += sink.calls - calls


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
