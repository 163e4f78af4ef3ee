"""``search_config.yaml`` → typed config objects, validated once.

Every mistake raises :class:`ConfigError` naming the file and the field path, e.g.
``search_config.yaml: task.search_args[1].data: Int needs [low, high], got [5]``.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import render, slurm
from .config_files import MMCV_EXTRA, ConfigFile
from .errors import ConfigError
from .space import Categorical, Dict, File, Int, Nested, Real, Space

ARG_TYPES = ("Categorical", "Real", "Int", "Nested", "File")
OPTIMIZE_MODES = ("maximize", "minimize")
DEFAULT_REWARD = "acc"


@dataclass
class SearchArg:
    """One entry of ``search_args`` (File args hold their own ``args``)."""

    type: str
    name: str
    data: Any = None
    step: float | None = None
    log: bool = False
    file: str | None = None  # absolute path of a File arg's template file
    place_holder: str | None = None
    args: list["SearchArg"] = field(default_factory=list)
    base: ConfigFile | None = None  # a File arg's loaded file (read once, here)

    def to_space(self) -> Space:
        if self.type == "Categorical":
            return Categorical(*self.data)
        if self.type == "Nested":
            return Nested(*self.data)
        if self.type == "Int":
            return Int(self.data[0], self.data[1], step=int(self.step or 1))
        if self.type == "Real":
            return Real(self.data[0], self.data[1], log=self.log, step=self.step)
        return File(self.file or "", self.place_holder, **{a.name: a.to_space() for a in self.args})


@dataclass
class PluginConfig:
    """A ``type:`` plus constructor kwargs, for searchers, assessors and criteria."""

    type: str | None
    kwargs: dict[str, Any]
    path: str  # the field path, for error messages


@dataclass
class StopConfig:
    """The built-in stop criterion's limits (seconds for times; None means no limit)."""

    max_tries: int | None = None
    time_limits: float | None = None
    max_reward: float = math.inf
    time_limits_per_job: float | None = None
    custom: PluginConfig | None = None  # a user's STOP_CRITERIONS type, when ``type:`` is given


@dataclass
class TaskConfig:
    """A whole parsed ``search_config.yaml``."""

    source: str  # the file as the user named it (used in messages)
    base_dir: str  # the directory holding it: relative paths and the job cwd resolve against it
    template: str | None
    function: str | None
    search_args: list[SearchArg]
    resources: dict[str, float]
    max_retries: int  # runs again of a job whose node or worker died under it
    searcher: PluginConfig
    reward_attribute: str
    optimize_mode: str
    scheduler_type: str
    parallel_size: int
    stop: StopConfig
    assessor: PluginConfig | None
    filter_criterion: PluginConfig | None
    pavi_scalars: list[str]
    compare_name: str | None
    generate_log: bool
    collect_metrics: bool
    custom_imports: list[str]
    raw: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    tensorboard: bool = False  # also write each job's scalars + args as TensorBoard events when it ends
    func_type: str | None = None  # the MuJoCo benchmark's function (set only with benchmark=True)
    rollouts: int = 3  # episodes per MuJoCo policy evaluation
    notices: list[str] = field(default_factory=list)  # how the config was read (srun options ...)
    compare_id: str | None = None  # pavi.compare.id: a label, as compare.name

    @property
    def compare_label(self) -> str | None:
        """``pavi.compare``'s name, else ``id:<id>``: how GML users know the task's compare."""
        return self.compare_name or (f"id:{self.compare_id}" if self.compare_id else None)

    @property
    def file_bases(self) -> dict[str, ConfigFile]:
        """Each top-level File arg's loaded file, by arg name."""
        return {a.name: a.base for a in self.search_args if a.base is not None}

    @property
    def benchmark(self) -> bool:
        """Whether this task runs the MuJoCo benchmark (``--benchmark``)."""
        return self.func_type is not None

    @property
    def arg_names(self) -> list[str]:
        """The top-level search args in config order (the MuJoCo policy vector's order)."""
        return [a.name for a in self.search_args]

    def search_space(self) -> Dict:
        """A fresh :class:`Dict` space over the top-level args (Nested args under their key)."""
        return Dict(**{a.name: a.to_space() for a in self.search_args})

    @property
    def scalar_columns(self) -> list[str]:
        """Scalars shown by ``ctl show``: ``pavi.scalars`` with the reward attribute first."""
        cols = [self.reward_attribute]
        cols += [s for s in self.pavi_scalars if s != self.reward_attribute]
        return cols


