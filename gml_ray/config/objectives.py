"""The search's objectives and constraints, from the ``searcher`` section.

``reward_attribute`` is a scalar name (the manual), a list of names with ``optimize_mode`` a
matching list (or one mode for all), or a list of ``{name, mode}``. ``constraints`` is a list of
``"scalar OP number"``; ``reference_point`` one number per objective (the hypervolume's). Read once
here into an :class:`~gml_ray.objectives.OutcomeSpec`; the searcher's own kwargs keep only the
first objective (what a single-objective searcher's constructor takes).
"""
from __future__ import annotations

from typing import Any

from gml_ray.config.validate import Ctx, is_number, parse_reward_limit, show
from gml_ray.objectives import Constraint, Objective, OutcomeSpec, parse_constraint
from gml_ray.vocab import OptimizeMode

DEFAULT_REWARD = "acc"  # the manual's default reward_attribute
OUTCOME_KEYS = ("constraints", "reference_point")  # searcher keys that are the task's, not the searcher's


def _mode(ctx: Ctx, value: Any, path: str) -> OptimizeMode:
    try:
        return OptimizeMode.parse(value)
    except ValueError:
        raise ctx.error(path, f"must be maximize or minimize, got {show(value)}") from None


def _objectives(ctx: Ctx, searcher: dict[str, Any]) -> tuple[Objective, ...]:
    reward = searcher.get("reward_attribute", DEFAULT_REWARD)
    modes = searcher.get("optimize_mode", OptimizeMode.MAXIMIZE)
    if isinstance(reward, str):
        if not reward:
            raise ctx.error("searcher.reward_attribute", f"must be a scalar name, got {show(reward)}")
        if isinstance(modes, list):
            raise ctx.error("searcher.optimize_mode", f"one reward_attribute takes one mode, got {show(modes)}")
        return (Objective(reward, _mode(ctx, modes, "searcher.optimize_mode")),)
    if not isinstance(reward, list) or not reward:
        raise ctx.error("searcher.reward_attribute",
                        f"must be a scalar name or a list of them, got {show(reward)}")
    if isinstance(modes, list) and len(modes) != len(reward):
        raise ctx.error("searcher.optimize_mode", f"needs one mode per reward_attribute ({len(reward)}), "
                        f"got {len(modes)}: {show(modes)}")
    out: list[Objective] = []
    for i, entry in enumerate(reward):
        path = f"searcher.reward_attribute[{i}]"
        if isinstance(entry, dict):
            unknown = sorted(set(entry) - {"name", "mode"})
            if unknown:
                raise ctx.error(f"{path}.{unknown[0]}", "unknown key (an objective takes name and mode)")
            name, mode_path = entry.get("name"), f"{path}.mode"
            raw_mode = entry.get("mode", modes[i] if isinstance(modes, list) else modes)
        else:
            name, mode_path = entry, "searcher.optimize_mode" + (f"[{i}]" if isinstance(modes, list) else "")
            raw_mode = modes[i] if isinstance(modes, list) else modes
        if not isinstance(name, str) or not name:
            raise ctx.error(path if not isinstance(entry, dict) else f"{path}.name",
                            f"must be a scalar name, got {show(name)}")
        if name in (o.name for o in out):
            raise ctx.error(path, f"{name!r} is already an objective")
        out.append(Objective(name, _mode(ctx, raw_mode, mode_path)))
    return tuple(out)


def _constraints(ctx: Ctx, raw: Any) -> tuple[Constraint, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ctx.error("searcher.constraints", f"must be a list like ['latency_ms <= 20'], got {show(raw)}")
    out = []
    for i, text in enumerate(raw):
        try:
            out.append(parse_constraint(text))
        except ValueError as exc:
            raise ctx.error(f"searcher.constraints[{i}]", str(exc)) from None
    return tuple(out)


def _reference(ctx: Ctx, raw: Any, n: int) -> tuple[float, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != n or not all(is_number(v) for v in raw):
        raise ctx.error("searcher.reference_point", f"needs one number per objective ({n}), got {show(raw)}")
    return tuple(float(v) for v in raw)


def parse_outcome(ctx: Ctx, searcher: dict[str, Any]) -> OutcomeSpec:
    """The task's :class:`OutcomeSpec`; ``searcher`` (a copy the caller owns) loses the keys that are
    the task's and keeps the first objective as its ``reward_attribute``/``optimize_mode``."""
    objectives = _objectives(ctx, searcher)
    spec = OutcomeSpec(objectives, _constraints(ctx, searcher.get("constraints")),
                       _reference(ctx, searcher.get("reference_point"), len(objectives)))
    for key in OUTCOME_KEYS:
        searcher.pop(key, None)
    if "reward_attribute" in searcher:
        searcher["reward_attribute"] = spec.primary.name
    if "optimize_mode" in searcher:
        searcher["optimize_mode"] = spec.primary.mode.value
    return spec


def parse_max_reward(ctx: Ctx, raw: Any, path: str, spec: OutcomeSpec | None) -> float | tuple[float, ...]:
    """``max_reward``: a number (inf: none), or with several objectives one per objective (the task
    stops when one job reaches them all)."""
    if isinstance(raw, list):
        n = len(spec.objectives) if spec is not None else 1
        if spec is None or not spec.multi or len(raw) != n:
            raise ctx.error(path, f"needs one number per objective ({n}), got {show(raw)}")
        try:
            return tuple(parse_reward_limit(v) for v in raw)
        except ValueError as exc:
            raise ctx.error(path, str(exc)) from None
    try:
        return parse_reward_limit(raw)
    except ValueError as exc:
        raise ctx.error(path, str(exc)) from None
