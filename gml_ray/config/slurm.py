"""GML templates written for Slurm: ``srun [options] command ...`` run on Ray.

The command after ``srun`` and its options is what a job runs; the options that ask for resources
become the job's Ray resources (``--gres gpu:N``/``--gpus N`` → ``num_gpus``, ``-c N`` →
``num_cpus``, ``--mem`` → ``memory``), and the ones that only place the job on a Slurm cluster
(partition, job name, quota type, ...) are dropped. One process per job: ``-n``/``--ntasks`` or
``-N``/``--nodes`` above 1 is refused.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

# Options that take a value (short and long spellings); everything srun knows that we map or drop.
_VALUE_OPTS = {
    "-p": "--partition", "-n": "--ntasks", "-N": "--nodes", "-c": "--cpus-per-task",
    "-G": "--gpus", "-J": "--job-name", "-t": "--time", "-w": "--nodelist", "-x": "--exclude",
    "-o": "--output", "-e": "--error", "-A": "--account", "-C": "--constraint", "-q": "--qos",
    "-D": "--chdir", "-d": "--dependency",
}
_VALUE_LONG = {*_VALUE_OPTS.values(), "--gres", "--mem", "--mem-per-cpu", "--mem-per-gpu",
               "--quotatype", "--ntasks-per-node", "--gpus-per-task", "--gpus-per-node",
               "--cpus-per-gpu", "--reservation", "--mpi", "--comment", "--begin", "--signal",
               "--export", "--cpu-bind", "--distribution", "--wckey", "--priority", "--nice",
               "--kill-on-bad-exit"}
_FLAGS = {"-l", "--label", "-u", "--unbuffered", "--exclusive", "-Q", "--quiet", "-v", "--verbose",
          "-K", "--pty", "-X", "--overcommit", "-O", "--oversubscribe", "--no-kill", "-k",
          "--spread-job", "--contiguous"}
_START = re.compile(r"^\s*srun(?=\s)")


class SrunError(ValueError):
    """A template's srun part cannot run on Ray as written (the message says why)."""


@dataclass
class SrunPrefix:
    """What a template's ``srun ...`` prefix amounts to on Ray."""

    resources: dict[str, float] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)  # "--gres gpu:1 -> num_gpus 1"
    dropped: list[str] = field(default_factory=list)  # "-p pat_dev"


def _memory_bytes(text: str, per: float = 1.0) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)B?", text.strip(), re.IGNORECASE)
    if not m:
        raise SrunError(f"--mem {text!r}: expected a size like 16G or 16000 (MB)")
    scale = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40, "": 2 ** 20}[m.group(2).upper()]
    return float(m.group(1)) * scale * per


def _gpu_count(text: str, option: str) -> float:
    """GPUs asked for by ``--gres gpu[:type][:N]`` (other gres ignored) or ``--gpus [type:]N``."""
    for item in text.split(","):
        parts = item.split(":")
        if option == "--gres" and parts[0] != "gpu":
            continue
        last = parts[-1] if option == "--gpus" or len(parts) > 1 else "1"
        if last.isdigit():
            return float(last)
        if option == "--gres":  # gpu:v100 is one GPU of that type
            return 1.0
        raise SrunError(f"{option} {text!r}: cannot read a GPU count")
    return 0.0


def split_srun(template: str) -> tuple[str, SrunPrefix | None]:
    """``(command, prefix)``: the template without its leading ``srun ...`` and what that meant.

    A template that does not start with ``srun`` comes back unchanged with ``None``.
    Raises :class:`SrunError` for what one Ray job cannot do (several tasks or nodes) or an option
    whose meaning is unknown.
    """
    m = _START.match(template)
    if not m:
        return template, None
    pos = m.end()
    prefix = SrunPrefix()
    options: list[tuple[str, str | None]] = []
    token = re.compile(r"\s*(\S+)")
    while True:
        tm = token.match(template, pos)
        if not tm:
            raise SrunError("srun is not followed by a command")
        word = tm.group(1)
        if not word.startswith("-") or word == "--":
            if word == "--":
                pos = tm.end()
            break
        pos = tm.end()
        name, eq, value = word.partition("=")
        if name.startswith("-") and not name.startswith("--") and len(name) > 2 and not eq:
            name, value, eq = name[:2], name[2:], "="  # -n1, -c4
        if name in _FLAGS:
            options.append((name, None))
            continue
        long = _VALUE_OPTS.get(name, name)
        if long not in _VALUE_LONG:
            raise SrunError(f"srun option {name} is not known to gml-ray: remove it from the template")
        if not eq:
            vm = token.match(template, pos)
            if not vm:
                raise SrunError(f"srun option {name} needs a value")
            value, pos = vm.group(1), vm.end()
        options.append((long, shlex.split(value)[0] if value else value))
    command = template[pos:].lstrip()
    if not command:
        raise SrunError("srun is not followed by a command")

    cpus = None
    memory: tuple[str, str, str] | None = None
    for option, value in options:
        shown = f"{option} {value}" if value is not None else option
        if option in ("--ntasks", "--nodes"):
            if value is None or not value.isdigit() or int(value) > 1:
                raise SrunError(f"{shown}: a gml-ray job is one process on one node; "
                                f"use {option} 1 (or drop it)")
            prefix.dropped.append(shown)
        elif option in ("--gres", "--gpus") and value is not None:
            n = _gpu_count(value, option)
            if n:
                prefix.resources["num_gpus"] = n
                prefix.mapped.append(f"{shown} -> num_gpus {n:g}")
            else:
                prefix.dropped.append(shown)
        elif option == "--cpus-per-task" and value is not None:
            if not re.fullmatch(r"\d+", value):
                raise SrunError(f"{shown}: expected a number of CPUs")
            cpus = float(value)
            prefix.resources["num_cpus"] = cpus
            prefix.mapped.append(f"{shown} -> num_cpus {cpus:g}")
        elif option in ("--mem", "--mem-per-cpu") and value is not None:
            memory = (option, value, shown)
        else:
            prefix.dropped.append(shown)
    if memory is not None:  # --mem-per-cpu counts the CPUs, wherever -c stands
        option, value, shown = memory
        per = (cpus or 1.0) if option == "--mem-per-cpu" else 1.0
        prefix.resources["memory"] = _memory_bytes(value, per)
        prefix.mapped.append(f"{shown} -> memory {prefix.resources['memory'] / 2 ** 30:.3g} GiB")
    return command, prefix
