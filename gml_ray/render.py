"""From a searcher's config to what a job runs: the arg_dict, the command line, per-job config files.

* ``arg_dict`` is the flat view of a config the manual's filter API uses: plain names for template
  args, ``file_arg(dotted.key)`` for args inside a File arg, and the keys of a chosen Nested dict.
* Template placeholders are ``{name}`` (names may hold dashes and dots). ``{{``/``}}`` are literal
  braces and ``${VAR}`` is left to the shell. A value is shell-quoted unless the placeholder already
  sits inside quotes in the template, in which case it is escaped for that kind of quote.
* File args: the template file (YAML, JSON or an mmcv-style Python config) is loaded, values are set
  at dotted keys, and a copy is written into the job directory.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import pprint
import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from .space import Dict, File, Nested

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


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
            m = _NAME.match(template, i + 1)
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


# ---- config files -----------------------------------------------------------------------------

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".py": "python"}


def file_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise ValueError(f"unsupported config file type {ext or '(none)'}: use .yaml, .yml, .json or .py")
    return _FORMATS[ext]


class _PyConfigEval(ast.NodeVisitor):
    """Evaluates the literal subset of Python used by mmcv-style configs, without running code."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.eval(e) for e in node.elts]
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError("'**' in a dict literal is not supported")
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return copy.deepcopy(self.env[node.id])
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            raise ValueError(f"name {node.id!r} is not defined above")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.eval(node.operand)
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div,
                                                                ast.FloorDiv, ast.Pow, ast.Mod)):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
                raise ValueError(f"line {node.lineno}: an exponent over 64 is not supported")
            ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
                   ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
                   ast.FloorDiv: lambda a, b: a // b, ast.Pow: lambda a, b: a ** b,
                   ast.Mod: lambda a, b: a % b}
            return ops[type(node.op)](left, right)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("dict", "list", "tuple")):
            if node.func.id == "dict":
                if node.args:
                    raise ValueError("dict(...) with positional arguments is not supported")
                out: dict = {}
                for kw in node.keywords:
                    value = self.eval(kw.value)
                    if kw.arg is None:  # dict(**base, ...)
                        if not isinstance(value, dict):
                            raise ValueError("'**' needs a dict")
                        out.update(value)
                    else:
                        out[kw.arg] = value
                return out
            args = [self.eval(a) for a in node.args]
            return {"list": list, "tuple": tuple}[node.func.id](*args)
        raise ValueError(f"line {getattr(node, 'lineno', '?')}: only literal values are supported "
                         f"in a Python config, got {type(node).__name__}")


def load_python_config(text: str) -> dict[str, Any]:
    """Top-level ``name = literal`` assignments of an mmcv-style Python config, in order."""
    tree = ast.parse(text)
    env: dict[str, Any] = {}
    evaluator = _PyConfigEval(env)
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            value = evaluator.eval(stmt.value)
            for target in stmt.targets:
                env[target.id] = value  # type: ignore[attr-defined]
            continue
        raise ValueError(f"line {stmt.lineno}: only top-level 'name = value' assignments are "
                         f"supported in a Python config, got {type(stmt).__name__}")
    return env


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML, JSON or Python config file into a dict."""
    fmt = file_format(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if fmt == "yaml":
        data = yaml.safe_load(text)
    elif fmt == "json":
        data = json.loads(text)
    else:
        data = load_python_config(text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"the top level must be a mapping, got {type(data).__name__}")
    return data


def dump_config_file(data: dict[str, Any], path: str) -> None:
    """Write ``data`` in the format ``path``'s extension names."""
    fmt = file_format(path)
    with open(path, "w", encoding="utf-8") as f:
        if fmt == "yaml":
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
        elif fmt == "json":
            json.dump(data, f, indent=2)
            f.write("\n")
        else:
            for key, value in data.items():
                f.write(f"{key} = {pprint.pformat(value, sort_dicts=False)}\n")


def _walk_parent(data: Any, key: str) -> tuple[Any, str | int]:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[:i + 1])
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(f"has no key {where!r}")
    last = parts[-1]
    if isinstance(node, list):
        if not (last.isdigit() and int(last) < len(node)):
            raise KeyError(f"has no index {key!r}")
        return node, int(last)
    if not isinstance(node, dict):
        raise KeyError(f"{'.'.join(parts[:-1])!r} is not a mapping")
    return node, last


def check_dotted(data: dict, key: str) -> None:
    """Raise KeyError when ``key``'s parent does not exist in ``data`` (a new leaf is allowed)."""
    _walk_parent(data, key)


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key == 'a.b.c'`` (list items by index)."""
    parent, last = _walk_parent(data, key)
    parent[last] = value  # type: ignore[index]


def rendered_file_name(file_space: File) -> str:
    stem, ext = os.path.splitext(os.path.basename(file_space.file))
    return (file_space.place_holder or stem) + ext


def render_file(file_space: File, config: dict, out_dir: str, base: dict | None = None) -> str:
    """Write the File arg's config with this job's values into ``out_dir``; returns its path."""
    data = copy.deepcopy(base if base is not None else load_config_file(file_space.file))
    for key, value in file_values(file_space, config).items():
        set_dotted(data, key, value)
    path = os.path.join(out_dir, rendered_file_name(file_space))
    dump_config_file(data, path)
    return path


def job_values(space: Dict, config: dict, out_dir: str | None,
               bases: dict[str, dict] | None = None) -> dict[str, Any]:
    """The values a job's template (or function) gets: plain args, Nested keys, File paths.

    With ``out_dir`` set, File args are rendered into it; otherwise their value is the file name.
    """
    values: dict[str, Any] = {}
    for key in space:
        sub, value = space[key], config[key]
        if isinstance(sub, Nested):
            values.update(value)
        elif isinstance(sub, File):
            if out_dir is None:
                values[key] = rendered_file_name(sub)
            else:
                values[key] = render_file(sub, value, out_dir, (bases or {}).get(key))
        else:
            values[key] = value
    return values
