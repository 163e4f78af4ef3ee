"""A job's side of the message channel: ``(kind, job_id, attempt, payload)`` tuples.

Kinds (:mod:`.channel`): START (payload: node, pid, started), SCALARS (a list of
:class:`~gml_ray.engine.spec.ScalarRecord`) and EXIT (payload: the exit code a function trial
gave ``os._exit``, sent just before its process ends). A :class:`Sender` counts what it sent, so the
scheduler knows when it has every message of an ended job; a :class:`Batcher` holds a command
job's messages for its first moments (a short job sends none); :func:`pump` reads the scalar pipe.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any, Callable

import ray

from gml_ray.checkpoints import RECORD_KEY as CHECKPOINT
from gml_ray.engine.channel import SCALARS, START, ChannelName
from gml_ray.engine.spec import JobSpec
from gml_ray.engine.timers import alarm
from gml_ray.vocab import JobStatus

EXIT = "exit"  # a function trial called os._exit(code): its process ends (payload: the code)

# A record in a batch that is not a scalar but a note from the job's pipe reader: how many lines
# of the scalar pipe were not scalar records (``{SKIPPED: n, "first": the first, cut}``).
SKIPPED = "skipped"

# A job shorter than this sends nothing until it ends; a longer one streams its reports at most
# this often. GML_STREAM_INTERVAL_S (in the workers' environment) overrides it.
STREAM_AFTER_S = float(os.environ.get("GML_STREAM_INTERVAL_S", "0.05"))


def node_name() -> str:
    """``<ip> <node id prefix>``: the IP for people, the id to tell apart nodes on one host."""
    if not ray.is_initialized():  # a job run outside Ray must not start (or join) a cluster
        return socket.gethostname()
    try:
        node_id = ray.get_runtime_context().get_node_id() or ""
        return f"{ray.util.get_node_ip_address()} {node_id[:8]}".strip()
    except Exception:  # noqa: BLE001 - outside Ray
        return socket.gethostname()


class Sender:
    """Sends messages to the channel (or keeps them when there is none) and counts them."""

    def __init__(self, spec: JobSpec, channel: Any) -> None:
        self.spec, self.channel, self.sent = spec, channel, 0
        self.kept: list[dict] = []
        self._lock = threading.Lock()

    def send(self, kind: str, payload: Any, wait: bool = True, timeout: float | None = None) -> None:
        """Send a message; ``wait``: until the channel has it (at most ``timeout`` seconds)."""
        with self._lock:
            if self.channel is None:
                if kind == SCALARS:
                    self.kept.extend(payload)
                return
            channel = self.channel.handle() if isinstance(self.channel, ChannelName) else self.channel
            ref = channel.put.remote((kind, self.spec.job_id, self.spec.attempt, payload))
            self.sent += 1
        if wait:
            ray.get(ref, timeout=timeout)


class Batcher:
    """A command job's messages: nothing for its first ``STREAM_AFTER_S``, then START and its
    reports as they come. A job that ends sooner sends no message at all; its reports go back in
    its outcome (``held``), which saves the scheduler a wake-up and a round trip per short job.
    """

    def __init__(self, sender: Sender, start: dict) -> None:
        self.sender = sender
        self.held: list[dict] = []  # reports not sent yet
        self._live = False
        self._lock = threading.Lock()
        self._token = alarm.schedule(STREAM_AFTER_S, lambda: self._go_live(start))

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
        alarm.cancel(self._token)


SKIP_SAMPLE = 80  # characters of the first skipped line a note quotes


def pump(fd: int, sink: Callable[[list[dict]], None]) -> int:
    """Read JSON lines from the scalar pipe until EOF and hand them to ``sink`` in batches.

    A line that is not a scalar record (not JSON, torn, or not an object with ``"t"`` and ``"v"``)
    nor a checkpoint announcement (``"ckpt"``) is skipped, never the lines around it; at EOF one note record (``{SKIPPED: n, "first": ...}``)
    goes to ``sink`` with how many were, and the scheduler says so once in ``scheduler.log``.
    Returns that count."""
    parts: list[bytes] = []  # a line still being written, in pieces (no copy per read)
    skipped, first = 0, ""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        if chunk:
            cut = chunk.rfind(b"\n")
            if cut < 0:
                parts.append(chunk)
                continue
            parts.append(chunk[:cut])
            lines = b"".join(parts)
            parts = [chunk[cut + 1:]] if cut + 1 < len(chunk) else []
        else:
            lines, parts = b"".join(parts), []
        records = []
        for line in lines.split(b"\n"):
            if line.strip():
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):  # torn or foreign: skip it, keep the rest
                    rec = None
                if isinstance(rec, dict) and (("t" in rec and "v" in rec) or CHECKPOINT in rec):
                    records.append(rec)
                else:
                    if not skipped:
                        first = line[:SKIP_SAMPLE * 4].decode("utf-8", "replace")[:SKIP_SAMPLE]
                    skipped += 1
        if not chunk and skipped:
            records.append({SKIPPED: skipped, "first": first})
        if records:
            sink(records)
        if not chunk:
            return skipped


def exit_outcome(outcome: dict, code: int | None, killed: bool) -> dict:
    """The outcome of a job whose worker ended without one (its actor died) when the job said,
    with an EXIT message, that it called ``os._exit(code)``: FINISHED for 0, else ERROR
    ``exited with code N``. Unchanged when it did not, or when the scheduler ended it (``killed``)."""
    if code is None or killed or outcome.get("sent") is not None:
        return outcome
    status, message = (JobStatus.FINISHED, "") if code == 0 else (JobStatus.ERROR, f"exited with code {code}")
    return {**outcome, "status": status, "message": message, "exit_code": code, "lost": False}
