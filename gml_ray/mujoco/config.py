"""``--benchmark`` configs (the ``mujoco`` job mode): the MuJoCo function, its policy vector's
Real args, ``searcher.dims``. Registered as an entry point (``gml_ray.modes``); numpy only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gml_ray.config.modes import JobMode
from gml_ray.config.search_args import SearchArg
from gml_ray.config.validate import Ctx, show
from gml_ray.mujoco.objective import FUNC_TYPES


@dataclass(frozen=True)
class MujocoSettings:
    """A benchmark task's settings: the function and episodes per evaluation."""

    func_type: str
    rollouts: int = 3


class MujocoMode(JobMode):
    """The manual's section 6: each config is a linear policy, evaluated on a MuJoCo env."""

    name = "mujoco"
    option = "--benchmark"
    title = "the MuJoCo benchmark"
    scheduler_keys = ("func_type", "rollouts")
    searcher_keys = ("func_type",)

    def parse(self, ctx: Ctx, scheduler: dict[str, Any], args: list[SearchArg],
              searcher: dict[str, Any], notices: list[str]) -> MujocoSettings:
        return MujocoSettings(*parse_benchmark(ctx, scheduler, args, searcher, notices))

    def searcher_kwargs(self, settings: Any, args: list[SearchArg]) -> dict[str, Any]:
        return {"dims": len(args)}  # the policy's size, for searchers that take it (LamctsSearcher)

    def label(self, settings: Any) -> str:
        return str(settings.func_type)

    def label_of(self, raw: dict[str, Any]) -> str | None:
        # A benchmark task's stored config has func_type, and no template or function.
        sched, task = raw.get("scheduler"), raw.get("task")
        sched = sched if isinstance(sched, dict) else {}
        task = task if isinstance(task, dict) else {}
        tmpl, func = task.get("template"), task.get("function")
        was = sched.get("func_type") if not (tmpl and str(tmpl).strip()) and not func else None
        return str(was) if was else None


def parse_benchmark(ctx: Ctx, sched: dict, args: list[SearchArg], searcher_raw: dict,
                    notices: list[str]) -> tuple[str, int]:
    """``--benchmark``: check ``scheduler.func_type``, the Real args and ``searcher.dims``.

    The manual's section 6 config names the function only in the table beside it: without
    ``func_type`` (under ``scheduler:`` or ``searcher:``) it is the one with as many dims as args.
    """
    funcs = FUNC_TYPES
    names = " or ".join(funcs)
    where = "scheduler.func_type"
    if sched.get("func_type") is None and searcher_raw.get("func_type") is not None:
        where = "searcher.func_type"
    func_type = sched.get("func_type") if where.startswith("scheduler") else searcher_raw.get("func_type")
    searcher_raw.pop("func_type", None)
    if func_type is None:
        by_dims = {f.dims: name for name, f in funcs.items()}
        if len(args) not in by_dims:
            raise ctx.error("scheduler.func_type", f"is required with --benchmark: {names} "
                            f"(or {' or '.join(str(d) for d in by_dims)} Real args to pick it by)")
        func_type = by_dims[len(args)]
        notices.append(f"scheduler.func_type is not set: {func_type} ({len(args)} search args)")
    if func_type not in funcs:
        raise ctx.error(where, f"must be {names}, got {show(func_type)}")
    dims = funcs[func_type].dims
    want = f"{func_type} needs {dims} Real args a0..a{dims - 1}"
    if len(args) != dims:
        raise ctx.error("task.search_args", f"{want}, got {len(args)}")
    for i, arg in enumerate(args):
        if arg.type != "Real":
            raise ctx.error(f"task.search_args[{i}]", f"{want}; {arg.name!r} is {arg.type}")
        if arg.step is not None or arg.log:
            raise ctx.error(f"task.search_args[{i}]", f"{want} without step or log; {arg.name!r} has "
                            f"{'step' if arg.step is not None else 'log'}")
    if "dims" in searcher_raw:  # the manual's LamctsSearcher config carries it; checked, then shared
        value = searcher_raw.pop("dims")
        if value != dims or isinstance(value, bool):
            raise ctx.error("searcher.dims", f"{func_type} has {dims} dims, got {show(value)}")
    rollouts = sched.get("rollouts", 3)
    if not isinstance(rollouts, int) or isinstance(rollouts, bool) or rollouts < 1:
        raise ctx.error("scheduler.rollouts", f"must be a positive integer, got {show(rollouts)}")
    return func_type, rollouts
