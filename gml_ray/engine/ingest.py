"""Scalar ingestion: a job's reported records → store rows, its latest values, its reward.

The scheduler hands every batch of :class:`~gml_ray.engine.spec.ScalarRecord` to
:meth:`ScalarIngest.take`; rows are built once, in their store form, and written in bulk by
:meth:`ScalarIngest.save` (after the next jobs started: workers never wait for SQLite).
"""
from __future__ import annotations

import json
import logging
import time
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps uses, in C
from typing import Any, Iterable

from gml_ray.checkpoints import RECORD_KEY as CHECKPOINT
from gml_ray.engine.messages import SKIPPED
from gml_ray.engine.spec import job_name
from gml_ray.objectives import Outcome, OutcomeSpec
from gml_ray.optimize import best
from gml_ray.store.schema import FLAG_OK, classify, storable_int
from gml_ray.store.store import Store

log = logging.getLogger("gml_ray.scheduler")

SAVE_EVERY = 20_000  # scalar rows kept in memory at most before they are written
TAG_MAX = 200  # characters of a tag that are kept (a longer one is cut, with one warning per job)
# Tags kept in a job's ``latest`` column (what `ctl show` and `--watch` read): the
# first ones it reported, and always the reward attribute and the task's scalar columns. Every
# scalar is stored whatever this says; it only keeps the job row (rewritten per batch) small.
LATEST_MAX_TAGS = 1000


