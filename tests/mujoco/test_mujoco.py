"""The MuJoCo benchmark (manual section 6): the objective, its config rules and runs with --benchmark."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import REPO_DIR, write_files

from gml_ray.config import parse_config
from gml_ray.errors import ConfigError
from gml_ray.mujoco.objective import (
    FUNC_TYPES,
    HOPPER_MU,
    HOPPER_SIGMA,
    Objective,
    job_seed,
    policy_size,
    rollout_seeds,
)
from gml_ray.store.store import Store
from gml_ray.vocab import JobStatus

BIN = os.path.dirname(sys.executable)


def bench_yaml(func_type: str | None = "swimmer", n: int | None = None, searcher: str = "RandomSearcher",
               scheduler: str = "", template: str = 'template: ""', arg: str = "type: Real") -> str:
    n = n if n is not None else (policy_size(func_type) if func_type in FUNC_TYPES else 16)
    args = "\n".join(f"    - {{{arg}, name: a{i}, data: [-1, 1]}}" for i in range(n))
    ft = f"  func_type: {func_type}\n" if func_type else ""
    return (f"task:\n  {template}\n  search_args:\n{args}\n"
            f"searcher:\n  type: {searcher}\n  reward_attribute: default\n  seed: 3\n"
            f"scheduler:\n{ft}  parallel_size: 2\n{scheduler}")


def gml(*args, cwd=None, timeout=120):
    env = dict(os.environ, COLUMNS="250")
    return subprocess.run([os.path.join(BIN, "gml-ray"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def rollout_actors() -> dict:
    """actor id -> state of every rollout actor the session's Ray knows (GCS; no dashboard needed)."""
    import ray._private.state
    return {k: v["State"] for k, v in ray._private.state.actors().items()
            if "RolloutWorker" in v.get("ActorClassName", "")}


