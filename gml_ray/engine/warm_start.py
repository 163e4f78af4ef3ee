"""Warm start: a new task's searcher learns the results of earlier tasks before its first proposal.

``gml-ray run CONFIG --task NEW --warm-start-from OLD[,OLD2,archive.tar.gz]``. Each source is a
task of the same work dir or a ``ctl export`` archive (read in place, not imported). Its jobs that
ended with a result (FINISHED, EARLY_STOPPED, KILLED; not ERROR) are re-read under the NEW task's
objectives from their scalars (so a changed ``reward_attribute`` or new constraints count), mapped
onto the new search space and told to the searcher as results (``searcher.tell``) before it is
asked for anything. They are not jobs of the new task: they are not run again, do not count toward
``max_tries`` and appear in no job table; ``ctl show`` says where the task started from.

Mapping a result onto the new space:

* an arg the new space lacks is dropped;
* an arg the new space has and the result lacks takes the arg's only value when it has one;
  otherwise the result is skipped (counted: ``lacks arg X``) — there is no default to assume;
* a config outside the new space (a value outside a narrowed range, a removed choice) is skipped
  (counted: ``outside the space``); so is a result without a value of the first objective, and a
  config told already (by an earlier source).
"""
from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from gml_ray.config.task import TaskConfig
from gml_ray.errors import UserError
from gml_ray.objectives import Outcome, OutcomeSpec, outcome_of_series
from gml_ray.plugins.searcher import BaseSearcher
from gml_ray.searchers.leaves import FlatSpace
from gml_ray.space import Dict, config_key
from gml_ray.store.archive import read_archive_rows
from gml_ray.store.schema import FLAG_OK
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus

log = logging.getLogger("gml_ray.scheduler")

RESULT_STATUSES = (JobStatus.FINISHED, JobStatus.EARLY_STOPPED, JobStatus.KILLED)


@dataclass
class Result:
    """One earlier job's result, mapped onto the new task."""

    config: dict
    reward: float | None
    outcome: Outcome | None


@dataclass
class WarmStart:
    """What a warm start told the searcher, and what it skipped (reason → count)."""

    sources: list[str]
    told: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)  # args of earlier tasks the new space lacks

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def summary(self) -> str:
        """One line: ``warm-started from a, b: 12 results told; skipped 3 (2 outside the space, ...)``."""
        text = f"warm-started from {', '.join(self.sources)}: {self.told} result{'s' if self.told != 1 else ''} told"
        if self.skipped:
            parts = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]))
            text += f"; skipped {sum(self.skipped.values())} ({parts})"
        if self.dropped:
            text += f"; dropped args {', '.join(sorted(self.dropped))}"
        return text

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> "WarmStart | None":
        """What a task row's ``warm_start`` says (None: the task started cold)."""
        if not task.get("warm_start"):
            return None
        data = json.loads(task["warm_start"])
        return cls(list(data.get("sources") or []), int(data.get("told") or 0), dict(data.get("skipped") or {}),
                   set(data.get("dropped") or []))

    def to_json(self) -> str:
        return json.dumps({"sources": self.sources, "told": self.told, "skipped": self.skipped,
                           "dropped": sorted(self.dropped)})


def resolve_sources(store: Store, task: str, text: str) -> list[str]:
    """``--warm-start-from``'s comma-separated sources, checked: a task of this work dir (not
    ``task`` itself) or an existing ``.tar.gz`` archive (made absolute). UserError naming a bad one."""
    out: list[str] = []
    for source in (s.strip() for s in text.split(",")):
        if not source:
            continue
        if source.endswith((".tar.gz", ".tgz")):
            if not os.path.isfile(source):
                raise UserError(f"--warm-start-from: no such archive: {source}")
            out.append(os.path.abspath(source))
        elif source == task:
            raise UserError(f"--warm-start-from: {task} is the task being run (`--resume` continues it)")
        else:
            store.require_task(source)  # "no task named ... (did you mean ...)"
            out.append(source)
    if not out:
        raise UserError("--warm-start-from needs a task name or an archive path")
    return out


