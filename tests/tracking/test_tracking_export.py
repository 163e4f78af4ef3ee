"""``gml-ray ctl export-mlflow`` (through the real CLI, and :func:`export_task` in process) on
stores filled by hand (no Ray) and real local MLflow stores: the mapping (params, metrics with steps
and times, tags, objectives), MLflow's per-call limits, idempotence (twice, a run cut short, a job
that ran again), and its refusals."""
from __future__ import annotations

import json
import math

from helpers.cli import gml
from helpers.stores import make_store
from helpers.tracking import history, mlflow_runs

from gml_ray.objectives import Constraint, Objective, OutcomeSpec
from gml_ray.views.mlflow_export import MlflowTarget, export_task
from gml_ray.views.mlflow_records import MAX_METRICS, MAX_PARAMS, RunRecord, batches, flatten_params, mlflow_key
from gml_ray.vocab import OptimizeMode


def export(tmp_path, *args):
    return gml("ctl", "export-mlflow", "--task", "t", "--workdir", str(tmp_path / "wd"), *args)


def test_export_twice_logs_each_job_once_with_its_args_scalars_and_end(tmp_path, mlflow_store):
    store = make_store(tmp_path, jobs=3, steps=5, args=lambda i: {"lr": 0.1 * i, "model": {"depth": i, "act": "relu"},
                                                                  "layers": [i, i]})
    store.add_scalars("t", [(2, "note", 9, "not a number", 1_000, 1),  # text: no MLflow metric
                            (2, "acc", None, 0.5, 2_000, 1),  # no step: the first of its tag (step 0)
                            (3, "loss", 5, float("nan"), 3_000, 1)])
    uri = mlflow_store(tmp_path / "wd" / "mlflow.db")  # where the export goes by default
    first = export(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "logged 3 jobs" in first.stdout and "0 were logged already" in first.stdout and uri in first.stdout
    second = export(tmp_path)
    assert second.returncode == 0 and "logged 0 jobs (0 metrics)" in second.stdout and "3 were logged already" in second.stdout

    parents, children = mlflow_runs(uri, "t")
    assert len(parents) == 1 and sorted(children) == ["job_0001", "job_0002", "job_0003"]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["gml.best_job"] == "job_0003"
    jobs = {j["name"]: j for j in store.jobs("t")}
    for name, child in children.items():
        job = jobs[name]
        i = job["job_id"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.run_name == name
        assert child.data.params == {"lr": str(0.1 * i), "model.depth": str(i), "model.act": "relu",
                                     "layers": json.dumps([i, i])}
        assert child.data.tags["gml.node"] == "127.0.0.1 abc" and child.data.tags["gml.job_dir"] == job["job_dir"]
        assert child.data.tags["gml.status"] == "FINISHED" and child.info.status == "FINISHED"
        assert float(child.data.tags["gml.reward"]) == job["reward"]  # runs can be filtered on it
        assert child.info.end_time == int(job["ended"] * 1000)
        stored = [(s["step"] if s["step"] is not None else 0, s["value"], s["created"])
                  for s in store.scalars("t", [i], ["acc"])]
        assert history(uri, child.info.run_id, "acc") == sorted(stored)
        assert child.data.metrics["gml.reward"] == job["reward"]
        assert "note" not in child.data.metrics
    assert (0, 0.5, 2_000) in history(uri, children["job_0002"].info.run_id, "acc")
    loss3 = history(uri, children["job_0003"].info.run_id, "loss")
    assert loss3[-1][0] == 5 and math.isnan(loss3[-1][1])


def test_a_run_cut_short_or_a_job_that_ran_again_is_logged_anew_never_twice(tmp_path, mlflow_store):
    from mlflow import MlflowClient

    store = make_store(tmp_path, jobs=3, steps=4)
    target = MlflowTarget(mlflow_store(tmp_path / "mlflow.db"), "t")
    uri = target.tracking_uri
    assert export_task(store, "t", target).logged == 3
    _, before = mlflow_runs(uri, "t")
    client = MlflowClient(tracking_uri=uri)
    client.update_run(before["job_0001"].info.run_id, status="RUNNING")  # as if cut short before its end
    store.update_job("t", 2, attempt=2, ended=store.jobs("t")[1]["ended"] + 60)  # --resume ran it again
    store.add_scalars("t", [(2, "acc", 0, 0.9, 5_000, 2)])
    again = export_task(store, "t", target)
    assert (again.logged, again.current) == (2, 1)
    _, after = mlflow_runs(uri, "t")  # one active run per job
    assert after["job_0003"].info.run_id == before["job_0003"].info.run_id
    for name in ("job_0001", "job_0002"):
        assert after[name].info.run_id != before[name].info.run_id
        assert client.get_run(before[name].info.run_id).info.lifecycle_stage == "deleted"
    assert len(history(uri, after["job_0001"].info.run_id, "acc")) == 4
    # the job's second attempt is its run; the first one's scalars are kept under attempt_1/
    assert history(uri, after["job_0002"].info.run_id, "acc") == [(0, 0.9, 5_000)]
    assert len(history(uri, after["job_0002"].info.run_id, "attempt_1/acc")) == 4


def test_a_job_beyond_mlflows_per_call_limits_is_logged_whole(tmp_path, mlflow_store):
    store = make_store(tmp_path, jobs=1, steps=1, args=lambda i: {f"a{k:03d}": k for k in range(150)})
    created = 1_700_000_000_000
    store.add_scalars("t", [(1, f"m{t}", s, float(s * t), created + s, 1) for t in range(5) for s in range(500)])
    uri = mlflow_store(tmp_path / "elsewhere.db")
    # its 2500, make_store's acc and loss, and the reward
    assert export_task(store, "t", MlflowTarget(uri, "big")).metrics == 2500 + 2 + 1
    _, children = mlflow_runs(uri, "big")
    run = children["job_0001"]
    assert len(run.data.params) == 150
    for t in range(5):
        assert history(uri, run.info.run_id, f"m{t}") == [(s, float(s * t), created + s) for s in range(500)]


def test_batches_keep_within_mlflows_limits():
    rec = RunRecord(1, "job_0001", "FINISHED", 0, 1, "1:FINISHED:1.0",
                    params={f"p{i}": "v" for i in range(250)},
                    metrics=[("m", 1.0, 0, s) for s in range(2500)], tags={f"t{i}": "v" for i in range(120)})
    calls = list(batches(rec.metrics, rec.params.items(), rec.tags.items()))
    for m, p, t in calls:
        assert len(m) <= MAX_METRICS and len(p) <= MAX_PARAMS and len(t) <= 100 and len(m) + len(p) + len(t) <= 1000
    assert sum(len(c[0]) for c in calls) == 2500 and sum(len(c[1]) for c in calls) == 250
    assert sum(len(c[2]) for c in calls) == 120


def test_keys_and_params_are_what_mlflow_accepts():
    assert mlflow_key("Test Acc") == "Test Acc" and mlflow_key("acc@top<1>") == "acc_top_1_"
    assert mlflow_key("a//b") == "a__b" and mlflow_key("/abs") == "_abs" and mlflow_key("..") == "__"
    assert flatten_params({"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "n": None, "x": "y" * 7000}) == {
        "opt.lr": "0.1", "opt.betas": "[0.9, 0.99]", "n": "None", "x": "y" * 5997 + "..."}


def test_several_objectives_and_constraints_become_metrics_and_tags(tmp_path, mlflow_store):
    store = make_store(tmp_path, jobs=2, steps=2, tags=("f1", "f2"))
    spec = OutcomeSpec((Objective("f1", OptimizeMode.MAXIMIZE), Objective("f2", OptimizeMode.MINIMIZE)),
                       (Constraint("f2", "<=", 0.8),))
    store.update_task("t", objectives=spec.to_json())
    store.update_job("t", 1, rewards=json.dumps([0.2, 0.5]), violations=json.dumps([-0.3]), feasible=1)
    store.update_job("t", 2, rewards=json.dumps([0.3, 0.9]), violations=json.dumps([0.1]), feasible=0)
    uri = mlflow_store(tmp_path / "mlflow.db")
    export_task(store, "t", MlflowTarget(uri, "t"))
    parents, children = mlflow_runs(uri, "t")
    one, two = children["job_0001"], children["job_0002"]
    assert one.data.metrics["gml.objective.f1"] == 0.2 and one.data.metrics["gml.objective.f2"] == 0.5
    assert one.data.tags["gml.feasible"] == "true" and two.data.tags["gml.feasible"] == "false"
    assert one.data.metrics["gml.feasible"] == 1.0 and two.data.metrics["gml.feasible"] == 0.0
    assert json.loads(two.data.tags["gml.violations"]) == {"f2 <= 0.8": 0.1}
    assert parents[0].data.tags["gml.front"] == "job_0001" and parents[0].data.metrics["gml.front_size"] == 1.0


def test_a_running_task_and_an_unknown_task_are_refused_as_one_line(tmp_path):
    make_store(tmp_path, jobs=2, steps=2, status="RUNNING", running=1)  # its run beats: it is alive
    out = export(tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "still running" in out.stderr, out.stderr
    unknown = gml("ctl", "export-mlflow", "--task", "nope", "--workdir", str(tmp_path / "wd"))
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "no task named 'nope'" in unknown.stderr
