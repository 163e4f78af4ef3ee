"""Builds a task's searcher, stop criterion, filter criterion and assessor from its config.

Custom plugins are loaded from ``custom_imports`` first. Every failure is a :class:`ConfigError`
naming the config field, e.g. ``searcher.type: unknown searcher 'GridSearch' (did you mean ...)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from gml_ray.config.modes import job_mode
from gml_ray.config.task import PluginConfig, TaskConfig
from gml_ray.errors import ConfigError
from gml_ray.plugins.assessor import ASSESSORS, Assessor
from gml_ray.plugins.filter_criterion import FILTER_CRITERIONS, BaseFilterCriterion
from gml_ray.plugins.registry import BuildError, Registry, import_custom, is_plugin_path
from gml_ray.plugins.searcher import SEARCHERS, BaseSearcher
from gml_ray.plugins.stop_criterion import STOP_CRITERIONS, BaseStopCriterion, StopCriterion
from gml_ray.vocab import OptimizeMode


@dataclass
class Components:
    """A task's plugins, built and checked against their contracts."""

    searcher: BaseSearcher
    stop_criterion: BaseStopCriterion
    filter_criterion: BaseFilterCriterion | None
    assessor: Assessor | None


def load_custom_imports(cfg: TaskConfig) -> None:
    for i, entry in enumerate(cfg.custom_imports):
        if is_plugin_path(entry) and not os.path.isfile(os.path.join(cfg.base_dir, entry)):
            raise ConfigError(f"{entry} does not exist (looked in {cfg.base_dir})",
                              f"custom_imports[{i}]", cfg.source)
        try:
            import_custom([entry], cfg.base_dir)
        except Exception as exc:  # noqa: BLE001 - the plugin file itself is broken
            raise ConfigError(f"importing {entry} failed: {type(exc).__name__}: {exc}",
                              f"custom_imports[{i}]", cfg.source) from None


def _build(registry: Registry, plugin: PluginConfig, cfg: TaskConfig, contract: type,
           extra: dict[str, Any] | None = None, shared: dict[str, Any] | None = None) -> Any:
    """Build ``plugin`` from ``registry``; a ConfigError at its field if it fails to build or
    does not meet ``contract`` (its base class, or the Protocol it must satisfy)."""
    try:
        built = registry.build({"type": plugin.type, **plugin.kwargs}, shared=shared, **(extra or {}))
    except BuildError as exc:  # the same errors as the manual's build_* API, with the field's path
        raise ConfigError(str(exc), f"{plugin.path}.{exc.key}" if exc.key else plugin.path,
                          cfg.source) from None
    if not isinstance(built, contract):
        how = "subclass" if not getattr(contract, "_is_protocol", False) else "have the methods of"
        raise ConfigError(f"{plugin.type} is not a {registry.name}: it must {how} "
                          f"{contract.__module__}.{contract.__qualname__}", f"{plugin.path}.type", cfg.source)
    return built


def build_components(cfg: TaskConfig) -> Components:
    """Import plugins and build every component, validating their kwargs."""
    load_custom_imports(cfg)
    # Passed only to searchers whose constructor takes them (parallel_size: batch proposals;
    # max_tries: the budget, which sizes LA-MCTS's initial design).
    spec = cfg.outcome_spec
    shared: dict[str, Any] = {"reward_attribute": cfg.reward_attribute, "optimize_mode": cfg.optimize_mode,
                              "parallel_size": cfg.parallel_size}
    if cfg.outcome is not None:  # several objectives or constraints (OptunaSearcher takes them)
        shared["outcome_spec"] = spec
    if cfg.stop.max_tries is not None:
        shared["max_tries"] = cfg.stop.max_tries
    if cfg.mode is not None:  # e.g. the MuJoCo policy's size, for searchers that take it
        shared.update(job_mode(cfg.mode).searcher_kwargs(cfg.mode_settings, cfg.search_args))
    searcher: BaseSearcher = _build(SEARCHERS, cfg.searcher, cfg, BaseSearcher,
                                    extra={"search_space": cfg.search_space()}, shared=shared)
    # A searcher whose constructor takes neither still runs under the task's mode and reward.
    searcher.optimize_mode = OptimizeMode.parse(cfg.optimize_mode)
    if searcher.reward_attribute is None:
        searcher.reward_attribute = cfg.reward_attribute
    if cfg.outcome is not None:
        searcher.outcome_spec = spec
    if spec.multi and not type(searcher).multi_objective:
        takers = sorted(name for name, cls in SEARCHERS.module_dict.items()
                        if issubclass(cls, BaseSearcher) and cls.multi_objective)
        raise ConfigError(f"{cfg.searcher.type} optimises one objective and reward_attribute names "
                          f"{len(spec.objectives)}: use {', '.join(takers)}", "searcher.type", cfg.source)
    stop = cfg.stop
    if stop.custom is not None:
        stop_criterion = _build(STOP_CRITERIONS, stop.custom, cfg, BaseStopCriterion)
    else:
        stop_criterion = StopCriterion(stop.max_tries, stop.time_limits, stop.max_reward,
                                       stop.time_limits_per_job)
    filt = _build(FILTER_CRITERIONS, cfg.filter_criterion, cfg, BaseFilterCriterion) \
        if cfg.filter_criterion else None
    # it judges one objective (assessor.objective, default the first), in that objective's mode
    assessor = _build(ASSESSORS, cfg.assessor, cfg, Assessor,
                      shared={"optimize_mode": cfg.judged.mode}) if cfg.assessor else None
    if not cfg.collect_metrics:
        _check_without_scalars(cfg, searcher, assessor)
    return Components(searcher, stop_criterion, filt, assessor)


def _check_without_scalars(cfg: TaskConfig, searcher: BaseSearcher, assessor: Assessor | None) -> None:
    """``MOCK_PAVI=2`` / ``metrics: none`` runs jobs without scalars: nothing may need them."""
    why = "MOCK_PAVI=2" if os.environ.get("MOCK_PAVI", "").strip() == "2" else "metrics: none"
    if assessor is not None:
        raise ConfigError(f"{cfg.assessor.type} judges jobs by their scalars, which {why} does not "  # type: ignore[union-attr]
                          f"collect: remove the assessor or unset {why}", "scheduler.assessor",
                          cfg.source)
    if searcher.uses_rewards:
        raise ConfigError(f"{cfg.searcher.type} learns from rewards, which {why} does not collect: "
                          f"use GridSearcher, RandomSearcher or BatchSearcher, or unset {why}",
                          "searcher.type", cfg.source)
