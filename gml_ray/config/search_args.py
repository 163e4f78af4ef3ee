"""``search_args``: each entry parsed into a :class:`SearchArg`, overlapping keys resolved.

Args combine as the manual says (a Cartesian product, in order); File args load their config file
once here (:class:`~gml_ray.config.files.ConfigFile`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import gml_ray.config.render as render
from gml_ray.config.files import MMCV_EXTRA, ConfigFile, file_format
from gml_ray.config.template import ARG_NAME
from gml_ray.config.validate import Ctx, boolean, check_keys, did_you_mean, is_number, one_line, show
from gml_ray.space import Categorical, File, Int, Nested, Real, Space

ARG_TYPES = ("Categorical", "Real", "Int", "Nested", "File")


@dataclass
class SearchArg:
    """One entry of ``search_args`` (File args hold their own ``args``)."""

    type: str
    name: str
    data: Any = None
    step: float | None = None
    log: bool = False
    file: str | None = None  # absolute path of a File arg's template file
    place_holder: str | None = None
    args: list["SearchArg"] = field(default_factory=list)
    base: ConfigFile | None = None  # a File arg's loaded file (read once, here)

    def to_space(self) -> Space:
        if self.type == "Categorical":
            return Categorical(*self.data)
        if self.type == "Nested":
            return Nested(*self.data)
        if self.type == "Int":
            return Int(self.data[0], self.data[1], step=int(self.step or 1))
        if self.type == "Real":
            return Real(self.data[0], self.data[1], log=self.log, step=self.step)
        return File(self.file or "", self.place_holder, **{a.name: a.to_space() for a in self.args})



def _parse_arg(ctx: Ctx, raw: Any, path: str, index: int, base_dir: str, in_file: bool,
               warnings: list[str]) -> SearchArg:
    if not isinstance(raw, dict):
        raise ctx.error(path, f"must be a mapping with type, name and data, got {show(raw)}")
    kind = raw.get("type")
    if kind is None:
        raise ctx.error(f"{path}.type", f"is required (one of {', '.join(ARG_TYPES)})")
    if kind not in ARG_TYPES:
        raise ctx.error(f"{path}.type", f"unknown type {show(kind)}{did_you_mean(kind, list(ARG_TYPES))}")
    allowed = {"Categorical": ["type", "name", "data"],
               "Nested": ["type", "name", "data"],
               "Int": ["type", "name", "data", "step"],
               "Real": ["type", "name", "data", "step", "log"],
               "File": ["type", "name", "file", "place_holder", "search_args", "args"]}[kind]
    check_keys(ctx, raw, allowed, path)
    name = raw.get("name")
    if kind == "Nested" and name is None:
        name = f"_nested{index}"
    if not isinstance(name, str) or not name:
        raise ctx.error(f"{path}.name", f"{kind} needs a name, got {show(name)}")
    if kind != "Nested" and not ARG_NAME.fullmatch(name):
        raise ctx.error(f"{path}.name", f"{name!r} is not a valid name (letters, digits, _, -, .)")
    arg = SearchArg(type=kind, name=name)
    data = raw.get("data")
    dpath = f"{path}.data"

    if kind == "Categorical":
        if not isinstance(data, list) or not data:
            raise ctx.error(dpath, f"Categorical needs a non-empty list of choices, got {show(data)}")
        arg.data = data
    elif kind == "Nested":
        if not isinstance(data, list) or not data:
            raise ctx.error(dpath, f"Nested needs a non-empty list of mappings, got {show(data)}")
        for i, item in enumerate(data):
            if not isinstance(item, dict) or not item:
                raise ctx.error(f"{dpath}[{i}]", f"Nested choices must be non-empty mappings, got {show(item)}")
            for k in item:
                if not isinstance(k, str) or not ARG_NAME.fullmatch(k):
                    raise ctx.error(f"{dpath}[{i}]", f"{show(k)} is not a valid arg name")
        arg.data = data
    elif kind in ("Int", "Real"):
        if not (isinstance(data, list) and len(data) == 2 and all(is_number(v) for v in data)):
            raise ctx.error(dpath, f"{kind} needs [low, high], got {show(data)}")
        if kind == "Int" and not all(isinstance(v, int) for v in data):
            raise ctx.error(dpath, f"Int needs integer bounds, got {show(data)}")
        step = raw.get("step")
        if step is not None and (not is_number(step) or step <= 0 or (kind == "Int" and not isinstance(step, int))):
            raise ctx.error(f"{path}.step", f"must be a positive {'integer' if kind == 'Int' else 'number'}, got {show(step)}")
        arg.data, arg.step = list(data), step
        if kind == "Real":
            arg.log = boolean(ctx, raw.get("log", False), f"{path}.log")
        try:
            arg.to_space()
        except ValueError as exc:
            raise ctx.error(dpath, str(exc)) from None
    else:  # File
        if in_file:
            raise ctx.error(f"{path}.type", "a File arg cannot be inside another File arg")
        file = raw.get("file")
        if not isinstance(file, str) or not file:
            raise ctx.error(f"{path}.file", f"File needs the path of a config file, got {show(file)}")
        full = os.path.normpath(os.path.join(base_dir, os.path.expanduser(file)))
        try:
            file_format(full)
        except ValueError as exc:
            raise ctx.error(f"{path}.file", str(exc)) from None
        if not os.path.isfile(full):
            raise ctx.error(f"{path}.file", f"{file} does not exist (looked in {base_dir})")
        try:
            base = ConfigFile(full)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
            text = one_line(exc)
            if MMCV_EXTRA in text:
                raise ctx.error(f"{path}.file", f"{file}: {text}") from None
            raise ctx.error(f"{path}.file", f"cannot read {file}: {text}") from None
        ph = raw.get("place_holder")
        if ph is not None and (not isinstance(ph, str) or not re.fullmatch(r"[\w.\-]+", ph)):
            raise ctx.error(f"{path}.place_holder", f"must be a plain file stem, got {show(ph)}")
        if "search_args" in raw and "args" in raw:
            raise ctx.error(path, "give either search_args or args, not both")
        key = "search_args" if "search_args" in raw else "args"
        children = raw.get(key)
        if not isinstance(children, list) or not children:
            raise ctx.error(f"{path}.{key}", f"File needs a non-empty list of args, got {show(children)}")
        arg.file, arg.place_holder, arg.base = full, ph, base
        arg.args = parse_args(ctx, children, f"{path}.{key}", base_dir, in_file=True, warnings=warnings)
        for child, cpath in zip(arg.args, (f"{path}.{key}[{i}]" for i in range(len(children)))):
            keys = child.to_space().keys if child.type == "Nested" else [child.name]  # type: ignore[attr-defined]
            for k in keys:
                try:
                    base.check_key(k)
                except KeyError as exc:
                    raise ctx.error(cpath, f"{file} {exc.args[0]}") from None
    return arg


def arg_keys(arg: SearchArg) -> list[str]:
    """The keys an arg sets: its name, or every key of a Nested arg's dicts."""
    return arg.to_space().keys if arg.type == "Nested" else [arg.name]  # type: ignore[attr-defined]


