"""A File arg's config file: loaded once, then written per job with that job's values set.

Formats, by extension:

* ``.yaml``/``.yml``: read and written with ruamel.yaml's round-trip mode, so a rendered copy keeps
  the base file's comments, key order and flow style.
* ``.json``: the standard library.
* ``.py``: an mmcv/OpenMMLab-style config. A file of plain ``name = literal`` assignments is read
  by a small evaluator that runs no code (no extra needed). A file that needs more (``_base_``,
  imports, comprehensions, ``{{_base_.x}}``) is loaded by mmengine's own ``Config.fromfile``, which
  executes it the way OpenMMLab does; this needs the ``mmcv`` extra (``pip install
  'gml-ray[mmcv]'``). Its rendered copy is self-contained: the bases' values merged in, nothing
  imported, loadable by ``mmengine.Config.fromfile`` from the job dir.
"""
from __future__ import annotations

import ast
import copy
import io
import json
import os
import pprint
from typing import Any

MMCV_EXTRA = "pip install 'gml-ray[mmcv]'"
_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".py": "python"}


def file_format(path: str) -> str:
    """``yaml``, ``json`` or ``python`` from ``path``'s extension; ValueError for anything else."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise ValueError(f"unsupported config file type {ext or '(none)'}: use .yaml, .yml, .json or .py")
    return _FORMATS[ext]


def _yaml() -> Any:
    from ruamel.yaml import YAML
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # keep long lines as the user wrote them
    return y


# ---- Python configs -----------------------------------------------------------------------------

class _PyConfigEval:
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
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return copy.deepcopy(self.env[node.id])
            raise ValueError(f"name {node.id!r} is not defined above")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self.eval(node.operand)
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
                raise ValueError(f"line {node.lineno}: an exponent over 64 is not supported")
            if isinstance(node.op, ast.Mult) and _too_big(left, right):
                raise ValueError(f"line {node.lineno}: the value would be too large (over {_MAX_ITEMS} items)")
            return _BINOPS[type(node.op)](left, right)
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


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b,
           ast.Pow: lambda a, b: a ** b, ast.Mod: lambda a, b: a % b}
_MAX_ITEMS = 10_000_000  # 'a' * 10**10 in a config must not take the machine's memory


def _too_big(left: Any, right: Any) -> bool:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
            return len(seq) * n > _MAX_ITEMS
    return False


def load_python_literals(text: str) -> dict[str, Any]:
    """Top-level ``name = literal`` assignments of an mmcv-style Python config, in order.

    Raises ValueError for anything else (imports, calls, comprehensions, control flow).
    """
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


def _needs_mmengine(text: str, literals: dict[str, Any] | None) -> bool:
    return literals is None or "_base_" in literals or "{{" in text


def _load_with_mmengine(path: str, why: str) -> dict[str, Any]:
    try:
        from mmengine import Config
    except ImportError:
        raise ValueError(f"{why}: such OpenMMLab configs are read with mmengine; "
                         f"install it with {MMCV_EXTRA}") from None
    return Config.fromfile(path).to_dict()


def _dump_python(data: dict[str, Any], path: str, mmengine: bool) -> None:
    if mmengine:
        from mmengine import Config
        Config(data).dump(path)
        return
    with open(path, "w", encoding="utf-8") as f:
        for key, value in data.items():
            f.write(f"{key} = {pprint.pformat(value, sort_dicts=False)}\n")


# ---- the loaded file ----------------------------------------------------------------------------

class ConfigFile:
    """One loaded config file (a File arg's base): ``data`` is its content as a mapping."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.format = file_format(path)
        self.via_mmengine = False
        with open(path, encoding="utf-8") as f:
            self._text = f.read()
        try:
            self.data = self._parse()
        except RecursionError:
            raise ValueError("nested too deeply to read (hundreds of levels)") from None

    def _parse(self) -> Any:
        if self.format == "yaml":
            data = _yaml().load(self._text)
        elif self.format == "json":
            data = json.loads(self._text)
        else:
            try:
                literals: dict[str, Any] | None = load_python_literals(self._text)
                why = "it sets _base_" if literals and "_base_" in literals else "it uses {{_base_...}}"
            except ValueError as exc:
                literals, why = None, str(exc)
            if _needs_mmengine(self._text, literals):
                data = _load_with_mmengine(self.path, why)
                self.via_mmengine = True
            else:
                data = literals
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"the top level must be a mapping, got {type(data).__name__}")
        return data

    def __getstate__(self) -> dict[str, Any]:
        # ruamel's round-trip objects are rebuilt from the text; the rest pickles as it is.
        state = dict(self.__dict__)
        if self.format == "yaml":
            state["data"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.data is None:
            self.data = _yaml().load(self._text) or {}

    def check_key(self, key: str) -> None:
        """KeyError (``has no key 'a.b'``) when ``key``'s parent does not exist (a new leaf is allowed)."""
        _walk_parent(self.data, key)

    def render(self, values: dict[str, Any], path: str) -> str:
        """Write a copy with ``values`` set at their dotted keys to ``path``; returns ``path``."""
        data = copy.deepcopy(self.data)
        for key, value in values.items():
            set_dotted(data, key, value)
        dump(data, path, self.via_mmengine)
        return path


def load(path: str) -> dict[str, Any]:
    """The content of a YAML, JSON or Python config file as a mapping."""
    return ConfigFile(path).data


def dump(data: dict[str, Any], path: str, mmengine: bool = False) -> None:
    """Write ``data`` in the format ``path``'s extension names (``.py`` through mmengine if asked)."""
    fmt = file_format(path)
    if fmt == "python":
        _dump_python(data, path, mmengine)
        return
    with open(path, "w", encoding="utf-8") as f:
        if fmt == "yaml":
            buf = io.StringIO()
            _yaml().dump(data, buf)
            f.write(buf.getvalue())
        else:
            json.dump(data, f, indent=2)
            f.write("\n")


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


def set_dotted(data: Any, key: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``key == 'a.b.c'`` (list items by index)."""
    parent, last = _walk_parent(data, key)
    parent[last] = value
