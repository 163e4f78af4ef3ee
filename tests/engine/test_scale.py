"""Many jobs at once (the small form of ``benchmarks/concurrency.py``): 16 jobs run side by side on
the session's 2-CPU Ray (each asks for 1/8 CPU), every job finishes and every scalar arrives.
The timing is printed (``pytest -s``), never asserted."""
from __future__ import annotations

import time

import pytest

PARALLEL, JOBS, SCALARS = 16, 24, 10

JOB_SH = """
x=$1
fd=${GML_SCALAR_FD:-1}
for part in 0 5; do
  sleep 0.3
  for i in 0 1 2 3 4; do
    printf '{"t": "score", "v": %d, "s": %d}\\n' "$((x + part + i))" "$((part + i))" >&"$fd"
  done
done
"""

TRIAL_PY = """
import time

import gml_ray


def trial(config):
    for part in (0, 5):
        time.sleep(0.3)
        for i in range(5):
            gml_ray.report(score=config["x"] + part + i)
"""


@pytest.mark.parametrize("kind", ["command", "function"])
def test_sixteen_jobs_at_once_all_finish_with_every_scalar(run_task, kind):
    job = 'template: "bash job.sh {x}"' if kind == "command" else 'function: "objective:trial"'
    t0 = time.time()
    run = run_task(f"""
task:
  {job}
  search_args: [{{type: Int, name: x, data: [1, {JOBS}]}}]
  resources: {{num_cpus: {2 / PARALLEL}}}
searcher: {{type: GridSearcher, reward_attribute: score}}
scheduler: {{parallel_size: {PARALLEL}}}
generate_log: false
""", files={"job.sh": JOB_SH, "objective.py": TRIAL_PY})
    wall = time.time() - t0
    jobs = run.jobs
    assert [j["status"] for j in jobs] == ["FINISHED"] * JOBS
    assert run.store.count_scalars(run.task) == JOBS * SCALARS
    assert sorted(j["reward"] for j in jobs) == [x + 9 for x in range(1, JOBS + 1)]
    # How many ran at once, from the jobs' own start and end times.
    events = sorted([(j["started"], 1) for j in jobs] + [(j["ended"], -1) for j in jobs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    busy = sum(j["ended"] - j["started"] for j in jobs)
    print(f"\n{kind}: {JOBS} jobs at parallel_size {PARALLEL} in {wall:.1f} s (run included); "
          f"at most {peak} at once; job time {busy:.1f} s in all")
