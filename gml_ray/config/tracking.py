"""The ``tracking:`` section: where a run also logs its jobs (MLflow, the ``mlflow`` extra).

```yaml
tracking:
  mlflow:
    tracking_uri: http://mlflow.example:5000   # default: sqlite:///<work dir>/mlflow.db
    experiment: my-search                      # default: the task's name
```

``tracking: {mlflow: {}}`` (or ``mlflow: true``) logs to the defaults. Without MLflow installed
the section is a one-line :class:`~gml_ray.errors.ConfigError`:
``tracking.mlflow needs MLflow: pip install 'gml-ray[mlflow]'``. The check only looks for the
package (importing MLflow takes seconds; the run's background logger does that, off the
search's path).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from gml_ray.config.validate import Ctx, check_keys, mapping, show
from gml_ray.errors import ConfigError

TRACKING_KEYS = ["mlflow"]
MLFLOW_KEYS = ["tracking_uri", "experiment"]
MISSING_MLFLOW = "needs MLflow: pip install 'gml-ray[mlflow]'"
# What MLflow's local SQL store needs besides mlflow-skinny itself (the extra installs them).
SQL_STORE_MODULES = ("sqlalchemy", "alembic")


@dataclass(frozen=True)
class MlflowConfig:
    """``tracking.mlflow``: None fields take their defaults where the work dir and task are known
    (:func:`gml_ray.views.mlflow_export.default_tracking_uri`, the task's name)."""

    tracking_uri: str | None = None
    experiment: str | None = None


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking:`` section; ``mlflow`` is None when the run logs to no MLflow."""

    mlflow: MlflowConfig | None = None


def missing_module(tracking_uri: str | None) -> str | None:
    """The module MLflow tracking to ``tracking_uri`` lacks here (None: nothing is missing).

    A local SQL store (the default, or ``sqlite:``) also needs SQLAlchemy and Alembic, which
    mlflow-skinny does not pull in. A finder that raises ImportError counts as missing."""
    wanted = ["mlflow"]
    if tracking_uri is None or tracking_uri.startswith("sqlite:"):
        wanted += SQL_STORE_MODULES
    for name in wanted:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _resolve_uri(uri: str, base_dir: str) -> str:
    """A relative ``sqlite:///path`` resolved against the config's directory (the scheduler
    does not run in the user's cwd); other URIs as they are."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri != prefix + ":memory:":
        return prefix + os.path.abspath(os.path.join(base_dir, uri[len(prefix):]))
    return uri


def parse_tracking(ctx: Ctx, raw: Any, base_dir: str, check_installed: bool = True) -> TrackingConfig:
    """Read a ``tracking:`` section (None: no tracking). ``check_installed``: fail, as one line,
    when MLflow is not installed (reading a stored config for ``ctl export-mlflow`` does not)."""
    section = mapping(ctx, raw, "tracking")
    check_keys(ctx, section, TRACKING_KEYS, "tracking")
    if "mlflow" not in section or section["mlflow"] is False:
        return TrackingConfig()
    raw_mlflow = section["mlflow"]
    if raw_mlflow is True:  # `mlflow: true`: every default
        raw_mlflow = {}
    m = mapping(ctx, raw_mlflow, "tracking.mlflow")  # `mlflow:` alone (null): every default
    check_keys(ctx, m, MLFLOW_KEYS, "tracking.mlflow")
    values: dict[str, str | None] = {}
    for key in MLFLOW_KEYS:
        value = m.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ctx.error(f"tracking.mlflow.{key}", f"must be a non-empty string, got {show(value)}")
        values[key] = value.strip() if isinstance(value, str) else None
    uri = values["tracking_uri"]
    if uri is not None:
        if "://" not in uri and not uri.startswith(("file:", "databricks")):
            raise ctx.error("tracking.mlflow.tracking_uri", f"needs a URI like http://host:5000 or "
                            f"sqlite:///path/mlflow.db, got {show(uri)}")
        uri = _resolve_uri(uri, base_dir)
    if check_installed:
        missing = missing_module(uri)
        if missing is not None:
            # One line the user acts on; the module that is missing goes to the end in parentheses.
            what = "" if missing == "mlflow" else f" (no module {missing!r})"
            raise ConfigError(f"tracking.mlflow {MISSING_MLFLOW}{what}", "", ctx.source)
    return TrackingConfig(MlflowConfig(uri, values["experiment"]))
