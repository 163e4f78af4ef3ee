"""From a searcher's config to what a job runs: the arg_dict, the command line, per-job config files.

* ``arg_dict`` is the flat view of a config the manual's filter API uses: plain names for template
  args, ``file_arg(dotted.key)`` for args inside a File arg, and the keys of a chosen Nested dict.
* Template placeholders are ``{name}`` (names may hold dashes and dots). ``{{``/``}}`` are literal
  braces and ``${VAR}`` is left to the shell. A value is shell-quoted unless the placeholder already
  sits inside quotes in the template, in which case it is escaped for that kind of quote.
* File args: the loaded file (:mod:`gml_ray.config_files`) gets the job's values at dotted keys
  and a copy is written into the job directory. :func:`render_job` does all of this once per job.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

from .config_files import ConfigFile, file_format, load, set_dotted  # noqa: F401 - re-exported
from .space import Categorical, Dict, File, Nested

ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")  # an arg (and placeholder) name
load_config_file = load  # the name tests and plugins used before config_files existed


@dataclass(frozen=True)
class Placeholder:
    name: str
    quote: str  # '' (bare), "'" or '"': the quoting the template puts around it


def parse_template(template: str) -> list[str | Placeholder]:
    """Split a template into literal text and placeholders; raises ValueError on a malformed brace."""
    parts: list[str | Placeholder] = []
    buf: list[str] = []
    quote = ""
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "\\" and quote != "'" and i + 1 < n:
            buf.append(template[i:i + 2])
            i += 2
            continue
        if c in "'\"" and (not quote or quote == c):
            quote = "" if quote else c
        elif c == "{":
            if template.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
            if i > 0 and template[i - 1] == "$":  # ${VAR}: the shell's, not ours
                end = template.find("}", i)
                end = n - 1 if end < 0 else end
                buf.append(template[i:end + 1])
                i = end + 1
                continue
            m = ARG_NAME.match(template, i + 1)
            if not m or not template.startswith("}", m.end()):
                raise ValueError(f"malformed placeholder at column {i + 1}: {template[i:i + 20]!r} "
                                 "(use {name}, or {{ and }} for literal braces)")
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(Placeholder(m.group(0), quote))
            i = m.end() + 1
            continue
        elif c == "}":
            if not template.startswith("}}", i):
                raise ValueError(f"malformed placeholder: a lone '}}' at column {i + 1} "
                                 "(use {name}, or {{ and }} for literal braces)")
            buf.append("}")
            i += 2
            continue
        buf.append(c)
        i += 1
    if buf:
        parts.append("".join(buf))
    return parts


def placeholder_names(template: str) -> list[str]:
    """The placeholder names in a template, in order of first use."""
    seen: dict[str, None] = {}
    for part in parse_template(template):
        if isinstance(part, Placeholder):
            seen.setdefault(part.name)
    return list(seen)


def format_value(value: Any) -> str:
    """A config value as text: containers as JSON, everything else as ``str``."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _quoted(text: str, quote: str) -> str:
    if quote == "'":
        return text.replace("'", "'\\''")
    if quote == '"':
        return re.sub(r'(["\\$`])', r"\\\1", text)
    return shlex.quote(text)


def render_template(template: str, values: dict[str, Any]) -> str:
    """Substitute ``values`` into ``template``; a missing name raises KeyError."""
    out = []
    for part in parse_template(template):
        if isinstance(part, Placeholder):
            out.append(_quoted(format_value(values[part.name]), part.quote))
        else:
            out.append(part)
    return "".join(out)


MAX_COMMAND_BYTES = 131_072  # Linux's limit on one exec argument: the command runs as `bash -c CMD`
_PATH_BYTES = 4096  # a File arg's value is a path in the job dir


def longest_command(template: str, space: Dict) -> int:
    """An upper bound on the length of ``template`` rendered with any config of ``space``."""
    longest: dict[str, int] = {}
    for key in space:
        sub = space[key]
        if isinstance(sub, Nested):
            for d in sub.data:
                for k, v in d.items():
                    longest[k] = max(longest.get(k, 0), len(format_value(v)))
        elif isinstance(sub, File):
            longest[key] = _PATH_BYTES
        elif isinstance(sub, Categorical):
            longest[key] = max(len(format_value(v)) for v in sub.data)
        else:
            longest[key] = 32  # a number
    total = 0
    for part in parse_template(template):
        # quoting can double a value's length at most (every character escaped), plus the quotes
        total += 2 * longest.get(part.name, 0) + 2 if isinstance(part, Placeholder) else len(part)
    return total


def file_arg_key(file_name: str, key: str) -> str:
    return f"{file_name}({key})"


def _flatten_into(out: dict[str, Any], space: Dict, config: dict, wrap) -> None:
    for key in space:
        sub, value = space[key], config[key]
        if isinstance(sub, Nested):
            for k, v in value.items():
                out[wrap(k)] = v
        elif isinstance(sub, File):
            _flatten_into(out, sub, value, lambda k, f=key: file_arg_key(f, k))
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
