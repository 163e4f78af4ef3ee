"""The ``tracking:`` section of search_config.yaml: how it reads, every mistake as one line naming
the field, and MLflow missing (a run's config, ``ctl export-mlflow``) as one line and exit 2
through the real CLI, with ``import mlflow`` made to fail in the command's process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import write_files
from helpers.cli import BIN
from helpers.stores import make_store

from gml_ray.config.task import load_config
from gml_ray.config.tracking import MlflowConfig
from gml_ray.errors import ConfigError

BASE = """
task:
  function: "trial:trial"
  search_args:
    - {type: Real, name: x, data: [0, 1]}
searcher: {type: RandomSearcher}
"""


def config(tmp_path, tracking: str) -> str:
    write_files(tmp_path, {"search_config.yaml": BASE + tracking, "trial.py": "def trial(config):\n    pass\n"})
    return str(tmp_path / "search_config.yaml")


def test_no_section_is_no_tracking(tmp_path):
    assert load_config(config(tmp_path, "")).tracking.mlflow is None
    assert load_config(config(tmp_path, "tracking: {mlflow: false}")).tracking.mlflow is None


@pytest.mark.parametrize("section", ["tracking: {mlflow: {}}", "tracking: {mlflow: true}", "tracking:\n  mlflow:\n"])
def test_an_empty_mlflow_section_takes_every_default(tmp_path, section):
    assert load_config(config(tmp_path, section)).tracking.mlflow == MlflowConfig(None, None)


def test_uri_and_experiment_and_a_relative_sqlite_path_from_the_configs_directory(tmp_path):
    cfg = load_config(config(tmp_path, "tracking: {mlflow: {tracking_uri: 'http://mlflow:5000', experiment: hpo}}"))
    assert cfg.tracking.mlflow == MlflowConfig("http://mlflow:5000", "hpo")
    cfg = load_config(config(tmp_path, "tracking: {mlflow: {tracking_uri: 'sqlite:///runs/mlflow.db'}}"))
    assert cfg.tracking.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    absolute = "sqlite:////data/mlflow.db"
    assert load_config(config(tmp_path, f"tracking: {{mlflow: {{tracking_uri: '{absolute}'}}}}")
                       ).tracking.mlflow.tracking_uri == absolute


@pytest.mark.parametrize("section, message", [
    ("tracking: {wandb: {}}", "tracking.wandb: unknown key (allowed: mlflow)"),
    ("tracking: {mlflow: {tracking-uri: 'http://x:5000'}}", "tracking.mlflow.tracking-uri: unknown key (did you mean 'tracking_uri'?)"),
    ("tracking: {mlflow: {tracking_uri: 5000}}", "tracking.mlflow.tracking_uri: must be a non-empty string, got 5000"),
    ("tracking: {mlflow: {tracking_uri: 'localhost:5000'}}", "tracking.mlflow.tracking_uri: needs a URI like"),
    ("tracking: {mlflow: {experiment: ''}}", "tracking.mlflow.experiment: must be a non-empty string, got ''"),
    ("tracking: {mlflow: [x]}", "tracking.mlflow: must be a mapping, got [x]"),
    ("tracking: mlflow", "tracking: must be a mapping, got 'mlflow'"),
])
def test_each_mistake_names_its_field(tmp_path, section, message):
    with pytest.raises(ConfigError) as info:
        load_config(config(tmp_path, section))
    assert message in str(info.value) and "\n" not in str(info.value)


# A finder first in line that refuses MLflow, as if it were not installed (only the process
# started with this directory on PYTHONPATH sees it).
NO_MLFLOW = """
import sys

class _NoMlflow:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("No module named 'mlflow' (hidden by the test)")
        return None

sys.meta_path.insert(0, _NoMlflow())
"""


def env_without_mlflow(tmp_path) -> dict:
    hide = tmp_path / "no_mlflow"
    write_files(hide, {"sitecustomize.py": NO_MLFLOW})
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=os.pathsep.join(filter(None, [str(hide),
                                                                                  os.environ.get("PYTHONPATH")])))
    probe = subprocess.run([sys.executable, "-c", "import mlflow"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "hidden by the test" in probe.stderr  # the finder works
    return env


def gml_without_mlflow(tmp_path, *args):
    return subprocess.run([os.path.join(BIN, "gml-ray"), *args], env=env_without_mlflow(tmp_path),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_without_mlflow_the_section_is_one_line_and_exit_2(tmp_path):
    path = config(tmp_path, "tracking: {mlflow: {}}")
    out = gml_without_mlflow(tmp_path, "run", path, "--task", "t", "--workdir", str(tmp_path / "wd"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr == f"error: {path}: tracking.mlflow needs MLflow: pip install 'gml-ray[mlflow]'\n"
    assert not (tmp_path / "wd").exists()  # nothing ran


def test_without_mlflow_export_is_one_line_and_exit_2(tmp_path):
    make_store(tmp_path, jobs=1, steps=1)
    out = gml_without_mlflow(tmp_path, "ctl", "export-mlflow", "--task", "t", "--workdir", str(tmp_path / "wd"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr == "error: ctl export-mlflow needs MLflow: pip install 'gml-ray[mlflow]'\n"