class ScalarIngest:
    """Per-run ingestion state: unsaved rows, each running job's latest values, its reward
    history (for the assessor, when ``keep_history``) and the job-row fields not written yet."""

    def __init__(self, store: Store, task: str, reward_attribute: str, optimize_mode: str,
                 keep_history: bool, spec: OutcomeSpec | None = None, judged: str | None = None) -> None:
        self.store, self.task = store, task
        self.reward_attribute = reward_attribute
        self._mode = optimize_mode
        self.keep_history = keep_history
        # Several objectives or constraints: each job's last value of the scalars they read, and
        # its outcome (queued as the job row's rewards/violations/feasible).
        self.spec = spec if spec is not None and not spec.plain else None
        self._tracked = self.spec.tags if self.spec is not None else set()
        self._last: dict[int, dict[str, float | None]] = {}
        self.outcomes: dict[int, Outcome] = {}
        self.last_primary: float | None = None  # the last batch's last finite reward value
        self.judged = judged or reward_attribute  # the tag the assessor's history follows
        self.judged_new = False  # whether the last batch carried a finite judged value
        self.history: dict[int, list[dict]] = {}  # job id -> [{'iteration', 'value', 'created'}]
        # job id -> {tag: its last value as a JSON fragment '"tag": value'}: a batch re-joins
        # these instead of re-encoding every tag the job ever reported (json.dumps per batch of a
        # job with 50,000 tags made ingestion quadratic)
        self._latest: dict[int, dict[str, str]] = {}
        self._unsaved: list[tuple] = []  # scalar rows not written to the store yet
        self.row_updates: dict[int, dict[str, Any]] = {}  # job id -> job row fields to write
        self.ingested, self.seconds = 0, 0.0  # scalars taken, and the time it took
        self._warned: set[tuple] = set()  # (job id, what): warned once in scheduler.log
        self._keep: set[str] | None = None  # tags `latest` keeps past LATEST_MAX_TAGS
        self._announced: list[dict] = []  # checkpoint announcements of the last batch taken
        self.last_rewards: list[tuple[int | None, float]] = []  # the last batch's (step, finite reward)

    def take(self, job_id: int, records: Iterable[dict], attempt: int) -> float | None:
        """Take a batch of a job's records; returns the best finite reward value in it (or None).

        The job's ``latest`` column is queued in :attr:`row_updates`; the caller adds the reward
        and takes the batch's checkpoint announcements (:meth:`pop_announcements`)."""
        t0 = time.perf_counter()
        self.last_rewards = []
        self.judged_new = False
        history = self.history.setdefault(job_id, []) if self.keep_history else None
        task, reward_attribute, append = self.task, self.reward_attribute, self._unsaved.append
        judged = self.judged
        last: dict = {}
        rewards: list[float] = []
        n = 0
        value: float | None
        for rec in records:
            n += 1
            get = rec.get
            tag, raw, step = get("t"), get("v"), get("s")
            if tag.__class__ is not str or len(tag) > TAG_MAX:
                if tag is None and SKIPPED in rec:  # the pipe reader's note, not a scalar
                    n -= 1
                    self._skipped(job_id, rec)
                    continue
                if tag is None and CHECKPOINT in rec:  # a checkpoint announcement, in its order
                    n -= 1
                    self._announced.append(rec)
                    continue
                tag = self._tag(job_id, tag)
            if step.__class__ is not int and step is not None:
                step = self._step(job_id, tag, step)
            # A finite float, the common case, without a call: inf - inf and nan - nan are nan.
            if type(raw) is float and raw - raw == 0.0:
                value, text, flag = raw, None, FLAG_OK
            else:
                value, text, flag = classify(raw)
            append((task, job_id, tag, step, value, text, flag, get("c"), attempt))
            last[tag] = raw
            if tag == reward_attribute and flag == FLAG_OK and value is not None:  # FLAG_OK: a float
                rewards.append(value)
                self.last_rewards.append((step, value))
            if tag == judged and flag == FLAG_OK and value is not None:
                self.judged_new = True
                if history is not None:
                    history.append({"iteration": step, "value": value, "created": get("c")})
        latest = self._latest.setdefault(job_id, {})
        for tag, raw in last.items():
            if tag not in latest and len(latest) >= LATEST_MAX_TAGS and not self._kept(job_id, tag):
                continue
            latest[tag] = f"{_json_str(tag)}: {_json_value(raw)}"
        # always a field to write (the caller updates the job row with what is queued)
        self.row_updates.setdefault(job_id, {})["latest"] = "{" + ", ".join(latest.values()) + "}"
        if self._tracked and not self._tracked.isdisjoint(last):
            self._outcome(job_id, last)
        self.ingested += n
        self.seconds += time.perf_counter() - t0
        if len(self._unsaved) >= SAVE_EVERY:
            self.save()
        self.last_primary = rewards[-1] if rewards else None
        return best(rewards, self._mode) if rewards else None

    def settle(self, job_id: int) -> Outcome | None:
        """The outcome of a job that ended (one that reported none of the tracked scalars has one
        too: no values, every constraint broken), queued for its row; None for a plain task."""
        if self.spec is not None and job_id not in self.outcomes:
            self._outcome(job_id, {})
        return self.outcomes.get(job_id)

    def reported(self, job_id: int) -> set[str]:
        """The objective and constraint scalars ``job_id`` reported (with a finite value or not)."""
        return set(self._last.get(job_id, ()))

    def _outcome(self, job_id: int, last: dict[str, Any]) -> None:
        """The job's outcome from its last values of the tracked scalars (a value that is not a
        finite number counts as none), queued for its row."""
        assert self.spec is not None
        values = self._last.setdefault(job_id, {})
        for tag in self._tracked.intersection(last):
            value, _text, flag = classify(last[tag])
            values[tag] = value if flag == FLAG_OK else None
        outcome = self.outcomes[job_id] = self.spec.outcome(values)
        row = self.row_updates.setdefault(job_id, {})
        row["rewards"] = json.dumps(outcome.values)
        if self.spec.constraints:
            row["violations"] = json.dumps([v if v != float("inf") else None for v in outcome.violations])
            row["feasible"] = int(outcome.feasible)

    # ---- the rare cases, out of take's loop ----------------------------------------------------

    def _warn_once(self, job_id: int, key: Any, text: str, level: int = logging.WARNING) -> None:
        if (job_id, key) not in self._warned:
            self._warned.add((job_id, key))
            log.log(level, "%s: %s", job_name(job_id), text)

    def _tag(self, job_id: int, tag: Any) -> str:
        """A tag that is not text (a hand-written pipe line may carry anything), or is too long."""
        if tag.__class__ is not str:
            try:
                tag = str(tag)
            except ValueError:  # an int beyond Python's digit limit inside a container
                tag = f"<{type(tag).__name__}>"
        if len(tag) > TAG_MAX:
            self._warn_once(job_id, "long tag",
                            f"a scalar tag of {len(tag):,} characters was cut to its first {TAG_MAX} "
                            f"({tag[:40]!r}...; warned once per job)")
            tag = tag[:TAG_MAX]
        return tag

    def _step(self, job_id: int, tag: str, step: Any) -> int | None:
        """A step that is not an int: an integral float counts; anything else (text, a bool,
        3.5, inf, a list) is stored without a step, with one warning per job and tag."""
        if step.__class__ is float:
            fixed = storable_int(step)
            if fixed is not None:
                return fixed
            what = f"its step {step!r} is not an integer"
        else:
            what = f"its step {_short(step)} is not a number"
        self._warn_once(job_id, ("step", tag), f"scalar {tag!r}: {what} (stored without a step; "
                        f"warned once per job and tag)")
        return None

    def _skipped(self, job_id: int, note: dict) -> None:
        count, first = note.get(SKIPPED), note.get("first")
        self._warn_once(job_id, ("skipped", count, first),
                        f"{count} line{'s' if count != 1 else ''} on the scalar pipe "
                        f"{'were' if count != 1 else 'was'} not scalar records "
                        f"(first: {first!r}); {'they were' if count != 1 else 'it was'} skipped")

    def _kept(self, job_id: int, tag: str) -> bool:
        """Whether ``latest``, full, still takes ``tag`` (the reward attribute, a scalar column)."""
        if self._keep is None:
            task = self.store.get_task(self.task) or {}
            self._keep = {self.reward_attribute, *(task.get("scalar_columns") or [])}
        self._warn_once(job_id, "many tags",
                        f"more than {LATEST_MAX_TAGS} scalar tags: its latest values (ctl show) keep the "
                        f"first {LATEST_MAX_TAGS} and the task's scalar columns; every scalar is stored",
                        logging.INFO)
        return tag in self._keep

    # ---- the job row, the store ----------------------------------------------------------------

    def pop_announcements(self) -> list[dict]:
        """The checkpoint announcements of the batch :meth:`take` read last (removed)."""
        out, self._announced = self._announced, []
        return out

    def pop_updates(self, job_id: int) -> dict[str, Any]:
        """The job-row fields queued for ``job_id`` (removed from the queue)."""
        return self.row_updates.pop(job_id, {})

    def forget(self, job_id: int) -> None:
        """Drop a job's in-memory state (it ended, or runs again from scratch)."""
        self.history.pop(job_id, None)
        self._latest.pop(job_id, None)
        self._last.pop(job_id, None)
        self.outcomes.pop(job_id, None)
        self.row_updates.pop(job_id, None)
        if self._warned:
            self._warned = {w for w in self._warned if w[0] != job_id}

    def save(self) -> None:
        """Write the unsaved scalar rows."""
        if self._unsaved:
            t0 = time.perf_counter()
            rows, self._unsaved = self._unsaved, []
            self.store.insert_scalar_rows(rows)
            self.seconds += time.perf_counter() - t0


def _json_value(value: Any) -> str:
    """A reported value as JSON for the ``latest`` column (NaN and inf as text)."""
    if value.__class__ is float:
        return repr(value) if value - value == 0.0 else f'"{value}"'
    if value.__class__ is str:
        return _json_str(value)
    try:
        return json.dumps(value)
    except (TypeError, ValueError):  # not JSON-able (a function trial's sink takes anything)
        return json.dumps(classify(value)[1])


def _short(value: Any) -> str:
    """A value for a warning line: its repr, cut."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit inside a container
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