def wait_all_dead(timeout=15.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        states = rollout_actors()
        if all(s == "DEAD" for s in states.values()):
            return states
        time.sleep(0.2)
    raise AssertionError(f"rollout actors still alive: {rollout_actors()}")


# ---- the objective (plain Python) -------------------------------------------------------------

def test_policy_sizes_and_shapes():
    assert policy_size("swimmer") == 16 and policy_size("hopper") == 33
    sw = Objective("swimmer")
    assert sw.env.observation_space.shape == (8,) and sw.env.action_space.shape == (2,)
    assert sw.policy(np.arange(16)).shape == (2, 8)
    assert sw.policy(np.arange(16))[1, 0] == 8  # row-major: M = x.reshape(n_act, n_obs)
    with pytest.raises(ValueError, match="16 numbers"):
        sw.policy(np.zeros(15))
    r = sw.evaluate(np.zeros(16), seed=1)
    assert len(r["returns"]) == 3 and r["steps"] == 3000  # Swimmer never terminates: 3 x 1000 steps
    assert r["value"] == pytest.approx(np.mean(r["returns"]))
    # A still swimmer only drifts from its random start: nowhere near the 325 target.
    assert abs(r["value"]) < 40
    assert Objective("swimmer", rollouts=1).evaluate(np.zeros(16), 1)["steps"] == 1000


def test_same_seed_same_return_and_seeds_derive_from_the_job():
    sw = Objective("swimmer")
    x = np.random.default_rng(0).uniform(-1, 1, 16)
    a, b = sw.evaluate(x, seed=11), Objective("swimmer").evaluate(x, seed=11)
    assert a["returns"] == b["returns"]  # another env (another actor) gives the same result
    assert sw.evaluate(x, seed=12)["returns"] != a["returns"]
    assert job_seed(5, 1) == job_seed(5, 1) != job_seed(5, 2) != job_seed(6, 1)
    assert len(set(rollout_seeds(7, 3))) == 3


def test_hopper_normalisation_constants_are_applied():
    hop = Objective("hopper", rollouts=1)
    assert hop.mu.tolist() == list(HOPPER_MU) and hop.sigma.tolist() == list(HOPPER_SIGMA)
    x = np.random.default_rng(1).uniform(-0.3, 0.3, 33)
    seed = 4
    got = hop.evaluate(x, seed)
    # the same rollout by hand: a = M @ ((s - mu) / sigma), unclipped, until terminated/truncated
    import gymnasium as gym
    env = gym.make("Hopper-v5")
    M = x.reshape(3, 11)
    s, _ = env.reset(seed=rollout_seeds(seed, 1)[0])
    total, steps = 0.0, 0
    while True:
        s, r, term, trunc, _ = env.step(M @ ((s - np.array(HOPPER_MU)) / np.array(HOPPER_SIGMA)))
        total, steps = total + r, steps + 1
        if term or trunc:
            break
    assert got["returns"] == [pytest.approx(total)] and got["steps"] == steps
    # without the normalisation the same vector behaves differently
    hop.mu, hop.sigma = np.zeros(11), np.ones(11)
    assert hop.evaluate(x, seed)["returns"] != got["returns"]


# ---- config rules -----------------------------------------------------------------------------

def test_benchmark_config_parses():
    cfg = parse_config(__import__("yaml").safe_load(bench_yaml()), mode="mujoco")
    assert cfg.mode_settings.func_type == "swimmer" and cfg.mode == "mujoco" and cfg.template is None
    assert cfg.arg_names == [f"a{i}" for i in range(16)] and cfg.mode_settings.rollouts == 3
    assert cfg.reward_attribute == "default"
    # template may be absent too; the manual's LamctsSearcher key `dims` is checked, then shared
    raw = __import__("yaml").safe_load(bench_yaml("hopper").replace('template: ""', ""))
    raw["searcher"]["dims"] = 33
    cfg = parse_config(raw, mode="mujoco")
    assert cfg.mode_settings.func_type == "hopper" and "dims" not in cfg.searcher.kwargs
    raw["searcher"]["dims"] = 16
    with pytest.raises(ConfigError, match="searcher.dims: hopper has 33 dims, got 16"):
        parse_config(raw, mode="mujoco")


@pytest.mark.parametrize("name", sorted(
    f for f in os.listdir(os.path.join(REPO_DIR, "benchmarks", "mujoco"))
    if f.endswith(".yaml")))
def test_the_shipped_benchmark_configs_parse_and_build_their_searcher(name):
    """The files benchmarks/README.md tells users to run (their searcher settings included)."""
    from gml_ray.config import load_config
    from gml_ray.engine.components import build_components

    path = os.path.join(REPO_DIR, "benchmarks", "mujoco", name)
    cfg = load_config(path, mode="mujoco")
    assert cfg.mode_settings.func_type == name.split("_")[0].split(".")[0]
    searcher = build_components(cfg).searcher
    config = searcher.get_config()
    assert sorted(config) == sorted(cfg.arg_names)


@pytest.mark.parametrize("text, benchmark, message", [
    (bench_yaml(func_type=None, n=12), True,
     "scheduler.func_type: is required with --benchmark: swimmer or hopper (or 16 or 33 Real args"),
    (bench_yaml(func_type="ant"), True, "scheduler.func_type: must be swimmer or hopper, got 'ant'"),
    (bench_yaml(n=12), True, "task.search_args: swimmer needs 16 Real args a0..a15, got 12"),
    (bench_yaml("hopper", n=16), True, "task.search_args: hopper needs 33 Real args a0..a32, got 16"),
    (bench_yaml(arg="type: Real, step: 0.5"), True, "task.search_args[0]: swimmer needs 16 Real args"),
    (bench_yaml(template='template: "python x.py"'), True, "task.template: must be empty with --benchmark"),
    (bench_yaml(), False, "task.template: is required (or run the MuJoCo benchmark with --benchmark)"),
])
def test_benchmark_config_errors(text, benchmark, message):
    with pytest.raises(ConfigError) as err:
        parse_config(__import__("yaml").safe_load(text), "c.yaml", mode="mujoco" if benchmark else None)
    assert message in str(err.value)


@pytest.mark.parametrize("text, flags, message", [
    (bench_yaml(n=12), ["--benchmark"], "swimmer needs 16 Real args a0..a15, got 12"),
    (bench_yaml(func_type=None, n=12), ["--benchmark"], "scheduler.func_type: is required with --benchmark"),
    (bench_yaml(), [], "task.template: is required (or run the MuJoCo benchmark with --benchmark)"),
])
def test_config_errors_through_the_cli(tmp_path, text, flags, message):
    write_files(tmp_path, {"c.yaml": text})
    r = gml("run", "c.yaml", "--task", "x", "--workdir", "wd", *flags, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1


# ---- runs -------------------------------------------------------------------------------------

def test_cli_benchmark_run_then_show_and_resume_needs_the_flag(tmp_path, ray_head):
    write_files(tmp_path, {"swimmer.yaml": bench_yaml(scheduler="  stop_criterion: {max_tries: 4}\n")})
    r = gml("run", "swimmer.yaml", "--task", "sw", "--benchmark", "--workdir", "wd", "--address", ray_head,
            cwd=tmp_path, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "task sw FINISHED (max_tries=4 reached): 4 FINISHED" in r.stdout
    store = Store(str(tmp_path / "wd"), create=False)
    jobs = store.jobs("sw")
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 4
    assert all(math.isfinite(j["reward"]) for j in jobs)
    assert all(j["node"] and j["ended"] >= j["started"] for j in jobs)
    for j in jobs:  # the reward is the mean return of 3 rollouts of 1000 steps
        rows = {s["tag"]: s["value"] for s in store.scalars("sw", [j["job_id"]])}
        assert rows["default"] == j["reward"] and rows["episodes"] == 3 and rows["steps"] == 3000
        assert rows["default"] == pytest.approx(np.mean([rows[f"return_{i}"] for i in range(3)]))
    show = gml("ctl", "show", "--task", "sw", "--workdir", "wd", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert all(f"job_000{i}" in show.stdout for i in range(1, 5)) and "FINISHED" in show.stdout
    # --resume runs a benchmark task the way it ran: with --benchmark
    again = gml("run", "swimmer.yaml", "--task", "sw", "--resume", "--workdir", "wd", cwd=tmp_path)
    assert again.returncode == 2 and "--benchmark" in again.stderr and "Traceback" not in again.stderr


def _run_benchmark(tmp_path, yaml_text: str, task: str = "t", resume: bool = False):
    from gml_ray.config import load_config
    from gml_ray.schedulers import NaiveScheduler

    code = tmp_path / "code"
    write_files(code, {"search_config.yaml": yaml_text})
    cfg = load_config(str(code / "search_config.yaml"), mode="mujoco")
    scheduler = NaiveScheduler(str(tmp_path / "wd"), cfg, task=task, resume=resume)
    store = scheduler.prepare()
    return scheduler.run(), store


def test_max_reward_stops_and_no_rollout_actor_outlives_the_run(ray_session, tmp_path):
    before = set(rollout_actors())
    summary, store = _run_benchmark(
        tmp_path, bench_yaml(scheduler="  stop_criterion: {max_tries: 50, max_reward: -1000}\n"))
    assert "max_reward=-1000 reached" in summary["reason"]
    jobs = store.jobs("t")
    assert 1 <= len(jobs) <= 3  # the first result stops it; a job started meanwhile is killed
    assert jobs[0]["status"] == JobStatus.FINISHED or any(j["status"] == JobStatus.FINISHED for j in jobs)
    assert all(j["status"] in (JobStatus.FINISHED, JobStatus.KILLED) for j in jobs)
    states = wait_all_dead()
    assert len(set(states) - before) == 2  # the run's pool: parallel_size actors, created once


def test_resume_with_benchmark_continues_the_search(ray_session, tmp_path):
    first, _ = _run_benchmark(tmp_path, bench_yaml(scheduler="  stop_criterion: {max_tries: 2}\n"))
    assert first["launched"] == 2
    second, store = _run_benchmark(tmp_path, bench_yaml(scheduler="  stop_criterion: {max_tries: 4}\n"),
                                   resume=True)
    jobs = store.jobs("t")
    assert [j["job_id"] for j in jobs] == [1, 2, 3, 4] and [j["status"] for j in jobs] == [JobStatus.FINISHED] * 4
    assert second["status"] == JobStatus.FINISHED
    wait_all_dead()


def test_a_standalone_job_can_be_killed_and_takes_its_actor_along(ray_session, tmp_path):
    from gml_ray.mujoco import MujocoJob

    # 40 rollouts of 1000 steps: several seconds, so the kill lands while it runs
    job = MujocoJob("swimmer", "job_0001", np.zeros(16), rollouts=40, job_dir=str(tmp_path / "j"), job_id=1)
    job.start()
    assert job.wait(timeout=1.0) is None  # still running (or its actor still starting)
    deadline = time.time() + 60  # its actor is up: the kill lands while the rollouts run
    while "ALIVE" not in rollout_actors().values() and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.time()
    job.kill()
    outcome = job.wait(timeout=30)
    assert outcome is not None and outcome["status"] == JobStatus.KILLED and job.status == JobStatus.KILLED
    assert outcome["message"] == "cancelled" and outcome["scalars"] == []
    assert time.time() - t0 < 5
    wait_all_dead()


def test_lamcts_drives_a_swimmer_run_past_its_initial_design(ray_session, tmp_path):
    """The manual's pairing: LamctsSearcher on Swimmer through the benchmark path, tiny budget."""
    text = bench_yaml(searcher="LamctsSearcher", scheduler="  stop_criterion: {max_tries: 10}\n")
    text = text.replace("  seed: 3\n", "  seed: 3\n  dims: 16\n  ninits: 4\n  leaf_size: 4\n  Cp: 1\n")
    summary, store = _run_benchmark(tmp_path, text)
    jobs = store.jobs("t")
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 10
    assert all(math.isfinite(j["reward"]) for j in jobs)
    # 4 Latin-hypercube configs, then 3 tree iterations of 2 (parallel_size): all distinct.
    assert len({tuple(sorted(j["config"].items())) for j in jobs}) == 10
    assert summary["best_reward"] == max(j["reward"] for j in jobs)
    wait_all_dead()


def test_func_type_is_taken_from_the_arg_count_or_the_searcher_section():
    import yaml
    cfg = parse_config(yaml.safe_load(bench_yaml(func_type=None)), "c.yaml", mode="mujoco")
    assert cfg.mode_settings.func_type == "swimmer" and cfg.notices == ["scheduler.func_type is not set: swimmer (16 search args)"]
    raw = yaml.safe_load(bench_yaml(func_type=None, n=33))
    raw["searcher"]["func_type"] = "hopper"
    cfg = parse_config(raw, "c.yaml", mode="mujoco")
    assert cfg.mode_settings.func_type == "hopper" and cfg.notices == []
