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
