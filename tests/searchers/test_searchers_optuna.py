"""OptunaSearcher: the space mapping, the same configs as raw Optuna, pending trials, failures,
resume, the missing-extra error, and a real run through `gml-ray run`, `ctl show` and `ctl report`."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest

optuna = pytest.importorskip("optuna")  # the [optuna] extra; CI's [dev] installs it

from helpers import resumed_core, write_files  # noqa: E402 - after the skip

from gml_ray.searchers import SEARCHERS, OptunaSearcher  # noqa: E402
from gml_ray.space import Categorical, Dict, File, Int, Nested, Real, config_key  # noqa: E402
from gml_ray.objectives import Objective, Outcome, OutcomeSpec, parse_constraint  # noqa: E402
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus, OptimizeMode

optuna.logging.set_verbosity(optuna.logging.WARNING)
BIN = os.path.dirname(sys.executable)
TrialState = optuna.trial.TrialState

SPACE = Dict(bs=Categorical(32, 64, 128), depth=Int(2, 10, step=2), lr=Real(1e-4, 1e-1, log=True),
             drop=Real(0.0, 0.5, step=0.1), opt=Nested({"name": "sgd", "m": 0.9}, {"name": "adam", "m": 0.0}),
             cfg=File("base.yaml", epochs=Categorical(3, 4), gamma=Real(0.5, 0.9)))


def score(c: dict) -> float:
    return (-abs(c["bs"] - 64) / 64 - (c["depth"] - 6) ** 2 / 10 - abs(c["lr"] - 0.01) * 10
            - c["drop"] + (c["opt"]["name"] == "adam") + c["cfg"]["epochs"] / 4 - c["cfg"]["gamma"])


def raw_config(trial: optuna.trial.Trial) -> dict:
    """What a user of raw Optuna writes for SPACE: suggest each value in the same order."""
    opts = [{"name": "sgd", "m": 0.9}, {"name": "adam", "m": 0.0}]
    return {"bs": trial.suggest_categorical("bs", [32, 64, 128]),
            "depth": trial.suggest_int("depth", 2, 10, step=2),
            "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            "drop": trial.suggest_float("drop", 0.0, 0.5, step=0.1),
            "opt": opts[trial.suggest_categorical("opt", [0, 1])],
            "cfg": {"epochs": trial.suggest_categorical("cfg.epochs", [3, 4]),
                    "gamma": trial.suggest_float("cfg.gamma", 0.5, 0.9)}}


def same(a: dict, b: dict) -> bool:
    # stepped Reals: gml-ray gives its grid point (0.30000000000000004 from Optuna -> 0.3)
    def eq(x, y):
        if isinstance(x, dict):
            return isinstance(y, dict) and same(x, y)
        if isinstance(x, float):
            return x == pytest.approx(y, rel=1e-12, abs=1e-12)
        return x == y
    return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)


def test_space_maps_to_optuna_distributions():
    d = OptunaSearcher(SPACE, seed=0).distributions
    dist = optuna.distributions
    assert d == {"bs": dist.CategoricalDistribution([32, 64, 128]),
                 "depth": dist.IntDistribution(2, 10, step=2),
                 "lr": dist.FloatDistribution(1e-4, 1e-1, log=True),
                 "drop": dist.FloatDistribution(0.0, 0.5, step=0.1),
                 "opt": dist.CategoricalDistribution([0, 1]),      # Nested: the index of the dict
                 "cfg.epochs": dist.CategoricalDistribution([3, 4]),
                 "cfg.gamma": dist.FloatDistribution(0.5, 0.9)}
    # non-plain or ==-equal choices go by index; Int's upper bound is its last grid point
    d = OptunaSearcher(Dict(a=Categorical([1, 2], [3]), b=Categorical(1, True), c=Int(0, 9, step=4)),
                       seed=0).distributions
    assert d["a"].choices == (0, 1) and d["b"].choices == (0, 1)
    assert d["c"] == optuna.distributions.IntDistribution(0, 8, step=4)


@pytest.mark.parametrize("sampler, kwargs", [("tpe", {"n_startup_trials": 5}), ("random", {}),
                                             ("qmc", {"warn_asynchronous_seeding": False})])
@pytest.mark.parametrize("parallel", [1, 3])
def test_same_seed_same_results_same_configs_as_raw_optuna(sampler, kwargs, parallel):
    searcher = OptunaSearcher(SPACE, sampler=sampler, sampler_kwargs=kwargs, seed=7)
    cls = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
           "qmc": optuna.samplers.QMCSampler}[sampler]
    study = optuna.create_study(direction="maximize", sampler=cls(seed=7, **kwargs))
    ours, raw, pending_ours, pending_raw = [], [], [], []
    for _ in range(16):
        # the scheduler's pattern: `parallel` outstanding, the oldest ends first
        while len(pending_ours) < parallel:
            c = searcher.get_config()
            trial = study.ask()
            r = raw_config(trial)
            ours.append(c), raw.append(r), pending_ours.append(c), pending_raw.append((trial, r))
        c = pending_ours.pop(0)
        trial, r = pending_raw.pop(0)
        searcher.update(c, score(c))
        study.tell(trial, score(r))
    assert len(ours) == len(raw) >= 16
    assert all(same(a, b) for a, b in zip(ours, raw)), next((a, b) for a, b in zip(ours, raw) if not same(a, b))
    # and a different seed gives different configs
    other = OptunaSearcher(SPACE, sampler=sampler, sampler_kwargs=kwargs, seed=8)
    assert not same(other.get_config(), ours[0])


def test_cmaes_on_reals_matches_raw_optuna():
    space = Dict(x=Real(-3.0, 3.0), y=Real(-3.0, 3.0))
    searcher = OptunaSearcher(space, sampler="cmaes", seed=1, optimize_mode="minimize")
    study = optuna.create_study(sampler=optuna.samplers.CmaEsSampler(seed=1))
    for _ in range(20):
        c = searcher.get_config()
        t = study.ask()
        r = {"x": t.suggest_float("x", -3.0, 3.0), "y": t.suggest_float("y", -3.0, 3.0)}
        assert c == r
        searcher.update(c, c["x"] ** 2 + c["y"] ** 2)
        study.tell(t, r["x"] ** 2 + r["y"] ** 2)
    assert searcher.get_best_reward() == study.best_value < 1.0


def test_pending_trials_are_running_and_failures_are_fail_trials():
    s = OptunaSearcher(SPACE, seed=0)
    a, b, c = s.get_config(), s.get_config(), s.get_config()
    assert [t.state for t in s.study.trials] == [TrialState.RUNNING] * 3
    s.job_failed(a, "ERROR")
    s.job_failed(b, "KILLED")
    s.update(c, -1.0)
    assert [t.state for t in s.study.trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert s.get_best_reward() == -1.0 and s.get_best_config() == c
    assert s.history == [(a, None), (b, None), (c, -1.0)]
    assert s.failed == {config_key(a): "ERROR", config_key(b): "KILLED"}


def test_no_config_twice_and_a_finite_space_ends():
    space = Dict(a=Categorical(1, 2, 3), b=Int(0, 2), c=Nested({"z": 0}, {"z": 1}))  # 18 configs
    s = OptunaSearcher(space, seed=0, max_duplicates=3)
    seen = []
    for _ in range(18):
        c = s.get_config()
        seen.append(config_key(c))
        s.update(c, c["a"] + c["b"])
    assert len(set(seen)) == 18 and len(s) == 0
    assert s.get_config() is None
    assert s.duplicates > 0  # TPE proposed some configs again: told their first result, not run
    complete = [t for t in s.study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 18 + s.duplicates
    for t in complete:  # a repeat was told what its config's job got
        c = s._decode(t.params)
        assert t.value == c["a"] + c["b"]


def test_resume_rebuilds_the_study_from_earlier_results():
    first = OptunaSearcher(SPACE, seed=3)
    told = []
    for i in range(8):
        c = first.get_config()
        if i == 2:
            first.job_failed(c, "ERROR")
            told.append((c, None))
        else:
            first.update(c, score(c))
            told.append((c, score(c)))
    # a new searcher (as `--resume` builds) is told the same results, then asked
    again = OptunaSearcher(SPACE, seed=3)
    for c, r in told:
        again.update(c, r) if r is not None else again.job_failed(c, "ERROR")
    states = [t.state for t in again.study.trials]
    assert states.count(TrialState.COMPLETE) == 7 and states.count(TrialState.FAIL) == 1
    assert [t.value for t in again.study.trials if t.value is not None] == [r for _, r in told if r is not None]
    # the study holds the earlier configs as params (the same as a raw study's)
    assert all(same(again._decode(t.params), c) for t, (c, _) in zip(again.study.trials, told))
    # TPE is still in its random startup (10 trials): the rebuilt sampler replays the 8 earlier
    # draws, which are skipped, and the resumed search proposes what the uninterrupted one would
    nxt, expected = again.get_config(), first.get_config()
    assert config_key(nxt) not in {config_key(c) for c, _ in told}
    assert nxt == expected and again.duplicates == 8 and again.random_fallbacks == 0
    # past the startup both continue with the same model and unseen configs
    for _ in range(4):
        again.update(nxt, score(nxt)), first.update(expected, score(expected))
        nxt, expected = again.get_config(), first.get_config()
        assert config_key(nxt) not in {config_key(c) for c, _ in told}


def test_setting_errors():
    with pytest.raises(ValueError, match="sampler must be one of tpe, cmaes, gp, random, qmc"):
        OptunaSearcher(SPACE, sampler="nsga")
    with pytest.raises(ValueError, match="sampler_kwargs: TPESampler rejected them"):
        OptunaSearcher(SPACE, sampler_kwargs={"n_startup": 3})
    with pytest.raises(ValueError, match="give the seed as the searcher's `seed`"):
        OptunaSearcher(SPACE, sampler_kwargs={"seed": 3})
    assert SEARCHERS.get("OptunaSearcher") is OptunaSearcher


def test_cmaes_without_its_package_is_an_error_at_build_time(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name == "cmaes":
            raise ModuleNotFoundError("No module named 'cmaes'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"cmaes is not installed .*pip install 'gml-ray\[optuna\]'"):
        OptunaSearcher(SPACE, sampler="cmaes")
    OptunaSearcher(SPACE, sampler="tpe")  # the other samplers do not need it


def test_without_optuna_the_run_is_a_one_line_config_error(tmp_path):
    write_files(tmp_path, {"train.py": "print(1)\n", "search_config.yaml": """
        task:
          template: "python train.py {x}"
          search_args: [{type: Real, name: x, data: [0.0, 1.0]}]
        searcher: {type: OptunaSearcher, sampler: tpe}
    """})
    # optuna made unimportable, as in an environment without the extra
    code = textwrap.dedent("""
        import sys
        class NoOptuna:
            def find_spec(self, name, path=None, target=None):
                if name == "optuna" or name.startswith("optuna."):
                    raise ModuleNotFoundError("No module named 'optuna'", name="optuna")
        sys.meta_path.insert(0, NoOptuna())
        from gml_ray.cli.main import main
        sys.argv = ["gml-ray", "run", "search_config.yaml", "--task", "t", "--workdir", "wd"]
        main()
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "searcher" in lines[0]
    assert "optuna is not installed" in lines[0] and "pip install 'gml-ray[optuna]'" in lines[0]


