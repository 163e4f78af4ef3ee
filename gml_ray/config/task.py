"""``search_config.yaml`` → typed config objects, validated once.

Every mistake raises :class:`ConfigError` naming the file and the field path, e.g.
``search_config.yaml: task.search_args[1].data: Int needs [low, high], got [5]``.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

import gml_ray.config.modes as modes
import gml_ray.config.render as render
import gml_ray.config.slurm as slurm
from gml_ray.config.checkpointing import CheckpointConfig, PbtConfig, parse_checkpoint, parse_pbt
from gml_ray.config.files import ConfigFile
from gml_ray.config.objectives import parse_max_reward, parse_outcome
from gml_ray.config.search_args import SearchArg, arg_keys, parse_args
from gml_ray.config.template import MAX_COMMAND_BYTES, longest_command, placeholder_names
from gml_ray.config.tracking import TrackingConfig, parse_tracking
from gml_ray.config.validate import (
    Ctx,
    boolean,
    check_keys,
    did_you_mean,
    is_number,
    mapping,
    one_line,
    parse_duration,
    show,
)
from gml_ray.errors import ConfigError
from gml_ray.objectives import Objective, OutcomeSpec
from gml_ray.space import Dict
from gml_ray.vocab import OptimizeMode


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
    max_reward: float | tuple[float, ...] = math.inf  # a tuple: one per objective
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
    mode: str | None = None  # a job mode's name (:mod:`.modes`): its jobs run neither template nor function
    mode_settings: Any = None  # what that mode's ``parse`` returned
    notices: list[str] = field(default_factory=list)  # how the config was read (srun options ...)
    compare_id: str | None = None  # pavi.compare.id: a label, as compare.name
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    pbt: PbtConfig | None = None  # scheduler.pbt: run the jobs as a PBT population
    outcome: OutcomeSpec | None = None  # the objectives and constraints (None: reward_attribute alone)
    assessor_objective: str | None = None  # scheduler.assessor.objective: what the assessor judges
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # tracking.mlflow (config/tracking.py)

    @property
    def outcome_spec(self) -> OutcomeSpec:
        """The task's objectives and constraints (the single reward when none were declared)."""
        if self.outcome is not None:
            return self.outcome
        return OutcomeSpec((Objective(self.reward_attribute, OptimizeMode.parse(self.optimize_mode)),))

    @property
    def judged(self) -> Objective:
        """The objective the assessor (and PBT, promotion) judges jobs by: the first by default."""
        spec = self.outcome_spec
        return spec.objective(self.assessor_objective) if self.assessor_objective else spec.primary

    @property
    def compare_label(self) -> str | None:
        """``pavi.compare``'s name, else ``id:<id>``: how GML users know the task's compare."""
        return self.compare_name or (f"id:{self.compare_id}" if self.compare_id else None)

    @property
    def file_bases(self) -> dict[str, ConfigFile]:
        """Each top-level File arg's loaded file, by arg name."""
        return {a.name: a.base for a in self.search_args if a.base is not None}

    @property
    def job_kind(self) -> str:
        """How its jobs run: ``command``, ``function``, or the job mode's name."""
        return self.mode or ("function" if self.function else "command")

    @property
    def arg_names(self) -> list[str]:
        """The top-level search args in config order (a mode may read them as one vector)."""
        return [a.name for a in self.search_args]

    def search_space(self) -> Dict:
        """A fresh :class:`Dict` space over the top-level args (Nested args under their key)."""
        return Dict(**{a.name: a.to_space() for a in self.search_args})

    @property
    def scalar_columns(self) -> list[str]:
        """Scalars shown by ``ctl show``: ``pavi.scalars`` with the reward attribute first."""
        spec = self.outcome_spec
        cols = spec.names + sorted({c.tag for c in spec.constraints} - set(spec.names))
        cols += [s for s in self.pavi_scalars if s not in cols]
        return cols


# ---- sections ---------------------------------------------------------------------------------

TOP_KEYS = ["task", "searcher", "scheduler", "pavi", "use_spe", "generate_log", "custom_imports", "metrics",
            "tensorboard", "tracking"]
TASK_KEYS = ["template", "search_args", "function", "resources", "max_retries"]
SCHEDULER_KEYS = ["type", "parallel_size", "stop_criterion", "assessor", "filter_criterion", "checkpoint", "pbt"]
STOP_KEYS = ["type", "max_tries", "time_limits", "max_reward", "time_limits_per_job"]
PAVI_KEYS = ["compare", "scalars"]


