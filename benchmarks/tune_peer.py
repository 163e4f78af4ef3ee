"""Ray Tune as the peer in the benchmarks: one grid search over ``x``, timed (``bench`` extra)."""
from __future__ import annotations

import time
from typing import Any, Callable


def tune_fit(trainable: Callable[[dict], None], xs: list[int], parallel: int, reuse: bool,
             storage: str, name: str) -> tuple[float, Any]:
    """Run ``trainable`` on every ``x`` in ``xs`` (1 CPU each, ``parallel`` at once) with Ray Tune;
    returns (wall seconds of ``tuner.fit()``, its ResultGrid), checking that no trial failed."""
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"x": tune.grid_search(xs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=parallel, reuse_actors=reuse,
                                    metric="score", mode="max"),
        run_config=tune.RunConfig(storage_path=storage, name=f"{name}_{time.time_ns()}", verbose=0))
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    assert results.num_errors == 0 and len(results) == len(xs), (results.num_errors, len(results))
    return wall, results
