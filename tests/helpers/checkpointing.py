"""A checkpointing training script and its config, and what the checkpoint tests read back
(tests/engine/test_checkpoints.py, test_checkpoints_cli.py)."""
from __future__ import annotations

import os

from gml_ray.config import load_config
from gml_ray.schedulers import NaiveScheduler

# Trains `epochs` epochs, one checkpoint per epoch; its first attempt dies after the checkpoint of
# epoch `die_at`. Every epoch it runs is logged to epochs.log (shared by its attempts).
TRAIN = """
import json, os, sys, time
import gml_ray
x, epochs, die_at = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
w = gml_ray.SummaryWriter()
start, state = 0, {"sum": 0.0}
ckpt = gml_ray.get_checkpoint()
if ckpt is not None:
    state = json.load(open(os.path.join(ckpt, "state.json")))
    start = gml_ray.restored_step() + 1
log = open(os.path.join(os.environ["GML_JOB_DIR"], "epochs.log"), "a")
for epoch in range(start, epochs):
    state["sum"] += x
    log.write(f"{os.environ['GML_JOB_ATTEMPT']} {epoch} {ckpt or '-'}\\n"); log.flush()
    w.add_scalar("acc", state["sum"], epoch)
    tmp = os.path.join(gml_ray.checkpoint_dir(), "writing")
    os.makedirs(tmp, exist_ok=True)
    json.dump(state, open(os.path.join(tmp, "state.json"), "w"))
    gml_ray.checkpoint(tmp, epoch)
    if epoch == die_at and os.environ["GML_JOB_ATTEMPT"] == "1":
        os._exit(3)
"""

FUNCTION = """
import json, os
import gml_ray

def trial(config):
    start, total = 0, 0.0
    ckpt = gml_ray.get_checkpoint()
    if ckpt is not None:
        total = json.load(open(ckpt))["total"]
        start = gml_ray.restored_step() + 1
    with open("epochs.log", "a") as log:
        for epoch in range(start, 5):
            total += config["x"]
            log.write(f"{os.environ['GML_JOB_ATTEMPT']} {epoch}\\n")
            with open("state.json", "w") as f:
                json.dump({"total": total}, f)
            gml_ray.report(epoch, acc=total, checkpoint="state.json")
            if epoch == 2 and os.environ["GML_JOB_ATTEMPT"] == "1":
                raise RuntimeError("the node went away")
"""


def checkpoint_config(template: str = "python train.py {x} 6 2", keep: int | None = None, function: str = "") -> str:
    task = "  function: trial:trial\n" if function else f'  template: "{template}"\n'
    checkpoint = f"  checkpoint: {{keep: {keep}}}\n" if keep else ""
    return f"""
task:
{task}  search_args:
    - {{type: Categorical, name: x, data: [1.0, 2.0]}}
searcher:
  type: GridSearcher
  reward_attribute: acc
scheduler:
  parallel_size: 2
{checkpoint}"""


def run_config(tmp_path, config: str, files: dict[str, str], resume: bool = False):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "search_config.yaml").write_text(config)
    for name, text in files.items():
        (code / name).write_text(text)
    cfg = load_config(str(code / "search_config.yaml"))
    scheduler = NaiveScheduler(str(tmp_path / "wd"), cfg, task="t", resume=resume)
    store = scheduler.prepare()
    notices: list[str] = []
    summary = scheduler.run(on_notice=notices.append)
    return summary, store, notices


def epochs_run(job: dict) -> list[tuple[str, ...]]:
    with open(os.path.join(job["job_dir"], "epochs.log")) as f:
        return [tuple(line.split()) for line in f]


def curve_of(store, job_id: int) -> list[tuple[int, float]]:
    """The job's `acc` curve as the views show it: its last attempt's scalars."""
    rows = store.scalars("t", [job_id], ["acc"])
    last = max(r["attempt"] for r in rows)
    return [(r["step"], r["value"]) for r in rows if r["attempt"] == last]

def jobs_of(tmp_path) -> list[dict]:
    from gml_ray.store import Store
    return Store(str(tmp_path / "wd"), create=False).jobs("t")