def _plugin(ctx: Ctx, raw: Any, path: str) -> PluginConfig | None:
    if raw is None:
        return None
    m = mapping(ctx, raw, path)
    kind = m.get("type")
    if not isinstance(kind, str) or not kind:
        raise ctx.error(f"{path}.type", f"is required, got {show(kind)}")
    return PluginConfig(kind, {k: v for k, v in m.items() if k != "type"}, path)


def _parse_stop(ctx: Ctx, raw: Any, spec: OutcomeSpec | None = None) -> StopConfig:
    path = "scheduler.stop_criterion"
    m = mapping(ctx, raw, path)
    if "type" in m and m["type"] not in (None, "StopCriterion"):
        custom = _plugin(ctx, m, path)
        return StopConfig(custom=custom)
    check_keys(ctx, m, STOP_KEYS, path)
    stop = StopConfig()
    if m.get("max_tries") is not None:
        v = m["max_tries"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ctx.error(f"{path}.max_tries", f"must be a positive integer, got {show(v)}")
        stop.max_tries = v
    for key in ("time_limits", "time_limits_per_job"):
        if m.get(key) is not None:
            try:
                setattr(stop, key, parse_duration(m[key]))
            except ValueError as exc:
                raise ctx.error(f"{path}.{key}", str(exc)) from None
    if m.get("max_reward") is not None:
        stop.max_reward = parse_max_reward(ctx, m["max_reward"], f"{path}.max_reward", spec)
    return stop


def parse_stop_criterion(raw: dict[str, Any], source: str = "stop_criterion") -> StopConfig:
    """A ``scheduler.stop_criterion`` mapping, read as the YAML is (``1h``, bare hours, ``inf``)."""
    return _parse_stop(Ctx(source), raw)


def _parse_resources(ctx: Ctx, raw: Any, from_srun: dict[str, float]) -> dict[str, float]:
    """``task.resources`` over what the template's srun options asked for (explicit keys win)."""
    path = "task.resources"
    m = mapping(ctx, raw, path)
    out: dict[str, float] = dict(from_srun)
    for key, value in m.items():
        if not isinstance(key, str) or not is_number(value) or value < 0:
            raise ctx.error(f"{path}.{key}", f"must be a number >= 0, got {show(value)}")
        out[key] = value
    out.setdefault("num_cpus", 1)
    return out


def parse_config(raw: Any, source: str = "search_config.yaml", base_dir: str = ".",
                 mode: str | None = None) -> TaskConfig:
    """Validate a loaded YAML mapping; ``source`` names the file in errors.

    ``mode``: a job mode's name (:mod:`.modes`, e.g. ``mujoco`` for ``--benchmark``): the task
    has no template and no function, and the mode checks the rest.
    """
    ctx = Ctx(source)
    base_dir = os.path.abspath(base_dir)
    top = mapping(ctx, raw, "(top level)", required=True)
    check_keys(ctx, top, TOP_KEYS, "")
    warnings: list[str] = []
    notices: list[str] = []

    task = mapping(ctx, top.get("task"), "task", required=True)
    check_keys(ctx, task, TASK_KEYS, "task")
    template, function = task.get("template"), task.get("function")
    if template is not None and (not isinstance(template, str)):
        raise ctx.error("task.template", f"must be a string, got {show(template)}")
    sched_peek: dict = top["scheduler"] if isinstance(top.get("scheduler"), dict) else {}
    searcher_peek: dict = top["searcher"] if isinstance(top.get("searcher"), dict) else {}
    job_mode = modes.job_mode(mode) if mode is not None else None
    others = [m for m in modes.known_modes() if m is not job_mode]
    if job_mode is not None:
        if function is not None:
            raise ctx.error("task.function", f"{job_mode.title} ({job_mode.option}) runs no function: "
                            "remove task.function")
        if template and template.strip():
            raise ctx.error("task.template", f"must be empty with {job_mode.option} ({job_mode.title} "
                            f"is the job), got {show(template)}")
        template = None
    else:
        if function is not None and (not isinstance(function, str)
                                     or not re.fullmatch(r"[\w.]+:[\w.]+", function)):
            raise ctx.error("task.function", f"must look like 'module:callable', got {show(function)}")
        if template and template.strip() and function:
            raise ctx.error("task", "give either template or function, not both")
        if not (template and template.strip()) and not function:
            hint = " or ".join(f"run {m.title} with {m.option}" for m in others
                               if template is not None or any(k in sched_peek for k in m.scheduler_keys)
                               or any(k in searcher_peek for k in m.searcher_keys))
            raise ctx.error("task.template", f"is required (or {hint})" if hint
                            else "is required (or task.function: 'module:callable')")
    if "search_args" not in task:
        raise ctx.error("task.search_args", "is required")
    args = parse_args(ctx, task["search_args"], "task.search_args", base_dir, in_file=False,
                       warnings=warnings)
    space = Dict(**{a.name: a.to_space() for a in args})
    srun_resources: dict[str, float] = {}
    if template and template.strip() and not function and job_mode is None:
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
            used = placeholder_names(template)
        except ValueError as exc:
            raise ctx.error("task.template", str(exc)) from None
        names = render.template_names(space)
        for name in used:
            if name not in names:
                raise ctx.error("task.template", f"placeholder {{{name}}} has no search arg"
                                f"{did_you_mean(name, names) if names else ''}")
        longest = longest_command(template, space)
        if longest > MAX_COMMAND_BYTES:
            raise ctx.error("task.template", f"a rendered command could be {longest:,} bytes, over the "
                            f"{MAX_COMMAND_BYTES:,} a command line may have: pass large values "
                            f"in a File arg instead")
        unused = [k for arg in args for k in arg_keys(arg) if k not in used]
        if unused:
            warnings.append(f"task.template does not use {', '.join(repr(k) for k in unused)}: "
                            f"{'it still varies' if len(unused) == 1 else 'they still vary'} the "
                            f"jobs' arg_dict (filters, ctl show) but not their command")
    resources = _parse_resources(ctx, task.get("resources"), srun_resources)
    max_retries = task.get("max_retries", 0)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ctx.error("task.max_retries", f"must be an integer >= 0, got {show(max_retries)}")

    searcher_raw = mapping(ctx, top.get("searcher"), "searcher")
    searcher_raw = dict(searcher_raw)
    searcher_raw.setdefault("type", "GridSearcher")
    for other in others:  # keys another mode reads: not this searcher's kwargs
        for key in other.searcher_keys:
            if searcher_raw.pop(key, None) is not None:
                warnings.append(f"searcher.{key} is used only with {other.option}; ignored")
    if "ckpt_save_path" in searcher_raw:
        searcher_raw.pop("ckpt_save_path")
        warnings.append("searcher.ckpt_save_path is a pavi feature and is ignored")
    outcome = parse_outcome(ctx, searcher_raw)
    reward, optimize_mode = outcome.primary.name, outcome.primary.mode
    sched = mapping(ctx, top.get("scheduler"), "scheduler")
    mode_keys = [k for m in modes.known_modes() for k in m.scheduler_keys]
    check_keys(ctx, sched, SCHEDULER_KEYS + mode_keys, "scheduler")
    for other in others:
        for key in other.scheduler_keys:
            if key in sched and (job_mode is None or key not in job_mode.scheduler_keys):
                warnings.append(f"scheduler.{key} is used only with {other.option}; ignored")
    mode_settings = job_mode.parse(ctx, sched, args, searcher_raw, notices) if job_mode is not None else None
    searcher = _plugin(ctx, searcher_raw, "searcher")
    assert searcher is not None

    stype = sched.get("type", "FIFO")
    if stype != "FIFO":
        raise ctx.error("scheduler.type", f"only FIFO is supported, got {show(stype)}")
    parallel = sched.get("parallel_size", 1)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise ctx.error("scheduler.parallel_size", f"must be a positive integer, got {show(parallel)}")
    stop = _parse_stop(ctx, sched.get("stop_criterion"), outcome)
    assessor = _plugin(ctx, sched.get("assessor"), "scheduler.assessor")
    judged = _assessor_objective(ctx, assessor, outcome)
    filt = _plugin(ctx, sched.get("filter_criterion"), "scheduler.filter_criterion")
    checkpoint = parse_checkpoint(ctx, sched.get("checkpoint"))
    pbt = parse_pbt(ctx, sched.get("pbt"), args) if sched.get("pbt") is not None else None
    if pbt is not None and not outcome.plain:
        raise ctx.error("scheduler.pbt", "PBT ranks jobs by one reward: not with several objectives or "
                        "constraints")

    pavi = mapping(ctx, top.get("pavi"), "pavi")
    check_keys(ctx, pavi, PAVI_KEYS, "pavi")
    compare = mapping(ctx, pavi.get("compare"), "pavi.compare")
    check_keys(ctx, compare, ["name", "id"], "pavi.compare")
    scalars = pavi.get("scalars", [])
    if not isinstance(scalars, list) or not all(isinstance(s, str) for s in scalars):
        raise ctx.error("pavi.scalars", f"must be a list of scalar names, got {show(scalars)}")

    use_spe = boolean(ctx, top.get("use_spe", False), "use_spe")
    if use_spe:
        warnings.append("use_spe is a GML cluster feature and is ignored")
    generate_log = boolean(ctx, top.get("generate_log", True), "generate_log")
    tensorboard = boolean(ctx, top.get("tensorboard", False), "tensorboard")
    tracking = parse_tracking(ctx, top.get("tracking"), base_dir)
    metrics = top.get("metrics", "collect")
    if metrics not in ("collect", "none"):
        raise ctx.error("metrics", f"must be collect or none, got {show(metrics)}")
    mock = os.environ.get("MOCK_PAVI", "").strip()
    if mock not in ("", "0", "1", "2"):
        raise ConfigError(f"MOCK_PAVI must be 0, 1 or 2, got {mock!r}")
    if mock == "2":  # the manual's fake pavi: API-compatible, no scalars
        metrics = "none"
    imports = top.get("custom_imports", [])
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, list) or not all(isinstance(i, str) and i for i in imports):
        raise ctx.error("custom_imports", f"must be a list of .py files or module names, got {show(imports)}")

    return TaskConfig(
        source=source, base_dir=base_dir, template=template if not function else None,
        function=function, search_args=args, resources=resources, max_retries=max_retries,
        searcher=searcher,
        reward_attribute=reward, optimize_mode=optimize_mode, scheduler_type=stype, parallel_size=parallel,
        stop=stop, assessor=assessor, filter_criterion=filt, pavi_scalars=list(scalars),
        compare_name=_label(compare.get("name")), compare_id=_label(compare.get("id")),
        generate_log=generate_log, notices=notices,
        collect_metrics=metrics == "collect", custom_imports=list(imports), raw=top, warnings=warnings,
        tensorboard=tensorboard, tracking=tracking, mode=mode, mode_settings=mode_settings, checkpoint=checkpoint,
        pbt=pbt, outcome=None if outcome.plain and outcome.reference_point is None else outcome,
        assessor_objective=judged)


