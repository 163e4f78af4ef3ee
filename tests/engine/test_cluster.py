"""gml-ray on a real multi-node Ray cluster: two `ray start` nodes on this machine.

The cluster tests are marked `cluster` (slow: a head with its dashboard, a second node, job
submission); they run in CI too. The fast-failure tests need no cluster.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from helpers import REPO_DIR, pid_alive, write_files
from helpers.cluster import Node, env, free_port, gml, wait_nodes

from gml_ray.store import Store

# One test process runs them all: they share the module's 2-node cluster.
pytestmark = pytest.mark.xdist_group("cluster")

BIN = os.path.dirname(sys.executable)

TRAIN = """
import os, sys, time
from gml_ray import SummaryWriter
x = float(sys.argv[1]); sleep = float(sys.argv[2])
with open(os.environ["GML_JOB_DIR"] + "/pid", "w") as f:
    f.write(str(os.getpid()))
w = SummaryWriter()
for e in range(3):
    w.add_scalar("acc", x * (e + 1), e)
    time.sleep(sleep)
"""


def config(resources: str, xs: str = "[1, 2, 3, 4]", sleep: float = 0.0, extra: str = "") -> str:
    return f"""
task:
  template: "python train.py {{x}} {sleep}"
  resources: {resources}
{extra}
  search_args:
    - {{type: Categorical, name: x, data: {xs}}}
