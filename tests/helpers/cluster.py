"""`ray start` nodes on this machine, for the tests that need a Ray cluster (a head the CLI
tests join, the cluster and node-loss tests' nodes)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

BIN = os.path.dirname(sys.executable)


def env() -> dict:
    return dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                PATH=BIN + os.pathsep + os.environ.get("PATH", ""), COLUMNS="200")


def gml(*args, cwd, timeout=180):
    return subprocess.run([os.path.join(BIN, "gml-ray"), *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A `ray start --block` process in its own session; stop() ends everything it started."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([os.path.join(BIN, "ray"), "start", "--block", *args], env=env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def stop(self, sig=signal.SIGTERM) -> None:
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, s)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.5)


def wait_nodes(address: str, n: int, timeout: float = 60) -> list[dict]:
    code = ("import ray, json; ray.init(address=%r, logging_level='ERROR'); "
            "print(json.dumps([{'id': x['NodeID'], 'res': x['Resources']} for x in ray.nodes() if x['Alive']]))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([sys.executable, "-c", code % address], env=env(), capture_output=True,
                             text=True, timeout=60)
        if out.returncode == 0:
            nodes = json.loads(out.stdout.strip().splitlines()[-1])
            if len(nodes) >= n:
                return nodes
        time.sleep(1)
    raise AssertionError(f"the cluster did not reach {n} nodes")
