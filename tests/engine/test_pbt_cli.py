"""PBT through the command line: a run killed -9 and resumed keeps every line whole."""
from __future__ import annotations

import pytest
from helpers.pbt import CONFIG, TRIAL

SLOW_TRIAL = TRIAL.replace("range(start, 12)", "range(start, 16)").replace("time.sleep(0.15)", "time.sleep(0.3)")


@pytest.mark.ray
@pytest.mark.slow
def test_a_pbt_run_killed_9_resumes_with_every_line_whole(tmp_path, ray_head):
    from helpers.cli import gml
    from helpers.runs import killed_9_when, on_head

    from gml_ray.store import Store

    (tmp_path / "trial.py").write_text(SLOW_TRIAL)
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["run", "c.yaml", "--task", "t", "--workdir", "wd", "--num-cpus", "2"]

    def exploited() -> bool:
        if not (tmp_path / "wd" / "gml.db").exists():
            return False
        jobs = Store(str(tmp_path / "wd"), create=False).jobs("t", columns=("status", "parent_id"))
        return any(j["parent_id"] is not None and j["status"] == "RUNNING" for j in jobs)
    killed_9_when(args, tmp_path, exploited, "a PBT job continuing another")
    resumed = gml(*on_head(args, ray_head), "--resume", cwd=tmp_path, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert "missing" not in resumed.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    jobs = {j["job_id"]: j for j in store.jobs("t")}
    assert store.get_task("t")["status"] == "FINISHED"
    assert {j["status"] for j in jobs.values()} <= {"FINISHED", "EARLY_STOPPED"}
    scores = {}
    for s in store.scalars("t", tags=["score"]):  # the last attempt of each job
        if s["attempt"] == jobs[s["job_id"]]["attempt"]:
            scores.setdefault(s["job_id"], []).append((s["step"], s["value"]))
    for job in jobs.values():
        steps = [k for k, _ in scores.get(job["job_id"], [])]
        assert steps == list(range(len(steps))), (job["name"], steps)  # no step twice, none missing
        if job["status"] == "FINISHED":
            assert steps[-1] == 15, job["name"]
        if job["parent_id"] is not None:
            parent = dict(scores[job["parent_id"]])
            own = dict(scores[job["job_id"]])
            assert all(own[k] == parent[k] for k in range(job["parent_step"] + 1))