searcher: {{type: GridSearcher, reward_attribute: acc}}
scheduler: {{parallel_size: 2}}
"""


@pytest.fixture(scope="module")
def cluster():
    """A head (1 CPU, resource nodeA, dashboard for job submission) and a worker (1 CPU, nodeB)."""
    port, dash = free_port(), free_port()
    # Every Ray instance's node agent binds port 52365 by default; the test session's own local Ray
    # holds it already, and the job-submission agent then never comes up: give each node its own.
    head = Node("--head", f"--port={port}", "--num-cpus=1", '--resources={"nodeA": 1}',
                "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                f"--dashboard-agent-listen-port={free_port()}")
    address = f"127.0.0.1:{port}"
    worker = None
    try:
        wait_nodes(address, 1)
        worker = Node(f"--address={address}", "--num-cpus=1", '--resources={"nodeB": 1}',
                      f"--dashboard-agent-listen-port={free_port()}")
        nodes = wait_nodes(address, 2)
        ids = {name: next(n["id"] for n in nodes if name in n["res"]) for name in ("nodeA", "nodeB")}
        yield {"address": address, "dashboard": f"http://127.0.0.1:{dash}", "ids": ids,
               "head": head, "worker": worker}
    finally:
        if worker is not None:
            worker.stop()
        head.stop()


@pytest.mark.cluster
def test_jobs_with_a_custom_resource_land_on_the_node_that_has_it(cluster, tmp_path):
    write_files(tmp_path, {"train.py": TRAIN,
                           "search_config.yaml": config("{num_cpus: 1, nodeB: 1}")})
    result = gml("run", "search_config.yaml", "--task", "placed", "--workdir", "wd",
                 "--address", cluster["address"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = Store(str(tmp_path / "wd"), create=False).jobs("placed")
    assert [j["status"] for j in jobs] == ["FINISHED"] * 4
    node_b = cluster["ids"]["nodeB"][:8]
    assert all(j["node"].endswith(node_b) for j in jobs), [j["node"] for j in jobs]
    shown = gml("ctl", "show", "--task", "placed", "--jobs", "1,2", "--workdir", "wd", cwd=tmp_path)
    assert node_b in shown.stdout


@pytest.mark.cluster
def test_ray_job_submit_runs_a_search_readable_with_ctl_show(cluster, tmp_path):
    code = tmp_path / "code"
    write_files(code, {"train.py": TRAIN, "search_config.yaml": config("{num_cpus: 1}", xs="[1, 2]")})
    deadline = time.time() + 180
    for attempt in range(1, 100):
        wd = tmp_path / f"persistent-wd-{attempt}"  # an attempt that failed may have made its task
        submit = [os.path.join(BIN, "ray"), "job", "submit", "--address", cluster["dashboard"], "--working-dir",
                  str(code), "--", "gml-ray", "run", "search_config.yaml", "--task", "submitted",
                  "--workdir", str(wd)]
        result = subprocess.run(submit, env=env(), capture_output=True, text=True, timeout=300)
        # The head's job agent comes up some seconds after the node itself on a busy machine, and
        # there Ray may lose the uploaded working dir before its worker fetches it, or the job's
        # driver may give up reaching the GCS (60 s, with the other test processes' Rays beside
        # it): submit again, until the deadline.
        out = result.stdout + result.stderr
        transient = ("No available agent to submit job", "Failed to download runtime_env file package",
                     "Failed to connect to GCS within")
        if not any(t in out for t in transient) or time.time() > deadline:
            break
        time.sleep(2)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "task submitted FINISHED" in result.stdout
    shown = gml("ctl", "show", "--task", "submitted", "--workdir", str(wd), cwd=tmp_path)
    assert shown.returncode == 0
    jobs = Store(str(wd), create=False).jobs("submitted")
    assert [j["status"] for j in jobs] == ["FINISHED", "FINISHED"] and jobs[1]["reward"] == 6


@pytest.mark.cluster
def test_an_unsatisfiable_request_on_the_cluster_fails_at_once(cluster, tmp_path):
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": config("{num_cpus: 1, nodeC: 1}")})
    result = gml("run", "search_config.yaml", "--task", "never", "--workdir", "wd",
                 "--address", cluster["address"], cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "no node of the Ray cluster can run a job" in result.stderr and "nodeC" in result.stderr


@pytest.mark.cluster
def test_losing_a_node_mid_job_retries_it_and_the_task_completes(cluster, tmp_path):
    """(Last of the cluster tests: it takes the worker node down.)"""
    # one job on each node (1 CPU each); the worker node dies while its job runs
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": config(
        "{num_cpus: 1}", xs="[1, 2, 3]", sleep=2.0, extra="  max_retries: 1")})
    proc = subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "lost",
                             "--workdir", "wd", "--address", cluster["address"]], cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    node_b = cluster["ids"]["nodeB"][:8]
    store_path = tmp_path / "wd"
    deadline = time.time() + 90
    victim = None
    while time.time() < deadline and victim is None:
        if (store_path / "gml.db").exists():
            jobs = Store(str(store_path), create=False).jobs("lost") if Store(
                str(store_path), create=False).get_task("lost") else []
            victim = next((j for j in jobs if j["status"] == "RUNNING" and (j["node"] or "").endswith(node_b)
                           and os.path.exists(os.path.join(j["job_dir"], "pid"))), None)
        time.sleep(0.2)
    assert victim is not None, "no job started on the worker node"
    victim_pid = int(open(os.path.join(victim["job_dir"], "pid")).read())
    cluster["worker"].stop(signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    jobs = Store(str(store_path), create=False).jobs("lost")
    assert [j["status"] for j in jobs] == ["FINISHED"] * 3
    again = next(j for j in jobs if j["job_id"] == victim["job_id"])
    # the node column: this attempt's node, then the earlier attempt's (``ctl show`` splits them)
    assert again["attempt"] == 2 and not again["node"].split(" (attempt ")[0].endswith(node_b)
    assert again["node"].endswith(f"(attempt 1: {victim['node']})"), again["node"]
    shown = gml("ctl", "show", "--task", "lost", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0 and "attempt" in shown.stdout
    assert f"2 (1: {victim['node']})" in " ".join(shown.stdout.split()), shown.stdout
    assert "Raylet is terminated" not in out + err  # Ray's dumps stay out of the terminal
    deadline = time.time() + 30
    while pid_alive(victim_pid) and time.time() < deadline:
        time.sleep(0.5)
    assert not pid_alive(victim_pid), "the lost node's job process outlived it"


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_an_unsatisfiable_gpu_request_fails_at_once_locally(tmp_path):
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": config("{num_gpus: 1}")})
    t0 = time.time()
    result = gml("run", "search_config.yaml", "--task", "gpu", "--workdir", "wd", "--num-cpus", "2",
                 cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    offer = lines[0].split("offer:")[1].split(")")[0]
    assert len(lines) == 1 and "num_gpus: 1" in lines[0] and "GPU" not in offer
    assert Store(str(tmp_path / "wd"), create=False).get_task("gpu")["status"] == "ERROR"


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1"),
    ("http://127.0.0.1:8265", "dashboard's address"),
])
def test_a_bad_address_fails_fast_with_one_line(tmp_path, address, message):
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": config("{num_cpus: 1}")})
    result = gml("run", "search_config.yaml", "--task", "bad", "--workdir", "wd", "--address", address,
                 cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(REPO_DIR, "cluster.yaml")) as f:
        raw = yaml.safe_load(f)
    validate_config(prepare_config(raw))
    assert raw["provider"]["type"] == "local"
    assert any("pip install" in c and "gml-ray" in c for c in raw["setup_commands"])
    broken = dict(raw, max_workerz=3)
    with pytest.raises(Exception, match="max_workerz"):
        validate_config(prepare_config(broken))
