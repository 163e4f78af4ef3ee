"""A PBT function trial and its config (tests/engine/test_pbt.py, test_pbt_cli.py)."""
from __future__ import annotations

# A member's value grows by `lr` per step (the best lr is the largest); a checkpoint per step
# holds the value and where the member's line came from. Each job logs what it restored.
TRIAL = """
import json, os, time
import gml_ray

def trial(config):
    value, start, restored = 0.0, 0, None
    if gml_ray.get_checkpoint() is not None:
        restored = json.load(open(gml_ray.get_checkpoint()))
        value, start = restored["value"], gml_ray.restored_step() + 1
    # the first population trains side by side, however slowly its workers start (PBT ranks
    # members against each other: one that ran alone would have nobody to copy)
    jobs_dir = os.path.dirname(os.environ["GML_JOB_DIR"])
    open(os.path.join(jobs_dir, ".started-" + os.environ["GML_JOB_ID"]), "w").close()
    deadline = time.time() + 60
    while sum(n.startswith(".started-") for n in os.listdir(jobs_dir)) < 4 and time.time() < deadline:
        time.sleep(0.05)
    with open("restored.json", "w") as f:
        json.dump({"state": restored, "step": gml_ray.restored_step(), "lr": config["lr"]}, f)
    for step in range(start, 12):
        value += config["lr"]
        with open("state.json", "w") as f:
            json.dump({"value": value}, f)
        gml_ray.report(step, score=value, checkpoint="state.json")
        time.sleep(0.15)
"""

CONFIG = """
task:
  function: trial:trial
  resources: {num_cpus: 0.5}
  search_args:
    - {type: Real, name: lr, data: [0.05, 1.0]}
searcher: {type: RandomSearcher, seed: 5, reward_attribute: score}
scheduler:
  parallel_size: 4
  pbt: {population_size: 4, perturbation_interval: 2, quantile_fraction: 0.5, resample_probability: 0.0, seed: 1}
"""