def _resolve_overlaps(ctx: Ctx, args: list[SearchArg], path: str, warnings: list[str]) -> list[SearchArg]:
    """The manual's rule for args that set the same key: the later one wins (one warning line).

    An earlier plain arg that a later Nested arg sets in every one of its dicts could never change
    a job: it is dropped from the search, so no searcher spends trials on it. Where the later arg
    sets the key only in some dicts, both stay (GridSearcher then runs each distinct config once).
    Two args declared with the same name are a mistake, not an override: an error.
    """
    names: dict[str, int] = {}
    for i, arg in enumerate(args):
        if arg.type != "Nested":
            if arg.name in names:
                raise ctx.error(f"{path}[{i}].name", f"{arg.name!r} is declared twice "
                                f"(also {path}[{names[arg.name]}])")
            names[arg.name] = i
    dead: set[int] = set()
    for i, arg in enumerate(args):
        for k in arg_keys(arg):
            for j in range(i + 1, len(args)):
                later = args[j]
                if k not in arg_keys(later):
                    continue
                always = later.type != "Nested" or all(k in d for d in later.data)
                warnings.append(f"{path}[{j}] sets {k!r} after {path}[{i}]: the later value wins"
                                + (f"; {path}[{i}] is not searched" if always and arg.type != "Nested"
                                   else ""))
                if always and arg.type != "Nested":
                    dead.add(i)
                break
    return [a for i, a in enumerate(args) if i not in dead]


def parse_args(ctx: Ctx, raw: Any, path: str, base_dir: str, in_file: bool,
                warnings: list[str]) -> list[SearchArg]:
    if not isinstance(raw, list) or not raw:
        raise ctx.error(path, f"needs a non-empty list of args, got {show(raw)}")
    args = [_parse_arg(ctx, item, f"{path}[{i}]", i, base_dir, in_file, warnings)
            for i, item in enumerate(raw)]
    rendered: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.type == "File":
            name = render.rendered_file_name(arg.to_space())  # type: ignore[arg-type]
            if name in rendered:
                raise ctx.error(f"{path}[{i}].place_holder", f"renders to {name} in the job dir like "
                                f"{rendered[name]}: give one of them another place_holder")
            rendered[name] = f"{path}[{i}]"
    return _resolve_overlaps(ctx, args, path, warnings)
