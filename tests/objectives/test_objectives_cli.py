"""A multi-objective command-job task through the real CLI: an assessor judging one objective,
the views (ctl show columns, --pareto, the task list, --out, summary.yaml), the Python API, and
``--resume`` after the driver is killed keeping the front."""
from __future__ import annotations

import os

import pytest
import yaml
from helpers import write_files
from helpers.cli import gml

import gml_ray
from gml_ray.objectives import FRONT_COLUMNS, task_front
from gml_ray.store import Store
from gml_ray.vocab import JobStatus

TRAIN = """
import argparse, time
from gml_ray import SummaryWriter
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--sleep", type=float, default=0.0)
a = p.parse_args()
w = SummaryWriter()
for epoch in range(a.epochs):
    # acc rises with x, latency too: a trade-off; mem breaks 'mem <= 7' for x > 0.7
    w.add_scalar("acc", a.x - 0.1 / (epoch + 1), epoch)
    w.add_scalar("latency", 10 * a.x, epoch)
    w.add_scalar("mem", 10 * a.x, epoch)
    time.sleep(a.sleep)
w.close()
"""

CONFIG = """
task:
  template: python train.py --x {x} --epochs EPOCHS --sleep SLEEP
  search_args:
    - {type: Categorical, name: x, data: XS}
searcher:
  type: GridSearcher
  reward_attribute: [acc, latency]
  optimize_mode: [maximize, minimize]
  constraints: ["mem <= 7"]
scheduler:
  parallel_size: PARALLEL
  ASSESSOR
"""


def write(tmp_path, xs, epochs=4, sleep=0.0, parallel=1, assessor=""):
    text = (CONFIG.replace("XS", str(xs)).replace("EPOCHS", str(epochs)).replace("SLEEP", str(sleep))
            .replace("PARALLEL", str(parallel)).replace("ASSESSOR", assessor))
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": text})