# ---- helpers ----------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, path, self.source)


def _did_you_mean(key: str, allowed: list[str]) -> str:
    match = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (allowed: {', '.join(allowed)})"


def _check_keys(ctx: _Ctx, mapping: dict, allowed: list[str], path: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ctx.error(where, f"unknown key{_did_you_mean(key, allowed)}")


def _mapping(ctx: _Ctx, value: Any, path: str, required: bool = False) -> dict:
    if value is None:
        if required:
            raise ctx.error(path, "is required")
        return {}
    if not isinstance(value, dict):
        raise ctx.error(path, f"must be a mapping, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True,
                                                                      width=10 ** 6).strip()
    if text.endswith("\n..."):
        text = text[:-4].strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bool(ctx: _Ctx, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ctx.error(path, f"must be true or false, got {_show(value)}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}


def parse_duration(value: Any) -> float:
    """Seconds from a duration: a bare number is hours; strings take ``s``, ``m``, ``h``, ``d``."""
    if _is_number(value):
        if value <= 0:
            raise ValueError(f"must be > 0, got {value}")
        return float(value) * 3600
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _UNIT[m.group(2).lower()]
    raise ValueError(f"needs a duration like 2 (hours), '90s', '30m', '1h' or '2d', got {_show(value)}")


def parse_reward_limit(value: Any) -> float:
    """``max_reward``: a number, or inf / .inf / -inf."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str) and value.strip().lower().lstrip("+-.") in ("inf", "infinity"):
        return -math.inf if value.strip().startswith("-") else math.inf
    raise ValueError(f"needs a number or inf, got {_show(value)}")


# ---- search_args --------------------------------------------------------------------------------

def _parse_arg(ctx: _Ctx, raw: Any, path: str, index: int, base_dir: str, in_file: bool,
               warnings: list[str]) -> SearchArg:
    if not isinstance(raw, dict):
        raise ctx.error(path, f"must be a mapping with type, name and data, got {_show(raw)}")
    kind = raw.get("type")
    if kind is None:
        raise ctx.error(f"{path}.type", f"is required (one of {', '.join(ARG_TYPES)})")
    if kind not in ARG_TYPES:
        raise ctx.error(f"{path}.type", f"unknown type {_show(kind)}{_did_you_mean(kind, list(ARG_TYPES))}")
    allowed = {"Categorical": ["type", "name", "data"],
               "Nested": ["type", "name", "data"],
               "Int": ["type", "name", "data", "step"],
               "Real": ["type", "name", "data", "step", "log"],
               "File": ["type", "name", "file", "place_holder", "search_args", "args"]}[kind]
    _check_keys(ctx, raw, allowed, path)
    name = raw.get("name")
    if kind == "Nested" and name is None:
        name = f"_nested{index}"
    if not isinstance(name, str) or not name:
        raise ctx.error(f"{path}.name", f"{kind} needs a name, got {_show(name)}")
    if kind != "Nested" and not render.ARG_NAME.fullmatch(name):
        raise ctx.error(f"{path}.name", f"{name!r} is not a valid name (letters, digits, _, -, .)")
    arg = SearchArg(type=kind, name=name)
    data = raw.get("data")
    dpath = f"{path}.data"

    if kind == "Categorical":
        if not isinstance(data, list) or not data:
            raise ctx.error(dpath, f"Categorical needs a non-empty list of choices, got {_show(data)}")
        arg.data = data
    elif kind == "Nested":
        if not isinstance(data, list) or not data:
            raise ctx.error(dpath, f"Nested needs a non-empty list of mappings, got {_show(data)}")
        for i, item in enumerate(data):
            if not isinstance(item, dict) or not item:
                raise ctx.error(f"{dpath}[{i}]", f"Nested choices must be non-empty mappings, got {_show(item)}")
            for k in item:
                if not isinstance(k, str) or not render.ARG_NAME.fullmatch(k):
                    raise ctx.error(f"{dpath}[{i}]", f"{_show(k)} is not a valid arg name")
        arg.data = data
    elif kind in ("Int", "Real"):
        if not (isinstance(data, list) and len(data) == 2 and all(_is_number(v) for v in data)):
            raise ctx.error(dpath, f"{kind} needs [low, high], got {_show(data)}")
        if kind == "Int" and not all(isinstance(v, int) for v in data):
            raise ctx.error(dpath, f"Int needs integer bounds, got {_show(data)}")
        step = raw.get("step")
        if step is not None and (not _is_number(step) or step <= 0 or (kind == "Int" and not isinstance(step, int))):
            raise ctx.error(f"{path}.step", f"must be a positive {'integer' if kind == 'Int' else 'number'}, got {_show(step)}")
        arg.data, arg.step = list(data), step
        if kind == "Real":
            arg.log = _bool(ctx, raw.get("log", False), f"{path}.log")
        try:
            arg.to_space()
        except ValueError as exc:
            raise ctx.error(dpath, str(exc)) from None
    else:  # File
        if in_file:
            raise ctx.error(f"{path}.type", "a File arg cannot be inside another File arg")
        file = raw.get("file")
        if not isinstance(file, str) or not file:
            raise ctx.error(f"{path}.file", f"File needs the path of a config file, got {_show(file)}")
        full = os.path.normpath(os.path.join(base_dir, os.path.expanduser(file)))
        try:
            render.file_format(full)
        except ValueError as exc:
            raise ctx.error(f"{path}.file", str(exc)) from None
        if not os.path.isfile(full):
            raise ctx.error(f"{path}.file", f"{file} does not exist (looked in {base_dir})")
        try:
            base = ConfigFile(full)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
            text = _one_line(exc)
            if MMCV_EXTRA in text:
                raise ctx.error(f"{path}.file", f"{file}: {text}") from None
            raise ctx.error(f"{path}.file", f"cannot read {file}: {text}") from None
        ph = raw.get("place_holder")
        if ph is not None and (not isinstance(ph, str) or not re.fullmatch(r"[\w.\-]+", ph)):
            raise ctx.error(f"{path}.place_holder", f"must be a plain file stem, got {_show(ph)}")
        if "search_args" in raw and "args" in raw:
            raise ctx.error(path, "give either search_args or args, not both")
        key = "search_args" if "search_args" in raw else "args"
        children = raw.get(key)
        if not isinstance(children, list) or not children:
            raise ctx.error(f"{path}.{key}", f"File needs a non-empty list of args, got {_show(children)}")
        arg.file, arg.place_holder, arg.base = full, ph, base
        arg.args = _parse_args(ctx, children, f"{path}.{key}", base_dir, in_file=True, warnings=warnings)
        for child, cpath in zip(arg.args, (f"{path}.{key}[{i}]" for i in range(len(children)))):
            keys = child.to_space().keys if child.type == "Nested" else [child.name]  # type: ignore[attr-defined]
            for k in keys:
                try:
                    base.check_key(k)
                except KeyError as exc:
                    raise ctx.error(cpath, f"{file} {exc.args[0]}") from None
    return arg


def _keys(arg: SearchArg) -> list[str]:
    """The keys an arg sets: its name, or every key of a Nested arg's dicts."""
    return arg.to_space().keys if arg.type == "Nested" else [arg.name]  # type: ignore[attr-defined]


def _resolve_overlaps(ctx: _Ctx, args: list[SearchArg], path: str, warnings: list[str]) -> list[SearchArg]:
    """The manual's rule for args that set the same key: the later one wins (one warning line).

    An earlier plain arg that a later Nested arg sets in every one of its dicts could never change
    a job: it is dropped from the search, so no searcher spends trials on it. Where the later arg
    sets the key only in some dicts, both stay (GridSearcher then runs each distinct config once).
    Two args declared with the same name are a mistake, not an override: an error.
    """
    names: dict[str, int] = {}
    for i, arg in enumerate(args):
        if arg.type != "Nested":
            if arg.name in names:
                raise ctx.error(f"{path}[{i}].name", f"{arg.name!r} is declared twice "
                                f"(also {path}[{names[arg.name]}])")
            names[arg.name] = i
    dead: set[int] = set()
    for i, arg in enumerate(args):
        for k in _keys(arg):
            for j in range(i + 1, len(args)):
                later = args[j]
                if k not in _keys(later):
                    continue
                always = later.type != "Nested" or all(k in d for d in later.data)
                warnings.append(f"{path}[{j}] sets {k!r} after {path}[{i}]: the later value wins"
                                + (f"; {path}[{i}] is not searched" if always and arg.type != "Nested"
                                   else ""))
                if always and arg.type != "Nested":
                    dead.add(i)
                break
    return [a for i, a in enumerate(args) if i not in dead]


def _parse_args(ctx: _Ctx, raw: Any, path: str, base_dir: str, in_file: bool,
                warnings: list[str]) -> list[SearchArg]:
    if not isinstance(raw, list) or not raw:
        raise ctx.error(path, f"needs a non-empty list of args, got {_show(raw)}")
    args = [_parse_arg(ctx, item, f"{path}[{i}]", i, base_dir, in_file, warnings)
            for i, item in enumerate(raw)]
    rendered: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.type == "File":
            name = render.rendered_file_name(arg.to_space())  # type: ignore[arg-type]
            if name in rendered:
                raise ctx.error(f"{path}[{i}].place_holder", f"renders to {name} in the job dir like "
                                f"{rendered[name]}: give one of them another place_holder")
            rendered[name] = f"{path}[{i}]"
    return _resolve_overlaps(ctx, args, path, warnings)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---- sections ---------------------------------------------------------------------------------

TOP_KEYS = ["task", "searcher", "scheduler", "pavi", "use_spe", "generate_log", "custom_imports", "metrics",
            "tensorboard"]
TASK_KEYS = ["template", "search_args", "function", "resources", "max_retries"]
SCHEDULER_KEYS = ["type", "parallel_size", "stop_criterion", "assessor", "filter_criterion", "func_type",
                  "rollouts"]
BENCHMARK_HINT = "or run the MuJoCo benchmark with --benchmark"
STOP_KEYS = ["type", "max_tries", "time_limits", "max_reward", "time_limits_per_job"]
PAVI_KEYS = ["compare", "scalars"]


def _plugin(ctx: _Ctx, raw: Any, path: str) -> PluginConfig | None:
    if raw is None:
        return None
    m = _mapping(ctx, raw, path)
    kind = m.get("type")
    if not isinstance(kind, str) or not kind:
        raise ctx.error(f"{path}.type", f"is required, got {_show(kind)}")
    return PluginConfig(kind, {k: v for k, v in m.items() if k != "type"}, path)


def _parse_stop(ctx: _Ctx, raw: Any) -> StopConfig:
    path = "scheduler.stop_criterion"
    m = _mapping(ctx, raw, path)
    if "type" in m and m["type"] not in (None, "StopCriterion"):
        custom = _plugin(ctx, m, path)
        return StopConfig(custom=custom)
    _check_keys(ctx, m, STOP_KEYS, path)
    stop = StopConfig()
    if m.get("max_tries") is not None:
        v = m["max_tries"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ctx.error(f"{path}.max_tries", f"must be a positive integer, got {_show(v)}")
        stop.max_tries = v
    for key in ("time_limits", "time_limits_per_job"):
        if m.get(key) is not None:
            try:
                setattr(stop, key, parse_duration(m[key]))
            except ValueError as exc:
                raise ctx.error(f"{path}.{key}", str(exc)) from None
    if m.get("max_reward") is not None:
        try:
            stop.max_reward = parse_reward_limit(m["max_reward"])
        except ValueError as exc:
            raise ctx.error(f"{path}.max_reward", str(exc)) from None
    return stop


def parse_stop_criterion(raw: dict[str, Any], source: str = "stop_criterion") -> StopConfig:
    """A ``scheduler.stop_criterion`` mapping, read as the YAML is (``1h``, bare hours, ``inf``)."""
    return _parse_stop(_Ctx(source), raw)


def _parse_resources(ctx: _Ctx, raw: Any, from_srun: dict[str, float]) -> dict[str, float]:
    """``task.resources`` over what the template's srun options asked for (explicit keys win)."""
    path = "task.resources"
    m = _mapping(ctx, raw, path)
    out: dict[str, float] = dict(from_srun)
    for key, value in m.items():
        if not isinstance(key, str) or not _is_number(value) or value < 0:
            raise ctx.error(f"{path}.{key}", f"must be a number >= 0, got {_show(value)}")
        out[key] = value
    out.setdefault("num_cpus", 1)
    return out


def _func_types() -> dict:
    from .mujoco.objective import FUNC_TYPES  # numpy only: no gymnasium, no Ray
    return FUNC_TYPES


def _parse_benchmark(ctx: _Ctx, sched: dict, args: list[SearchArg], searcher_raw: dict,
                     notices: list[str]) -> tuple[str, int]:
    """``--benchmark``: check ``scheduler.func_type``, the Real args and ``searcher.dims``.

    The manual's section 6 config names the function only in the table beside it: without
    ``func_type`` (under ``scheduler:`` or ``searcher:``) it is the one with as many dims as args.
    """
    funcs = _func_types()
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
        raise ctx.error(where, f"must be {names}, got {_show(func_type)}")
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
            raise ctx.error("searcher.dims", f"{func_type} has {dims} dims, got {_show(value)}")
    rollouts = sched.get("rollouts", 3)
    if not isinstance(rollouts, int) or isinstance(rollouts, bool) or rollouts < 1:
        raise ctx.error("scheduler.rollouts", f"must be a positive integer, got {_show(rollouts)}")
    return func_type, rollouts


def parse_config(raw: Any, source: str = "search_config.yaml", base_dir: str = ".",
                 benchmark: bool = False) -> TaskConfig:
    """Validate a loaded YAML mapping; ``source`` names the file in errors.

    ``benchmark``: the MuJoCo benchmark (``--benchmark``): no template, ``scheduler.func_type``
    names the function and the search args are its policy vector's Real entries, in order.
    """
    ctx = _Ctx(source)
    base_dir = os.path.abspath(base_dir)
    top = _mapping(ctx, raw, "(top level)", required=True)
    _check_keys(ctx, top, TOP_KEYS, "")
    warnings: list[str] = []
    notices: list[str] = []

    task = _mapping(ctx, top.get("task"), "task", required=True)
    _check_keys(ctx, task, TASK_KEYS, "task")
    template, function = task.get("template"), task.get("function")
    if template is not None and (not isinstance(template, str)):
        raise ctx.error("task.template", f"must be a string, got {_show(template)}")
    sched_peek = top.get("scheduler") if isinstance(top.get("scheduler"), dict) else {}
    searcher_peek = top.get("searcher") if isinstance(top.get("searcher"), dict) else {}
    if benchmark:
        if function is not None:
            raise ctx.error("task.function", "the MuJoCo benchmark (--benchmark) runs no function: "
                            "remove task.function")
        if template and template.strip():
            raise ctx.error("task.template", f"must be empty with --benchmark (the MuJoCo objective is "
                            f"the job), got {_show(template)}")
        template = None
    else:
        if function is not None and (not isinstance(function, str)
                                     or not re.fullmatch(r"[\w.]+:[\w.]+", function)):
            raise ctx.error("task.function", f"must look like 'module:callable', got {_show(function)}")
        if template and template.strip() and function:
            raise ctx.error("task", "give either template or function, not both")
        if not (template and template.strip()) and not function:
            if "func_type" in sched_peek or "func_type" in searcher_peek or template is not None:
                raise ctx.error("task.template", f"is required ({BENCHMARK_HINT})")
            raise ctx.error("task.template", "is required (or task.function: 'module:callable')")
        for key in ("func_type", "rollouts"):
            if key in sched_peek:
                warnings.append(f"scheduler.{key} is used only with --benchmark; ignored")
    if "search_args" not in task:
        raise ctx.error("task.search_args", "is required")
    args = _parse_args(ctx, task["search_args"], "task.search_args", base_dir, in_file=False,
                       warnings=warnings)
    space = Dict(**{a.name: a.to_space() for a in args})
    srun_resources: dict[str, float] = {}
    if template and template.strip() and not function and not benchmark:
        try:
            template, srun = slurm.split_srun(template)
        except slurm.SrunError as exc:
            raise ctx.error("task.template", str(exc)) from None
        if srun is not None:
            srun_resources = srun.resources
            notices.append("srun in task.template: jobs run the command after it on Ray"
                           + (f"; {', '.join(srun.mapped)}" if srun.mapped else "")
                           + (f"; dropped {' '.join(srun.dropped)}" if srun.dropped else ""))
        try:
            used = render.placeholder_names(template)
        except ValueError as exc:
            raise ctx.error("task.template", str(exc)) from None
        names = render.template_names(space)
        for name in used:
            if name not in names:
                raise ctx.error("task.template", f"placeholder {{{name}}} has no search arg"
                                f"{_did_you_mean(name, names) if names else ''}")
        unused = [k for arg in args for k in _keys(arg) if k not in used]
        if unused:
            warnings.append(f"task.template does not use {', '.join(repr(k) for k in unused)}: "
                            f"{'it still varies' if len(unused) == 1 else 'they still vary'} the "
                            f"jobs' arg_dict (filters, ctl show) but not their command")
    resources = _parse_resources(ctx, task.get("resources"), srun_resources)
    max_retries = task.get("max_retries", 0)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ctx.error("task.max_retries", f"must be an integer >= 0, got {_show(max_retries)}")

    searcher_raw = _mapping(ctx, top.get("searcher"), "searcher")
    searcher_raw = dict(searcher_raw)
    searcher_raw.setdefault("type", "GridSearcher")
    if not benchmark and searcher_raw.pop("func_type", None) is not None:
        warnings.append("searcher.func_type is used only with --benchmark; ignored")
    if "ckpt_save_path" in searcher_raw:
        searcher_raw.pop("ckpt_save_path")
        warnings.append("searcher.ckpt_save_path is a pavi feature and is ignored")
    reward = searcher_raw.get("reward_attribute", DEFAULT_REWARD)
    if not isinstance(reward, str) or not reward:
        raise ctx.error("searcher.reward_attribute", f"must be a scalar name, got {_show(reward)}")
    mode = searcher_raw.get("optimize_mode", "maximize")
    if mode not in OPTIMIZE_MODES:
        raise ctx.error("searcher.optimize_mode", f"must be maximize or minimize, got {_show(mode)}")
    sched = _mapping(ctx, top.get("scheduler"), "scheduler")
    _check_keys(ctx, sched, SCHEDULER_KEYS, "scheduler")
    func_type, rollouts = None, 3
    if benchmark:
        func_type, rollouts = _parse_benchmark(ctx, sched, args, searcher_raw, notices)
    searcher = _plugin(ctx, searcher_raw, "searcher")
    assert searcher is not None

    stype = sched.get("type", "FIFO")
    if stype != "FIFO":
        raise ctx.error("scheduler.type", f"only FIFO is supported, got {_show(stype)}")
    parallel = sched.get("parallel_size", 1)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise ctx.error("scheduler.parallel_size", f"must be a positive integer, got {_show(parallel)}")
    stop = _parse_stop(ctx, sched.get("stop_criterion"))
    assessor = _plugin(ctx, sched.get("assessor"), "scheduler.assessor")
    filt = _plugin(ctx, sched.get("filter_criterion"), "scheduler.filter_criterion")

    pavi = _mapping(ctx, top.get("pavi"), "pavi")
    _check_keys(ctx, pavi, PAVI_KEYS, "pavi")
    compare = _mapping(ctx, pavi.get("compare"), "pavi.compare")
    _check_keys(ctx, compare, ["name", "id"], "pavi.compare")
    scalars = pavi.get("scalars", [])
    if not isinstance(scalars, list) or not all(isinstance(s, str) for s in scalars):
        raise ctx.error("pavi.scalars", f"must be a list of scalar names, got {_show(scalars)}")

    use_spe = _bool(ctx, top.get("use_spe", False), "use_spe")
    if use_spe:
        warnings.append("use_spe is a GML cluster feature and is ignored")
    generate_log = _bool(ctx, top.get("generate_log", True), "generate_log")
    tensorboard = _bool(ctx, top.get("tensorboard", False), "tensorboard")
    metrics = top.get("metrics", "collect")
    if metrics not in ("collect", "none"):
        raise ctx.error("metrics", f"must be collect or none, got {_show(metrics)}")
    mock = os.environ.get("MOCK_PAVI", "").strip()
    if mock not in ("", "0", "1", "2"):
        raise ConfigError(f"MOCK_PAVI must be 0, 1 or 2, got {mock!r}")
    if mock == "2":  # the manual's fake pavi: API-compatible, no scalars
        metrics = "none"
    imports = top.get("custom_imports", [])
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, list) or not all(isinstance(i, str) and i for i in imports):
        raise ctx.error("custom_imports", f"must be a list of .py files or module names, got {_show(imports)}")

    return TaskConfig(
        source=source, base_dir=base_dir, template=template if not function else None,
        function=function, search_args=args, resources=resources, max_retries=max_retries,
        searcher=searcher,
        reward_attribute=reward, optimize_mode=mode, scheduler_type=stype, parallel_size=parallel,
        stop=stop, assessor=assessor, filter_criterion=filt, pavi_scalars=list(scalars),
        compare_name=_label(compare.get("name")), compare_id=_label(compare.get("id")),
        generate_log=generate_log, notices=notices,
        collect_metrics=metrics == "collect", custom_imports=list(imports), raw=top, warnings=warnings,
        tensorboard=tensorboard, func_type=func_type, rollouts=rollouts)


def _label(value: Any) -> str | None:
    return None if value is None else str(value)


def load_config(path: str, benchmark: bool = False) -> TaskConfig:
    """Read and validate a ``search_config.yaml`` (``benchmark``: the MuJoCo benchmark's rules)."""
    source = path
    if not os.path.isfile(path):
        raise ConfigError(f"no such file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or _one_line(exc)
        raise ConfigError(f"{where}invalid YAML: {problem}", "", source) from None
    return parse_config(raw, source, os.path.dirname(os.path.abspath(path)), benchmark)
