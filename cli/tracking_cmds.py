"""``ctl export-mlflow``: a finished task's jobs as MLflow runs (the ``mlflow`` extra).

``register(ctl_app)`` adds the command to the ``ctl`` Typer app. The work is
:func:`gml_ray.views.mlflow_export.export_task`; this module only resolves where the runs go.
"""
from __future__ import annotations

import os
from typing import Optional

import typer
import yaml
from gml_ray.cli.common import WORKDIR_HELP, console, open_store

from gml_ray.config.tracking import MlflowConfig, parse_tracking
from gml_ray.config.validate import Ctx, one_line
from gml_ray.errors import ConfigError, EnvironmentFault, UserError

# MLflow's REST client retries 7 times over minutes before it says a server is down; a command
# the user waits for says so within seconds (their own setting wins).
HTTP_RETRIES = "2"


def _config_mlflow(task_row: dict) -> Optional[MlflowConfig]:
    """The ``tracking.mlflow`` section of the config the task ran with (None: none, or a stored
    config that cannot be read: the defaults then apply)."""
    try:
        raw = yaml.safe_load(task_row.get("config_yaml") or "") or {}
        base = os.path.dirname(task_row.get("config_path") or "") or "."
        return parse_tracking(Ctx("the task's config"), raw.get("tracking") if isinstance(raw, dict) else None,
                              base, check_installed=False).mlflow
    except (yaml.YAMLError, ConfigError):
        return None


def register(ctl_app: typer.Typer) -> None:
    """Add ``export-mlflow`` to the ``ctl`` app."""

    @ctl_app.command("export-mlflow")
    def export_mlflow_cmd(
        task: str = typer.Option(..., "--task", "-t", help="the task to export (one that has ended)"),
        tracking_uri: Optional[str] = typer.Option(
            None, "--tracking-uri", help="default: the config's tracking.mlflow.tracking_uri, else "
            "sqlite:///<work dir>/mlflow.db"),
        experiment: Optional[str] = typer.Option(
            None, "--experiment", help="default: the config's tracking.mlflow.experiment, else the task's name"),
        workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
    ) -> None:
        """Log a task to MLflow: the task a parent run, each job a child run (args as params, scalars
        as metrics). Jobs MLflow already holds are not logged again: re-running it is safe."""
        from gml_ray.views.mlflow_export import export_task, require_mlflow, resolve_target

        store = open_store(workdir, write=False)  # the tracking store may be elsewhere
        row = store.require_task(task)
        target = resolve_target(store.work_dir, task, _config_mlflow(row), tracking_uri, experiment)
        require_mlflow("ctl export-mlflow", target.tracking_uri)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES)
        try:
            result = export_task(store, task, target)
        except UserError:
            raise
        except Exception as exc:
            from mlflow.exceptions import MlflowException  # only now: importing MLflow takes seconds

            if not isinstance(exc, MlflowException):
                raise
            text = one_line(exc)  # the tracking server or store, not the user's input: exit 1
            raise EnvironmentFault(f"MLflow at {target.tracking_uri}: {text[:300]}"
                                   f"{'...' if len(text) > 300 else ''} (what was logged stays; "
                                   f"run the command again to log the rest)") from None
        console.print(f"logged {result.logged} jobs ({result.metrics} metrics) of {task} to MLflow "
                      f"{target.tracking_uri}, experiment {target.experiment!r}; {result.current} were "
                      f"logged already ({result.seconds:.1f}s)", soft_wrap=True, markup=False, highlight=False)
        if target.tracking_uri.startswith("sqlite:"):  # the UI is in the full mlflow package
            console.print(f"view them: mlflow ui --backend-store-uri {target.tracking_uri} (pip install mlflow)",
                          soft_wrap=True, markup=False, highlight=False)
