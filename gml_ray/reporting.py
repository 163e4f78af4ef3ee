"""The training-script side of the scalar stream: ``SummaryWriter`` (pavi-like) and ``report``.

Inside a gml-ray command job the scalars go, one JSON line each, down a pipe whose descriptor is in
``GML_SCALAR_FD``; the job's Ray task forwards them to the scheduler. A line written is safe even
if the script crashes right after. Inside a function trial they go straight to the trial's queue.
Run by hand, outside gml-ray, the writer appends to ``./gml_scalars/<name>.jsonl`` and warns once.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from typing import Any, Callable

ENV_FD = "GML_SCALAR_FD"
ENV_METRICS = "GML_METRICS"  # "none": scalars are not collected (MOCK_PAVI=2)

Record = dict  # {"t": tag, "v": value, "s": step, "c": created_ms}

_lock = threading.Lock()
_function_sink: Callable[[list[Record]], None] | None = None
_fd_broken = False
_warned = False


def _plain(value: Any) -> Any:
    """A reported value as a JSON-able Python scalar (tensors and numpy values via ``.item()``)."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):  # a tensor with several elements
            return str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


PAVI_COMPAT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat")
_real_pavi: bool | None = None


def pavi_compat_dir() -> str | None:
    """The folder holding gml-ray's ``pavi`` compat package, to append to a job's import path;
    None when a real ``pavi`` is importable here (it must never be shadowed)."""
    global _real_pavi
    if _real_pavi is None:
        import importlib.util
        try:
            spec = importlib.util.find_spec("pavi")
        except (ImportError, ValueError):
            spec = None
        origin = (spec.origin or "") if spec is not None else ""
        _real_pavi = spec is not None and not origin.startswith(PAVI_COMPAT_DIR)
    return None if _real_pavi else PAVI_COMPAT_DIR


def set_function_sink(sink: Callable[[list[Record]], None] | None) -> None:
    """Route reports of this process to ``sink`` (used by gml-ray's function trials)."""
    global _function_sink
    _function_sink = sink


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_local(name: str, data: bytes) -> None:
    global _warned
    os.makedirs("gml_scalars", exist_ok=True)
    path = os.path.join("gml_scalars", f"{name or 'default'}.jsonl")
    with open(path, "ab") as f:
        f.write(data)
    if not _warned:
        _warned = True
        warnings.warn(f"gml_ray: not running under gml-ray, scalars are written to {path}",
                      RuntimeWarning, stacklevel=4)


def emit(records: list[Record], name: str = "") -> None:
    """Send scalar records to whatever collects them in this process."""
    global _fd_broken
    if not records:
        return
    if _function_sink is not None:
        _function_sink(records)
        return
    if os.environ.get(ENV_METRICS) == "none":
        return
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    fd = os.environ.get(ENV_FD)
    with _lock:
        if fd and not _fd_broken:
            try:
                _write_fd(int(fd), data)
                return
            except (OSError, ValueError) as exc:
                _fd_broken = True
                print(f"gml_ray: cannot send scalars to gml-ray ({exc}); writing them locally",
                      file=sys.stderr)
        _write_local(name, data)


class SummaryWriter:
    """Report scalars from a training script: ``SummaryWriter('name').add_scalar(tag, value, step)``.

    A missing ``step`` counts up per tag from 0. Values may be numbers, numpy values or
    one-element tensors; NaN, inf and text are stored but flagged and never used as a reward.
    """

    def __init__(self, name: str | None = None, *args: Any, **kwargs: Any) -> None:
        self.name = name or ""
        self._steps: dict[str, int] = {}

    def _record(self, tag: str, value: Any, step: int | None) -> Record:
        if step is None:
            step = self._steps.get(tag, -1) + 1
        step = int(step)
        self._steps[tag] = step
        return {"t": str(tag)[:200], "v": _plain(value), "s": step, "c": int(time.time() * 1000)}

    def add_scalar(self, tag: str, value: Any, step: int | None = None, *args: Any, **kwargs: Any) -> None:
        step = kwargs.get("global_step", step)
        emit([self._record(tag, value, step)], self.name)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any], step: int | None = None,
                    *args: Any, **kwargs: Any) -> None:
        """Report several scalars at one step; each key of ``tag_scalar_dict`` is its own tag."""
        step = kwargs.get("global_step", step)
        emit([self._record(t, v, step) for t, v in tag_scalar_dict.items()], self.name)

    def flush(self) -> None:
        pass  # every record is written when it is added

    def close(self) -> None:
        pass

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_report_step = -1


def report(step: int | None = None, /, **scalars: Any) -> None:
    """Report several scalars at one step: ``gml_ray.report(acc=0.9, loss=0.3)``.

    Each call is the next step (from 0) unless ``step`` is given positionally.
    """
    global _report_step
    _report_step = _report_step + 1 if step is None else int(step)
    now = int(time.time() * 1000)
    emit([{"t": str(k), "v": _plain(v), "s": _report_step, "c": now} for k, v in scalars.items()])


def reset_report_step() -> None:
    global _report_step
    _report_step = -1