def _assessor_objective(ctx: Ctx, assessor: PluginConfig | None, spec: OutcomeSpec) -> str | None:
    """``scheduler.assessor.objective``: which objective the assessor judges (taken out of its kwargs)."""
    if assessor is None or "objective" not in assessor.kwargs:
        return None
    name = assessor.kwargs.pop("objective")
    if name not in spec.names:
        raise ctx.error("scheduler.assessor.objective",
                        f"must be one of the objectives ({', '.join(spec.names)}), got {show(name)}")
    return str(name)



def _label(value: Any) -> str | None:
    return None if value is None else str(value)


MAX_CONFIG_BYTES = 10 * 2 ** 20  # a search_config.yaml larger than this is a mistake
MAX_CONFIG_VALUES = 1_000_000  # values in the loaded config, aliases counted at every use


def _expanded_size(value: Any, limit: int) -> int:
    """How many values ``value`` holds once every shared (aliased) part is counted at each use;
    stops counting past ``limit``. A YAML alias bomb is small on disk and huge expanded."""
    memo: dict[int, int] = {}

    def size(v: Any) -> int:
        if not isinstance(v, (dict, list)):
            return 1
        if id(v) in memo:
            return memo[id(v)]
        memo[id(v)] = limit + 1  # a cycle counts as too large
        children = [*v.keys(), *v.values()] if isinstance(v, dict) else v
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        memo[id(v)] = total
        return total
    return size(value)


