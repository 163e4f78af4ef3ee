"""The scheduler's sections about jobs that go on from checkpoints: ``scheduler.checkpoint``
(how many are kept, how long a SIGTERM waits for the next) and ``scheduler.pbt`` (Population
Based Training)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gml_ray.config.search_args import SearchArg
from gml_ray.config.validate import Ctx, check_keys, did_you_mean, mapping, parse_duration, show

CHECKPOINT_KEYS = ["keep", "preempt_grace"]
PBT_KEYS = ["population_size", "perturbation_interval", "quantile_fraction", "resample_probability", "mutable", "seed",
            "explore"]
PBT_EXPLORES = ("perturb", "pb2")  # PBT's own explore step; PB2's GP bandit (Parker-Holder et al. 2020)


@dataclass
class CheckpointConfig:
    """``scheduler.checkpoint``: how the engine treats the checkpoints jobs announce."""

    keep: int = 2  # checkpoints kept per job (the newest); older ones are deleted as the run goes
    preempt_grace: float = 30.0  # seconds a SIGTERM'd run waits for its jobs' next checkpoint


PBT_MUTABLE_TYPES = ("Real", "Int", "Categorical")  # what PBT's explore step may change


@dataclass
class PbtConfig:
    """``scheduler.pbt``: Population Based Training (Jaderberg et al. 2017) over the task's jobs."""

    population_size: int = 4  # jobs the searcher proposes; every later job continues one of them
    perturbation_interval: int = 4  # steps between a member's exploit-and-explore decisions
    quantile_fraction: float = 0.25  # the bottom share copies one of the top share
    resample_probability: float = 0.25  # an arg is drawn afresh instead of perturbed
    mutable: list[str] = field(default_factory=list)  # the args explore may change (all searched: empty)
    seed: int = 0
    explore: str = "perturb"  # "perturb" (x0.8/x1.2, neighbours, resampling) or "pb2" (a GP bandit)


def parse_pbt(ctx: Ctx, raw: Any, args: list[SearchArg]) -> PbtConfig:
    section = mapping(ctx, raw, "scheduler.pbt")
    check_keys(ctx, section, PBT_KEYS, "scheduler.pbt")
    out = PbtConfig()
    for key, low in (("population_size", 2), ("perturbation_interval", 1)):
        value = section.get(key, getattr(out, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ctx.error(f"scheduler.pbt.{key}", f"must be an integer >= {low}, got {show(value)}")
        setattr(out, key, value)
    for key, top in (("quantile_fraction", 0.5), ("resample_probability", 1.0)):
        share = section.get(key, getattr(out, key))
        ok = isinstance(share, (int, float)) and not isinstance(share, bool) and 0 <= share <= top
        if not ok or (key == "quantile_fraction" and share == 0):
            interval = "(0, 0.5]" if key == "quantile_fraction" else "[0, 1]"
            raise ctx.error(f"scheduler.pbt.{key}", f"must be a number in {interval}, got {show(share)}")
        setattr(out, key, float(share))
    seed = section.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ctx.error("scheduler.pbt.seed", f"must be an integer, got {show(seed)}")
    out.seed = seed
    explore = section.get("explore", out.explore)
    if explore not in PBT_EXPLORES:
        raise ctx.error("scheduler.pbt.explore", f"must be one of {', '.join(PBT_EXPLORES)}, got {show(explore)}")
    out.explore = explore
    kinds = {a.name: a.type for a in args}
    mutable = section.get("mutable", [a.name for a in args if a.type in PBT_MUTABLE_TYPES])
    if not isinstance(mutable, list) or not all(isinstance(m, str) for m in mutable):
        raise ctx.error("scheduler.pbt.mutable", f"must be a list of search arg names, got {show(mutable)}")
    for name in mutable:
        if name not in kinds:
            raise ctx.error("scheduler.pbt.mutable", f"{name!r} is no top-level search arg"
                            f"{did_you_mean(name, list(kinds))}")
        if kinds[name] not in PBT_MUTABLE_TYPES:
            raise ctx.error("scheduler.pbt.mutable", f"{name!r} is a {kinds[name]} arg: explore changes only "
                            f"{', '.join(PBT_MUTABLE_TYPES)} args")
    if not mutable:
        raise ctx.error("scheduler.pbt.mutable", "no arg to explore: PBT needs a Real, Int or Categorical search arg")
    out.mutable = list(mutable)
    return out


def parse_checkpoint(ctx: Ctx, raw: Any) -> CheckpointConfig:
    section = mapping(ctx, raw, "scheduler.checkpoint")
    check_keys(ctx, section, CHECKPOINT_KEYS, "scheduler.checkpoint")
    keep = section.get("keep", CheckpointConfig.keep)
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ctx.error("scheduler.checkpoint.keep", f"must be an integer >= 1, got {show(keep)}")
    grace = section.get("preempt_grace")
    if grace is None:
        return CheckpointConfig(keep=keep)
    if not isinstance(grace, str):  # a bare number means hours elsewhere: say the unit here
        raise ctx.error("scheduler.checkpoint.preempt_grace", f"needs a duration with its unit, like '30s' or "
                        f"'2m', got {show(grace)}")
    try:
        return CheckpointConfig(keep=keep, preempt_grace=parse_duration(grace))
    except ValueError as exc:
        raise ctx.error("scheduler.checkpoint.preempt_grace", str(exc)) from None
