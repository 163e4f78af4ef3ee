"""The training-script side of the scalar stream: ``SummaryWriter`` (pavi-like) and ``report``.

Inside a gml-ray command job the scalars go, one JSON line each, down a pipe whose descriptor is in
``GML_SCALAR_FD``; the job's Ray task forwards them to the scheduler. A line written is safe even
if the script crashes right after. Inside a function trial they go straight to the trial's queue.
Run by hand, outside gml-ray, the writer appends to ``./gml_scalars/<name>.jsonl`` and warns once.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import warnings
from typing import Any, Callable

from gml_ray import checkpoints

ENV_FD = "GML_SCALAR_FD"
ENV_METRICS = "GML_METRICS"  # "none": scalars are not collected (MOCK_PAVI=2)

Record = dict  # {"t": tag, "v": value, "s": step, "c": created_ms}

_lock = threading.Lock()
_function_sink: Callable[[list[Record]], None] | None = None
_fd_broken = False
_warned = False


_STEP_MIN, _STEP_MAX = -(1 << 63), (1 << 63) - 1  # what the store keeps as a step
_warned_about: set[tuple[str, str]] = set()  # (tag, problem): one warning line each


def _warn_once(tag: str, problem: str, text: str) -> None:
    if (tag, problem) in _warned_about:
        return
    _warned_about.add((tag, problem))
    print(f"gml_ray: scalar {tag!r}: {text} (warned once per tag)", file=sys.stderr, flush=True)


TAG_MAX = 200  # characters of a tag that are sent (the scheduler cuts raw pipe lines' tags too)


def _tag(tag: Any) -> str:
    """A tag as text of at most ``TAG_MAX`` characters; a longer one is cut, with one warning."""
    tag = tag if isinstance(tag, str) else _text(tag)
    if len(tag) > TAG_MAX:
        _warn_once(tag[:TAG_MAX], "long", f"a tag of {len(tag):,} characters was cut to its first {TAG_MAX}")
        tag = tag[:TAG_MAX]
    return tag


def _plain(value: Any, tag: str = "") -> Any:
    """A reported value as a JSON-able Python scalar (tensors and numpy values via ``.item()``).
    A number too large for a float (``10**400``) becomes inf of its sign, with one warning. A bool
    stays one: it is stored flagged (not a number), never a reward."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):  # a tensor with several elements
            return _text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            _warn_once(tag, "big", f"{_short(value)} does not fit a float: sent as "
                       f"{'-' if value < 0 else ''}inf (stored flagged, never a reward)")
            return -math.inf if value < 0 else math.inf
        return value
    if isinstance(value, (float, str)) or value is None:
        return value
    try:
        return float(value)
    except OverflowError:  # e.g. fractions.Fraction(10**400)
        _warn_once(tag, "big", "does not fit a float: sent as inf (stored flagged, never a reward)")
        return -math.inf if value < 0 else math.inf
    except (TypeError, ValueError):
        return _text(value)


def _text(value: Any) -> str:
    try:
        return str(value)[:1000]
    except ValueError:  # an int beyond Python's digit limit inside a container
        return f"<{type(value).__name__}>"


def _short(value: int) -> str:
    return f"~{'-' if value < 0 else ''}1e+{int(value.bit_length() * 0.30103)}"


def _step(step: Any, tag: str, auto: int) -> int:
    """``step`` as a storable integer; one that is not (``10**30``, inf, text) is replaced by
    ``auto`` (the tag's previous step + 1), with one warning line per tag."""
    try:
        value = int(step)
    except (TypeError, ValueError, OverflowError):
        value = None
    if value is None or not _STEP_MIN <= value <= _STEP_MAX:
        shown = _short(step) if isinstance(step, int) else repr(step)[:60]
        _warn_once(tag, "step", f"step {shown} is not a storable integer (64-bit): "
                   f"counted on from the tag's last step instead")
        return auto
    return value


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

    A missing ``step`` counts up per tag from 0 (in a job restarted from a checkpoint, from the
    checkpoint's step + 1). Values may be numbers, numpy values or one-element tensors; NaN, inf
    and text are stored but flagged and never used as a reward.
    """

    def __init__(self, name: str | None = None, *args: Any, **kwargs: Any) -> None:
        self.name = name or ""
        self._steps: dict[str, int] = {}
        restored = checkpoints.restored_step()
        self._first = -1 if restored is None else restored  # the step before the first auto step

    def _record(self, tag: str, value: Any, step: int | None) -> Record:
        tag = _tag(tag)
        auto = self._steps.get(tag, self._first) + 1
        step = auto if step is None else _step(step, tag, auto)
        self._steps[tag] = step
        return {"t": tag, "v": _plain(value, tag), "s": step, "c": int(time.time() * 1000)}

    def add_scalar(self, tag: str, value: Any, step: int | None = None, *args: Any, **kwargs: Any) -> None:
        step = kwargs.get("global_step", step)
        emit([self._record(tag, value, step)], self.name)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any], step: int | None = None,
                    *args: Any, **kwargs: Any) -> None:
        """Report several scalars at one step; each key of ``tag_scalar_dict`` is its own tag."""
        step = kwargs.get("global_step", step)
        emit([self._record(t, v, step) for t, v in tag_scalar_dict.items()], self.name)

    def save_checkpoint(self, path: str, step: int) -> str | None:
        """Announce ``path`` as the job's checkpoint at ``step``: :func:`gml_ray.checkpoint`."""
        return checkpoints.checkpoint(path, step)

    def flush(self) -> None:
        pass  # every record is written when it is added

    def close(self) -> None:
        pass

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_report_step: int | None = None  # the last step report() used (None: not yet read)


def report(step: int | None = None, *, checkpoint: str | None = None, **scalars: Any) -> None:
    """Report several scalars at one step: ``gml_ray.report(acc=0.9, loss=0.3, step=epoch)``.

    Each call is the next step (from 0, or from a restored checkpoint's step + 1) unless ``step``
    is given (first, or by name: ``step`` and ``checkpoint`` are never scalars' names; report a
    scalar called so with :meth:`SummaryWriter.add_scalar`). ``checkpoint``: a file or directory
    the trial has finished writing, announced as its checkpoint at this step
    (:func:`gml_ray.checkpoint`) after the scalars.
    """
    global _report_step
    if _report_step is None:
        _report_step = _restart_step()
    auto = _report_step + 1
    _report_step = auto if step is None else _step(step, ",".join(scalars)[:TAG_MAX], auto)
    now = int(time.time() * 1000)
    tags = [_tag(k) for k in scalars]
    emit([{"t": t, "v": _plain(v, t), "s": _report_step, "c": now}
          for t, v in zip(tags, scalars.values())])
    if checkpoint is not None:
        checkpoints.checkpoint(checkpoint, _report_step)


def _restart_step() -> int:
    restored = checkpoints.restored_step()
    return -1 if restored is None else restored


def reset_report_step() -> None:
    """A new trial starts (function trials share a process): steps from 0 (or after the step of
    the checkpoint it restarts from), warnings again."""
    global _report_step
    _report_step = None
    _warned_about.clear()