def _source_rows(store: Store, source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(job rows, scalar rows) of a source: a task of ``store`` or an archive's rows."""
    if os.path.isabs(source):
        rows = read_archive_rows(source)
        jobs = [dict(j) for j in rows.get("jobs", [])]
        for j in jobs:
            if isinstance(j.get("config"), str):
                j["config"] = json.loads(j["config"])
        return jobs, list(rows.get("scalars", []))
    jobs = store.jobs(source, columns=("status", "config", "attempt"))
    return jobs, store.scalars(source)


def _series(scalars: Iterable[dict[str, Any]], attempts: dict[int, int],
            tags: set[str]) -> dict[int, dict[str, list[float | None]]]:
    """Job id → tag → its values in report order (None: not a finite number), of the job's last
    attempt only."""
    mine = [s for s in scalars if s.get("tag") in tags
            and int(s.get("attempt") or 1) == attempts.get(int(s.get("job_id") or 0), 1)]
    mine.sort(key=lambda s: -1 if s.get("step") is None else s["step"])  # stable: report order within a step
    out: dict[int, dict[str, list[float | None]]] = {}
    for s in mine:
        ok = s.get("flag", FLAG_OK) == FLAG_OK and s.get("value") is not None
        out.setdefault(s["job_id"], {}).setdefault(s["tag"], []).append(float(s["value"]) if ok else None)
    return out


def _mapped(config: Any, space: Dict, flat: FlatSpace, warm: WarmStart) -> dict | None:
    """``config`` on the new space's args, or None (the reason counted in ``warm``)."""
    if not isinstance(config, dict):
        warm.skip("without a config")
        return None
    out: dict[str, Any] = {}
    for name, sub in space.items():
        if name in config:
            out[name] = config[name]
            continue
        if FlatSpace(Dict(**{name: sub})).size != 1:
            warm.skip(f"lack arg {name}")
            return None
        out[name] = Dict(**{name: sub}).sample(random.Random(0))[name]  # its only value
    warm.dropped.update(k for k in config if k not in space)
    if flat.encode(out) is None:
        warm.skip("outside the space")
        return None
    return out


def earlier_results(store: Store, source: str, cfg: TaskConfig, warm: WarmStart,
                    seen: set[str]) -> list[Result]:
    """The results of ``source`` under ``cfg``'s objectives and space, in job order; configs in
    ``seen`` (told already) are skipped, the others added to it."""
    spec: OutcomeSpec = cfg.outcome_spec
    space = cfg.search_space()
    flat = FlatSpace(space)
    out: list[Result] = []
    jobs, scalars = _source_rows(store, source)
    attempts = {j["job_id"]: int(j.get("attempt") or 1) for j in jobs}
    series = _series(scalars, attempts, spec.tags)
    for job in jobs:
        if job.get("status") not in RESULT_STATUSES:
            continue
        config = _mapped(job.get("config"), space, flat, warm)
        if config is None:
            continue
        key = config_key(config)
        if key in seen:
            warm.skip("told already")
            continue
        reward, outcome = outcome_of_series(spec, series.get(job["job_id"], {}))
        if reward is None:
            warm.skip(f"without a value of {spec.primary.name}")
            continue
        seen.add(key)
        out.append(Result(config, reward, outcome))
    return out


def warm_start(store: Store, task: str, searcher: BaseSearcher, cfg: TaskConfig) -> WarmStart | None:
    """Tell ``searcher`` the results of the sources the task row names (``warm_start``), before
    its first proposal; record what was told. None when the task has no warm start. A source that
    is gone since the task began (``--resume``) is a warning, not an error."""
    row = store.require_task(task)
    if not row.get("warm_start"):
        return None
    sources = list(json.loads(row["warm_start"]).get("sources") or [])
    warm = WarmStart(sources)
    results: list[Result] = []
    seen: set[str] = set()
    for source in sources:
        try:
            results += earlier_results(store, source, cfg, warm, seen)
        except UserError as exc:
            log.warning("warm start: %s is not readable any more (%s); going on without it", source, exc)
            warm.skip(f"from {source}, unreadable")
    for r in results:
        searcher.tell(r.config, r.reward, JobStatus.FINISHED, r.outcome)
        warm.told += 1
    searcher.warm_started(warm.told)
    store.update_task(task, warm_start=warm.to_json())
    log.info("%s", warm.summary())
    return warm