# ---- real runs ---------------------------------------------------------------------------------------

CURVES = """
import time
import gml_ray

def train(config):
    # a rising curve towards `top`; the higher x's top, the better
    top = 1.0 - (config["x"] - 0.7) ** 2 - config["k"] / 100
    for epoch in range(config["epochs"]):
        gml_ray.report(acc=top * (1 - 0.6 ** (epoch + 1)))
        time.sleep(0.1)
"""


def test_optuna_and_asha_through_gml_ray_run_ctl_show_and_report(tmp_path, ray_head):
    write_files(tmp_path, {"curves.py": CURVES, "search_config.yaml": """
        task:
          function: "curves:train"
          search_args:
            - {type: Real, name: x, data: [0.0, 1.0]}
            - {type: Int, name: k, data: [0, 20], step: 5}
            - {type: Categorical, name: epochs, data: [9]}
        searcher:
          type: OptunaSearcher
          sampler: tpe
          sampler_kwargs: {n_startup_trials: 4}
          seed: 5
          reward_attribute: acc
        scheduler:
          parallel_size: 2
          stop_criterion: {max_tries: 12}
          assessor: {type: AshaAssessor, min_step: 1, reduction_factor: 3, max_step: 9}
    """})
    env = dict(os.environ, COLUMNS="200")
    gml = os.path.join(BIN, "gml-ray")
    result = subprocess.run([gml, "run", "search_config.yaml", "--task", "opt", "--workdir", "wd",
                             "--address", ray_head], cwd=tmp_path, capture_output=True, text=True,
                            timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    jobs = Store(str(tmp_path / "wd"), create=False).jobs("opt")
    assert len(jobs) == 12 and len({config_key(j["config"]) for j in jobs}) == 12
    statuses = [j["status"] for j in jobs]
    assert set(statuses) <= {JobStatus.FINISHED, JobStatus.EARLY_STOPPED}
    assert JobStatus.FINISHED in statuses and JobStatus.EARLY_STOPPED in statuses
    store = Store(str(tmp_path / "wd"), create=False)
    for j in jobs:  # a stopped job was stopped at a rung (1 or 3; ended within ~0.1 s), not at the end
        n = len(store.scalars("opt", [j["job_id"]], ["acc"]))
        assert n == 9 if j["status"] == JobStatus.FINISHED else 1 <= n < 9, (j["name"], n, j["status"])
    # each stop is the assessor's verdict at rung 1 or 3 (scheduler.log has its reason)
    with open(tmp_path / "wd" / "tasks" / "opt" / "scheduler.log") as f:
        verdicts = [line for line in f if " ranks " in line and "the top" in line]
    assert len(verdicts) == statuses.count(JobStatus.EARLY_STOPPED)
    assert all(" at rung 1 " in v or " at rung 3 " in v for v in verdicts), verdicts
    show = subprocess.run([gml, "ctl", "show", "--task", "opt", "--workdir", "wd"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert show.returncode == 0, show.stderr
    assert "EARLY_STOPPED" in show.stdout and "OptunaSearcher" not in show.stderr
    report = subprocess.run([gml, "ctl", "report", "--task", "opt", "--workdir", "wd", "--out", "r.html"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000


OBJECTIVE = """
import gml_ray

def train(config):
    gml_ray.report(score=-(config["x"] - 0.3) ** 2 - config["k"] / 100)
"""


def test_resume_continues_the_optuna_search(run_task, tmp_path):

    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    first = run_task("""
task:
  function: "objective:train"
  search_args:
    - {type: Real, name: x, data: [0.0, 1.0]}
    - {type: Int, name: k, data: [0, 20]}
searcher: {type: OptunaSearcher, reward_attribute: score, seed: 11}
scheduler: {parallel_size: 2, stop_criterion: {max_tries: 4}}
""", {"objective.py": OBJECTIVE})
    earlier = first.jobs
    assert len(earlier) == 4
    cfg = load_config(str(tmp_path / "code" / "search_config.yaml"))
    # the searcher a resume builds holds every earlier result as a finished trial
    with resumed_core(first, cfg) as core:
        trials = core.searcher.study.trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
        assert sorted(t.value for t in trials) == sorted(j["reward"] for j in earlier)

    # a finished search goes on when its config asks for more tries (the one edit a resume takes)
    path = tmp_path / "code" / "search_config.yaml"
    path.write_text(path.read_text().replace("max_tries: 4", "max_tries: 8"))
    cfg = load_config(str(path))
    again = NaiveScheduler(first.work_dir, cfg, task="t", resume=True)
    again.prepare()
    again.run()
    jobs = first.store.jobs("t")
    assert len(jobs) == 8 and len({config_key(j["config"]) for j in jobs}) == 8
    # TPE's first 10 trials are seeded random draws: the resumed run goes on with draws 5..8,
    # as the uninterrupted search would have, instead of starting over with draws 1..4
    fresh = OptunaSearcher(cfg.search_space(), reward_attribute="score", seed=11)
    draws = [fresh.get_config() for _ in range(8)]
    assert [config_key(j["config"]) for j in jobs] == [config_key(c) for c in draws]


def test_random_fallback_when_optuna_keeps_repeating():
    # random sampling of a 6-config space with no duplicate budget: its repeats go to the fallback
    space = Dict(a=Categorical("p", "q"), b=Real(0.0, 1.0, step=0.5))  # 6 configs
    s = OptunaSearcher(space, sampler="random", seed=0, max_duplicates=0)
    seen = []
    for _ in range(6):
        c = s.get_config()
        seen.append(config_key(c))
        s.update(c, 1.0)
    assert len(set(seen)) == 6 and s.get_config() is None
    assert s.random_fallbacks > 0
    # every proposed config is a COMPLETE trial with its own params, fallbacks included
    complete = [t for t in s.study.trials if t.state == TrialState.COMPLETE]
    assert {config_key(s._decode(t.params)) for t in complete} == set(seen)


MO_SPEC = OutcomeSpec((Objective("f1", OptimizeMode.MINIMIZE), Objective("f2", OptimizeMode.MINIMIZE)),
                      (parse_constraint("c <= 0"),))
MO_SPACE = Dict(x=Real(-2.0, 2.0), y=Real(-2.0, 2.0))


def mo_values(x: float, y: float) -> tuple[float, float, float]:
    """Two objectives and a constraint value (feasible below the line x + y = 1)."""
    return x * x + y * y, (x - 1) ** 2 + y * y, x + y - 1


MO_SAMPLERS = [("nsga2", optuna.samplers.NSGAIISampler), ("nsga3", optuna.samplers.NSGAIIISampler),
               ("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
               ("qmc", optuna.samplers.QMCSampler)]


@pytest.mark.parametrize("sampler, cls, n", [(s, c, 60) for s, c in MO_SAMPLERS]
                         # GP's asks take seconds each with 2 objectives and a constraint: its 10
                         # random start-up trials, then 4 model-based ones
                         + [("gp", optuna.samplers.GPSampler, 14)])
@pytest.mark.parametrize("seed", [0, 3, 11])
def test_multi_objective_with_constraints_is_raw_optuna(sampler, cls, n, seed):
    searcher = OptunaSearcher(MO_SPACE, sampler=sampler, seed=seed, outcome_spec=MO_SPEC)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=cls(seed=seed))
    dists = {"x": optuna.distributions.FloatDistribution(-2.0, 2.0),
             "y": optuna.distributions.FloatDistribution(-2.0, 2.0)}
    ours, raw = [], []
    while len(ours) < n:  # one at a time, as parallel_size 1 runs them
        c = searcher.get_config()
        f1, f2, con = mo_values(c["x"], c["y"])
        searcher.tell(c, f1, "FINISHED", Outcome((f1, f2), (MO_SPEC.constraints[0].violation(con),)))
        ours.append((c["x"], c["y"]))
    while len(set(raw)) < n:  # raw Optuna evaluates a repeated config again (NSGA-II copies parents)
        t = study.ask(dists)
        r1, r2, rcon = mo_values(t.params["x"], t.params["y"])
        t.set_constraint("c <= 0", rcon)
        study.tell(t, [r1, r2])
        raw.append((t.params["x"], t.params["y"]))
    # the same configs in the same order, each run once; the study the same trial for trial
    assert ours == list(dict.fromkeys(raw))
    assert [t.values for t in searcher.study.trials] == [t.values for t in study.trials]
    ours = [{"x": x, "y": y} for x, y in ours]
    # resumed: a new searcher told the same results continues as the uninterrupted study would
    again = OptunaSearcher(MO_SPACE, sampler=sampler, seed=seed, outcome_spec=MO_SPEC)
    for c in ours:
        f1, f2, con = mo_values(c["x"], c["y"])
        again.tell(c, f1, "FINISHED", Outcome((f1, f2), (con,)))
    told = again.study.trials
    assert [t.params for t in told] == [{"x": c["x"], "y": c["y"]} for c in ours]
    assert [t.constraints for t in told] == [{"c <= 0": mo_values(c["x"], c["y"])[2]} for c in ours]
    assert {tuple(t.values) for t in again.study.best_trials} == {tuple(t.values) for t in study.best_trials}


def test_a_job_without_its_constrained_scalar_is_a_failed_trial():
    searcher = OptunaSearcher(MO_SPACE, sampler="nsga2", seed=0, outcome_spec=MO_SPEC)
    c = searcher.get_config()
    searcher.tell(c, 1.0, "FINISHED", Outcome((1.0, 2.0), (math.inf,)))  # 'c' never reported
    assert searcher.study.trials[0].state == optuna.trial.TrialState.FAIL


def test_cmaes_refuses_several_objectives():
    with pytest.raises(ValueError, match="sampler cmaes optimises one objective"):
        OptunaSearcher(MO_SPACE, sampler="cmaes", seed=0, outcome_spec=MO_SPEC)


def test_results_of_other_tasks_are_not_replays():
    """Warm-started results (another task's): a repeat of one of their configs is told its known
    value and counts toward max_duplicates, as any repeat does; on --resume (the task's own
    results) the seeded sampler's replays of them are free FAILs."""
    space = Dict(a=Categorical(0, 1, 2), b=Categorical(0, 1, 2))
    told = [({"a": a, "b": b}, float(a + b)) for a in range(3) for b in range(2)]

    def searcher(warm: bool) -> OptunaSearcher:
        s = OptunaSearcher(space, optimize_mode="minimize", sampler="tpe", seed=0,
                           sampler_kwargs={"n_startup_trials": 2})
        for config, value in told:
            s.tell(config, value, JobStatus.FINISHED)
        if warm:
            s.warm_started(len(told))
        return s

    warm, resumed = searcher(True), searcher(False)
    assert warm.get_config() is not None and resumed.get_config() is not None
    assert warm.duplicates > 0 and resumed.duplicates > 0  # TPE goes back to the known best first
    state = optuna.trial.TrialState
    # warm: every repeat is a COMPLETE trial with its config's known value, none a FAIL
    assert not [t for t in warm.study.trials if t.state == state.FAIL]
    repeats = warm.study.trials[len(told):-1]
    assert repeats and all(t.value == t.params["a"] + t.params["b"] for t in repeats)
    # resume: the replays are FAILs
    assert [t for t in resumed.study.trials if t.state == state.FAIL]
