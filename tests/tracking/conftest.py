"""Settings for the MLflow tests, set before any test of this process starts Ray (the scheduler
actor inherits them): no telemetry from MLflow (this machine reaches no such server), and a fresh
SQLite connection for each MLflow request (NullPool), so a tracking store whose directory goes
away is seen at once, as a server that goes away would be."""
import os
import shutil

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory):
    """An empty MLflow SQLite store, made once per test process: making one runs MLflow's schema
    migrations (seconds on a busy machine), which one test does for real (the default store)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(mlflow_template):
    """mlflow_store(path) puts an empty MLflow SQLite store at ``path``; returns its URI."""
    def place(path) -> str:
        os.makedirs(os.path.dirname(str(path)), exist_ok=True)
        shutil.copyfile(mlflow_template, path)
        return f"sqlite:///{path}"
    return place
