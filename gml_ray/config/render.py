"""From a searcher's config to what a job runs: the arg_dict, the command line, per-job config files.

* ``arg_dict`` is the flat view of a config the manual's filter API uses: plain names for template
  args, ``file_arg(dotted.key)`` for args inside a File arg, and the keys of a chosen Nested dict.
* File args: the loaded file (:mod:`gml_ray.config.files`) gets the job's values at dotted keys
  and a copy is written into the job directory. :func:`render_job` does all of this once per job.

Quoting a value for the shell is :mod:`gml_ray.config.template`'s.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Callable

from gml_ray.config.files import ConfigFile, load
from gml_ray.config.template import render_template
from gml_ray.space import Dict, File, Nested

load_config_file = load  # the name tests and plugins used before config_files existed


def file_arg_key(file_name: str, key: str) -> str:
    return f"{file_name}({key})"


def _flatten_into(out: dict[str, Any], space: Dict, config: dict, wrap: Callable[[str], str]) -> None:
    for key in space:
        sub, value = space[key], config[key]
        if isinstance(sub, Nested):
            for k, v in value.items():
                out[wrap(k)] = v
        elif isinstance(sub, File):
            _flatten_into(out, sub, value, functools.partial(file_arg_key, key))
        else:
            out[wrap(key)] = value


def arg_dict(space: Dict, config: dict) -> dict[str, Any]:
    """The manual's flat ``arg_dict`` for a config (e.g. ``{'batch-size': 512, 'config(epochs)': 4}``)."""
    out: dict[str, Any] = {}
    _flatten_into(out, space, config, lambda k: k)
    return out


def file_values(file_space: File, config: dict) -> dict[str, Any]:
    """The dotted-key values a File arg's config sets in its file."""
    out: dict[str, Any] = {}
    _flatten_into(out, file_space, config, lambda k: k)
    return out


def template_names(space: Dict) -> list[str]:
    """The names a template may use: plain args, Nested keys and File args."""
    names: dict[str, None] = {}
    for key in space:
        sub = space[key]
        if isinstance(sub, Nested):
            names.update(dict.fromkeys(sub.keys))
        else:
            names.setdefault(key)
    return list(names)


# ---- a job's rendering --------------------------------------------------------------------------

def rendered_file_name(file_space: File) -> str:
    """The name of a File arg's per-job copy: its ``place_holder`` (or the file's stem) + extension."""
    stem, ext = os.path.splitext(os.path.basename(file_space.file))
    return (file_space.place_holder or stem) + ext


def render_file(file_space: File, config: dict, out_dir: str, base: ConfigFile | None = None) -> str:
    """Write the File arg's config with this job's values into ``out_dir``; returns its path."""
    base = base if base is not None else ConfigFile(file_space.file)
    return base.render(file_values(file_space, config), os.path.join(out_dir, rendered_file_name(file_space)))


@dataclass
class RenderedJob:
    """Everything a job needs from its config, rendered once.

    ``values`` are what the template (or a function trial) gets: plain args, Nested keys, and each
    File arg's path in the job dir; ``command`` is the rendered template (None without one);
    ``files`` maps each per-job config file's path to the File arg and values it is written with
    (by :meth:`write_files`, when the job starts: a filtered job writes nothing).
    """

    arg_dict: dict[str, Any]
    values: dict[str, Any]
    command: str | None
    files: dict[str, tuple[ConfigFile, dict[str, Any]]]

    def write_files(self) -> None:
        for path, (base, values) in self.files.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            base.render(values, path)


def render_job(space: Dict, config: dict, job_dir: str, template: str | None,
               bases: dict[str, ConfigFile]) -> RenderedJob:
    """Render ``config`` for a job in ``job_dir``: arg_dict, template values, command, files.

    ``bases`` holds each File arg's loaded file by arg name (``TaskConfig.file_bases``).
    """
    values: dict[str, Any] = {}
    files: dict[str, tuple[ConfigFile, dict[str, Any]]] = {}
    for key in space:
        sub, value = space[key], config[key]
        if isinstance(sub, Nested):
            values.update(value)
        elif isinstance(sub, File):
            path = os.path.join(job_dir, rendered_file_name(sub))
            files[path] = (bases[key] if key in bases else ConfigFile(sub.file), file_values(sub, value))
            values[key] = path
        else:
            values[key] = value
    command = render_template(template, values) if template else None
    return RenderedJob(arg_dict(space, config), values, command, files)
