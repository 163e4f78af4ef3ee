"""Plugins for the configs in this folder (docs: "Writing plugins"), loaded through their
`custom_imports`. The imports are the manual's (section 5) with `gml` replaced by `gml_ray`.
"""
import random

from gml_ray.assessors import ASSESSORS, AssessResult, BaseAssessor
from gml_ray.schedulers import (
    FILTER_CRITERIONS,
    STOP_CRITERIONS,
    BaseFilterCriterion,
    BaseStopCriterion,
    get_current_time,
)
from gml_ray.searchers.base_searcher import BaseSearcher
from gml_ray.searchers.builder import SEARCHERS


@FILTER_CRITERIONS.register_module()
class SmallBatchLongRun(BaseFilterCriterion):
    def filter(self, job):  # True drops the config before its job is launched
        return job.arg_dict['batch-size'] >= 512 and job.arg_dict['config(epochs)'] >= 4


@STOP_CRITERIONS.register_module()
class MyStopCriterion(BaseStopCriterion):
    """Stops launching jobs after `max_jobs` launches or `max_minutes` minutes."""

    def __init__(self, max_jobs=None, max_minutes=None):
        self.max_jobs, self.max_minutes = max_jobs, max_minutes

    def before_run(self, scheduler):
        self.start = get_current_time()

    def before_iter(self, scheduler):  # before each launch
        if self.max_jobs is not None and scheduler.num_launched >= self.max_jobs:
            scheduler.is_stop = True
        if self.max_minutes is not None and get_current_time() - self.start > 60 * self.max_minutes:
            scheduler.is_stop = True


@SEARCHERS.register_module()
class ShuffledGridSearcher(BaseSearcher):
    """Every config of a finite space once, in a seeded random order. It learns nothing."""

    uses_rewards = False  # its proposals do not depend on rewards

    def __init__(self, search_space, reward_attribute='acc', optimize_mode='maximize', seed=0):
        super().__init__(search_space, reward_attribute, optimize_mode)
        self.configs = search_space.grid()  # a list of configs; Real args need a step
        random.Random(seed).shuffle(self.configs)

    def get_config(self):
        if not self.configs:
            return None  # exhausted: the task ends once running jobs do
        return self._proposed(self.configs.pop())

    def __len__(self):
        return len(self.configs)


@ASSESSORS.register_module()
class MyAssessor(BaseAssessor):
    """Stops a job whose latest value is still below `min_value` after `start_step` reports."""

    def __init__(self, optimize_mode='maximize', start_step=5, min_value=0.5):
        super().__init__(optimize_mode)
        self.start_step, self.min_value = start_step, min_value

    def assess_job(self, job_id, history):
        # history: [{'iteration': 0, 'value': 0.9, 'created': 1640238929992}, ...]
        if len(history) >= self.start_step and history[-1]['value'] < self.min_value:
            return AssessResult.Bad
        return AssessResult.Good

    def job_end(self, job_id):
        pass
