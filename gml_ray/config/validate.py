"""Checks shared by every config parser: field paths in errors, durations, reward limits.

A :class:`Ctx` names the file; each check raises :class:`~gml_ray.errors.ConfigError` with the
field path, e.g. ``search_config.yaml: scheduler.parallel_size: must be a positive integer, got 0``.
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Any

import yaml

from gml_ray.errors import ConfigError


class Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(message, path, self.source)


def did_you_mean(key: str, allowed: list[str]) -> str:
    match = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (allowed: {', '.join(allowed)})"


def check_keys(ctx: Ctx, mapping: dict, allowed: list[str], path: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ctx.error(where, f"unknown key{did_you_mean(key, allowed)}")


def mapping(ctx: Ctx, value: Any, path: str, required: bool = False) -> dict:
    if value is None:
        if required:
            raise ctx.error(path, "is required")
        return {}
    if not isinstance(value, dict):
        raise ctx.error(path, f"must be a mapping, got {show(value)}")
    return value


def show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True,
                                                                      width=10 ** 6).strip()
    if text.endswith("\n..."):
        text = text[:-4].strip()
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def boolean(ctx: Ctx, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ctx.error(path, f"must be true or false, got {show(value)}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}


def parse_duration(value: Any) -> float:
    """Seconds from a duration: a bare number is hours; strings take ``s``, ``m``, ``h``, ``d``."""
    if is_number(value):
        if value <= 0:
            raise ValueError(f"must be > 0, got {value}")
        return float(value) * 3600
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _UNIT[m.group(2).lower()]
    raise ValueError(f"needs a duration like 2 (hours), '90s', '30m', '1h' or '2d', got {show(value)}")


def parse_reward_limit(value: Any) -> float:
    """``max_reward``: a number, or inf / .inf / -inf."""
    if is_number(value):
        return float(value)
    if isinstance(value, str) and value.strip().lower().lstrip("+-.") in ("inf", "infinity"):
        return -math.inf if value.strip().startswith("-") else math.inf
    raise ValueError(f"needs a number or inf, got {show(value)}")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