def test_assessor_on_one_objective_and_every_view(tmp_path, ray_head):
    # sequential: 0.1 finishes first; judged on latency (minimised), 0.2 and 0.9 are worse than
    # its median and are stopped, though their acc is better (judged on acc they would go on)
    write(tmp_path, [0.1, 0.2, 0.9, 0.05, 0.6], sleep=0.4,
          assessor="assessor: {type: MedianStopAssessor, objective: latency}")
    run = gml("run", "search_config.yaml", "--task", "mo", "--workdir", "wd", "--address", ray_head,
              cwd=tmp_path, timeout=240)
    assert run.returncode == 0, run.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    jobs = {j["arg_dict"]["x"]: j for j in store.jobs("mo")}
    assert jobs[0.1]["status"] == JobStatus.FINISHED and jobs[0.05]["status"] == JobStatus.FINISHED
    assert jobs[0.2]["status"] == jobs[0.9]["status"] == jobs[0.6]["status"] == JobStatus.EARLY_STOPPED
    assert jobs[0.9]["feasible"] == 0 and jobs[0.1]["feasible"] == 1
    # the front: feasible, not dominated (0.9 would be best on acc but breaks mem <= 7)
    front = task_front(store.require_task("mo"), store.jobs("mo", columns=FRONT_COLUMNS))
    assert front is not None
    assert sorted(j["name"] for j in front.members) == sorted(jobs[x]["name"] for x in (0.05, 0.1, 0.2, 0.6))
    assert "front 4 jobs, hypervolume" in run.stdout

    shown = gml("ctl", "show", "--task", "mo", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "objectives: maximize acc, minimize latency; constraints: mem <= 7; front: 4 of 4 jobs" in shown.stdout
    header = next(line for line in shown.stdout.splitlines() if "status" in line and "args" in line)
    assert "acc" in header and "latency" in header and "front" in header and "reward" not in header
    row_09 = next(line for line in shown.stdout.splitlines() if jobs[0.9]["name"] in line)
    assert "infeasible" in row_09 and "◆" not in row_09
    assert shown.stdout.count("◆") == 4

    pareto = gml("ctl", "show", "--task", "mo", "--pareto", "--workdir", "wd", cwd=tmp_path)
    assert pareto.returncode == 0 and pareto.stdout.count("job_000") == 4, pareto.stdout
    assert jobs[0.9]["name"] not in pareto.stdout

    listed = gml("ctl", "show", "--workdir", "wd", cwd=tmp_path)
    header = next(line for line in listed.stdout.splitlines() if "task" in line and "status" in line)
    assert "front" in header and "hypervolume" in header
    assert f"{front.hypervolume:.6g}"[:6] in listed.stdout

    out = tmp_path / "mo.yaml"
    assert gml("ctl", "show", "--task", "mo", "--out", str(out), "--workdir", "wd", cwd=tmp_path).returncode == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["task"]["objectives"] == {"acc": "maximize", "latency": "minimize"}
    assert sorted(doc["task"]["front"]) == sorted(front.names)
    by_name = {j["name"]: j for j in doc["jobs"]}
    j09 = by_name[jobs[0.9]["name"]]
    assert j09["feasible"] is False and j09["pareto"] is False and j09["values"]["latency"] == pytest.approx(9.0)

    api = gml_ray.pareto_front("mo", work_dir=str(tmp_path / "wd"))
    assert sorted(j["name"] for j in api) == sorted(front.names)
    assert all(set(j["values"]) == {"acc", "latency"} for j in api)

    # export and import into another work dir: the outcomes, feasibility and so the front survive
    tar = tmp_path / "mo.tar.gz"
    assert gml("ctl", "export", "--task", "mo", "--tar-path", str(tar), "--workdir", "wd", cwd=tmp_path).returncode == 0
    imported = gml("ctl", "import", "--tar-path", str(tar), "--workdir", "wd2", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    other = Store(str(tmp_path / "wd2"), create=False)
    again = task_front(other.require_task("mo"), other.jobs("mo"))
    assert again is not None and again.names == front.names and again.hypervolume == pytest.approx(front.hypervolume)
    assert [j["feasible"] for j in other.jobs("mo")] == [j["feasible"] for j in store.jobs("mo")]

    removed = gml("ctl", "rm", "--task", "mo", "--workdir", "wd", "--summary", "s.yaml", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    summary = yaml.safe_load((tmp_path / "s.yaml").read_text())
    entry = summary[-1] if isinstance(summary, list) else summary
    assert sorted(entry["task"]["front"]) == sorted(front.names)
    assert entry["task"]["hypervolume"] == pytest.approx(front.hypervolume)


@pytest.mark.ray
def test_resume_after_the_driver_is_killed_keeps_the_front(tmp_path, ray_head):
    from helpers.runs import killed_9_when, on_head

    write(tmp_path, [0.1, 0.8, 0.5, 0.65], epochs=3, sleep=1.0, parallel=2)  # 0.8: mem 8, infeasible
    args = ["run", "search_config.yaml", "--task", "k", "--workdir", "wd", "--num-cpus", "2"]

    def two_finished() -> bool:
        if not (tmp_path / "wd" / "gml.db").exists():
            return False
        store = Store(str(tmp_path / "wd"), create=False)
        return store.get_task("k") is not None and store.status_counts("k").get(JobStatus.FINISHED, 0) >= 2

    killed_9_when(args, tmp_path, two_finished, "two jobs finished")
    store = Store(str(tmp_path / "wd"), create=False)
    before = {j["name"]: (j["rewards"], j["feasible"]) for j in store.jobs("k") if j["status"] == JobStatus.FINISHED}
    resumed = gml(*on_head(args, ray_head), "--resume", cwd=tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    jobs = store.jobs("k")
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 4
    for name, kept in before.items():  # the first run's results are kept as they were
        job = next(j for j in jobs if j["name"] == name)
        assert (job["rewards"], job["feasible"]) == kept
    assert [j["feasible"] for j in jobs] == [1, 0, 1, 1]
    front = task_front(store.require_task("k"), jobs)
    # the feasible ones are a trade-off (acc and latency both rise with x); 0.8 is never on it
    assert front is not None and front.names == {j["name"] for j in jobs if j["feasible"]}
    assert os.path.exists(tmp_path / "wd" / "tasks" / "k")


@pytest.mark.slow
def test_the_digits_example_runs_and_has_a_front(tmp_path, ray_head):
    """examples/digits_mo as shipped (fewer jobs and epochs): every job trains, reports both
    objectives and the constrained latency, and `ctl show --pareto` lists a non-empty front."""
    import shutil

    from helpers import REPO_DIR
    example = tmp_path / "digits_mo"
    shutil.copytree(os.path.join(REPO_DIR, "examples", "digits_mo"), example)
    config = example / "search_config.yaml"
    text = config.read_text()
    assert "max_tries: 16" in text and "data: [10, 20]" in text and '"latency_ms <= 0.5"' in text
    # the bound is the example's machine's: any machine meets 1 s, so the front is never empty
    config.write_text(text.replace("max_tries: 16", "max_tries: 3").replace("data: [10, 20]", "data: [2]")
                      .replace('"latency_ms <= 0.5"', '"latency_ms <= 1000"'))
    run = gml("run", str(config), "--task", "mo", "--workdir", "wd", "--address", ray_head, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    jobs = store.jobs("mo")
    assert [j["status"] for j in jobs] == [JobStatus.FINISHED] * 3
    for job in jobs:
        acc, params = job["rewards"]
        assert 0 < acc <= 1 and params > 0 and job["feasible"] == 1
        assert store.scalars("mo", [job["job_id"]], ["latency_ms"])  # what the constraint reads
    pareto = gml("ctl", "show", "--task", "mo", "--workdir", "wd", "--pareto", cwd=tmp_path, timeout=60)
    assert pareto.returncode == 0, pareto.stderr
    front = task_front(store.require_task("mo"), jobs)
    assert front is not None and front.names and all(name in pareto.stdout for name in front.names)
