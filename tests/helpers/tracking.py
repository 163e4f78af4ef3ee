"""Reading back what gml-ray logged to MLflow (the tests of ``tracking.mlflow`` and
``ctl export-mlflow``), with MLflow's own client."""
from __future__ import annotations


def mlflow_runs(uri: str, experiment: str):
    """(parent runs, child runs by job name) of an experiment: active runs only, as the MLflow
    UI shows them. A job name met twice among the children fails the test."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} at {uri}"
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("gml.kind") == "task"]
    children: dict = {}
    for r in runs:
        if r.data.tags.get("gml.kind") == "job":
            name = r.data.tags["gml.job"]
            assert name not in children, f"two runs of {name}"
            children[name] = r
    return parents, children


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float, int]]:
    """A metric's (step, value, timestamp ms) points, in step order."""
    from mlflow import MlflowClient

    points = MlflowClient(tracking_uri=uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value, m.timestamp) for m in points)


def check_job_runs(run, uri: str, experiment: str = "t") -> None:
    """Every job of ``run`` is one child run of the task's run at ``uri``, with its args as params,
    every scalar at its step and report time, its reward, status, node and job dir (the runs of
    tests/tracking's SPACE: args x and opt.{name, lr})."""
    parents, children = mlflow_runs(uri, experiment)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["gml.task"] == run.task and parent.info.status == "FINISHED"
    jobs = run.jobs
    assert sorted(children) == sorted(j["name"] for j in jobs)
    for job in jobs:
        child = children[job["name"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.tags["gml.status"] == "FINISHED"
        assert child.data.tags["gml.job_dir"] == job["job_dir"] and child.data.tags["gml.node"] == job["node"]
        assert child.info.start_time == int(job["started"] * 1000) and child.info.end_time == int(job["ended"] * 1000)
        args = job["arg_dict"]
        assert child.data.params == {"x": str(args["x"]), "opt.name": args["opt"]["name"],
                                     "opt.lr": str(args["opt"]["lr"])}
        for tag in ("loss", "acc"):
            stored = [(s["step"], s["value"], s["created"]) for s in run.scalars(job["job_id"], tag)]
            assert len(stored) == 4 and history(uri, child.info.run_id, tag) == stored
        assert child.data.metrics["gml.reward"] == job["reward"] == float(child.data.tags["gml.reward"])