def load_config(path: str, mode: str | None = None) -> TaskConfig:
    """Read and validate a ``search_config.yaml`` (``mode``: a job mode's rules, :mod:`.modes`).

    A file over :data:`MAX_CONFIG_BYTES`, one that is not UTF-8 text, or one whose YAML aliases
    expand to over :data:`MAX_CONFIG_VALUES` values is a one-line ConfigError."""
    source = path
    if not os.path.isfile(path):
        raise ConfigError(f"no such file: {path}")
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"the file is {size:,} bytes: a search config is at most "
                          f"{MAX_CONFIG_BYTES:,} bytes", "", source)
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except RecursionError:
        raise ConfigError(TOO_DEEP, "", source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a UTF-8 text file (byte {exc.start}: {exc.reason})", "", source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or one_line(exc)
        raise ConfigError(f"{where}invalid YAML: {problem}", "", source) from None
    if _expanded_size(raw, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(f"the YAML expands to more than {MAX_CONFIG_VALUES:,} values (aliases "
                          f"counted at each use): a search config is never that large", "", source)
    try:
        return parse_config(raw, source, os.path.dirname(os.path.abspath(path)), mode)
    except RecursionError:
        raise ConfigError(TOO_DEEP, "", source) from None


TOO_DEEP = "nested too deeply to read (hundreds of levels): a search config is never that deep"
