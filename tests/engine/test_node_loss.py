"""A node that leaves during a run: jobs on it end ERROR with a whole reason, jobs no alive node can
run end after a grace period (GML_UNSCHEDULABLE_GRACE_S) instead of waiting forever, Ray's raylet
dumps stay out of the run's output, and a job run again shows its attempt and earlier node.

The cluster tests start `ray start` nodes of their own (a head, and 1-2 workers of 1-2 CPUs) and
kill one worker's raylet by its pid; the others need no cluster.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from helpers import write_files
from helpers.cluster import BIN, Node, env, free_port, gml, wait_nodes

from gml_ray.store import Store

pytestmark = pytest.mark.xdist_group("cluster")

TRAIN = """
import os, sys, time
from gml_ray import SummaryWriter
x = float(sys.argv[1]); steps = int(sys.argv[2])
with open(os.environ["GML_JOB_DIR"] + "/pid", "w") as f:
    f.write(str(os.getpid()))
w = SummaryWriter()
for e in range(steps):
    w.add_scalar("acc", x * (e + 1), e)
    time.sleep(0.5)
"""


def config(resources: str, xs: str, steps: int, parallel: int, extra: str = "") -> str:
    return f"""
task:
  template: "python train.py {{x}} {steps}"
  resources: {resources}
{extra}
  search_args:
    - {{type: Categorical, name: x, data: {xs}}}
searcher: {{type: GridSearcher, reward_attribute: acc}}
scheduler: {{parallel_size: {parallel}}}
"""


# ---- a cluster of our own ------------------------------------------------------------------------

def raylet_pid(node: Node) -> int:
    """The pid of ``node``'s raylet (a process of its `ray start` session)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != node.proc.pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if os.path.basename(f.read().split(b"\0")[0]) == b"raylet":
                    return int(entry)
        except (OSError, ProcessLookupError):
            continue
    raise AssertionError("no raylet found for the node")


class Cluster:
    """The module's head and the workers a test adds; stop() ends the workers."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.nodes: list[Node] = []

    def add(self, num_cpus: int, resources: str) -> tuple[Node, str]:
        """A worker node (started after the one before is up: two starting at once may take the
        same port); returns it and its node-id prefix."""
        before = {n["id"] for n in wait_nodes(self.address, 1 + len(self.nodes))}
        node = Node(f"--address={self.address}", f"--num-cpus={num_cpus}", f"--resources={resources}",
                    f"--dashboard-agent-listen-port={free_port()}")
        self.nodes.append(node)
        deadline = time.time() + 60
        while time.time() < deadline:  # a node an earlier test killed may still count as alive
            new = [n["id"] for n in wait_nodes(self.address, 2) if n["id"] not in before]
            if new:
                return node, new[0][:8]
            time.sleep(1)
        raise AssertionError("the worker node did not join")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


@pytest.fixture(scope="module")
def head():
    """A head node (1 CPU, no custom resource) shared by the module's cluster tests."""
    port = free_port()
    # Its own temp dir: `ray start --head` writes the machine's "current cluster" there, which
    # `ray job submit` (and address="auto") elsewhere on this machine would otherwise pick up.
    temp_dir = tempfile.mkdtemp(prefix="gmlnl", dir="/tmp")
    node = Node("--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                f"--temp-dir={temp_dir}", f"--dashboard-agent-listen-port={free_port()}")
    try:
        wait_nodes(f"127.0.0.1:{port}", 1)
        yield f"127.0.0.1:{port}"
    finally:
        node.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def cluster(head):
    c = Cluster(head)
    try:
        yield c
    finally:
        c.stop()


def start_run(tmp_path, address: str, task: str, grace: float | None = None) -> subprocess.Popen:
    run_env = env()
    if grace is not None:  # set for the run only: gml-ray passes it on to the cluster's workers
        run_env["GML_UNSCHEDULABLE_GRACE_S"] = str(grace)
    return subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", task,
                             "--workdir", "wd", "--address", address], cwd=tmp_path, env=run_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def jobs_of(tmp_path, task: str) -> list[dict]:
    wd = str(tmp_path / "wd")
    if not os.path.exists(os.path.join(wd, "gml.db")):
        return []
    store = Store(wd, create=False)
    return store.jobs(task) if store.get_task(task) else []


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"timed out: {proc.communicate()}")


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(f"the run did not end within {timeout:g}s of the node loss:\n{out[-3000:]}\n{err[-3000:]}") from None


# ---- the cluster tests ---------------------------------------------------------------------------

@pytest.mark.cluster
def test_jobs_no_alive_node_can_run_end_after_the_grace(cluster, tmp_path):
    """The only node offering `only_here` dies while 2 jobs run on it and 2 wait: the running ones
    are ERROR with a whole reason, the waiting ones end after the grace with a line naming the
    resource, the run says so once and exits 1, without Ray's raylet dumps."""
    worker, worker_id = cluster.add(2, '{"only_here": 2}')
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": config(
        "{num_cpus: 1, only_here: 1}", "[1, 2, 3, 4]", steps=200, parallel=4)})
    proc = start_run(tmp_path, cluster.address, "gone", grace=4)

    def two_run_two_wait():
        jobs = jobs_of(tmp_path, "gone")
        statuses = [j["status"] for j in jobs]
        running = [j for j in jobs if j["status"] == "RUNNING" and j["reward"] is not None]
        return jobs if len(running) == 2 and statuses.count("PENDING") == 2 else None

    wait_for(two_run_two_wait, proc)
    lost = time.time()
    os.kill(raylet_pid(worker), signal.SIGKILL)
    out, err = finish(proc, 90)
    took = time.time() - lost

    assert proc.returncode == 1, (out[-2000:], err[-2000:])
    line = "no alive node offers {'only_here': 1}"
    shown_live = out + err  # the warning comes with the live progress (stdout), the error on stderr
    assert shown_live.count(f"warning: {line} (the node ") == 1, shown_live  # told once
    assert f"{worker_id} left): jobs wait 4 s for one to join" in shown_live
    assert "error: " in err and line in err.split("error: ", 1)[1] and "none joined within 4 s" in err
    assert took < 4 + 40, took
    # Ray's raylet state dumps ("Last 20 lines of the Raylet logs") are not in the run's output
    assert "Raylet is terminated" not in out + err and "marked dead" not in out + err
    assert len(out) + len(err) < 6000, len(out) + len(err)

    store = Store(str(tmp_path / "wd"), create=False)
    jobs = store.jobs("gone")
    assert [j["status"] for j in jobs] == ["ERROR"] * 4
    died = [j for j in jobs if j["started"] is not None]
    waited = [j for j in jobs if j["started"] is None]
    assert len(died) == 2 and len(waited) == 2
    for j in died:  # a whole, short reason, naming the node
        assert j["message"] == f"the node running it died (NodeDiedError; node {j['node']})", j["message"]
        assert j["node"].endswith(worker_id)
    for j in waited:
        assert line in j["message"] and "none joined within 4 s" in j["message"]
    task = store.get_task("gone")
    assert task["status"] == "ERROR" and line in task["message"]
    # an ERROR job is never the best one, whatever reward it reported before its node died
    shown = gml("ctl", "show", "--task", "gone", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0 and not re.search(r"job_\d+ \*", shown.stdout), shown.stdout


@pytest.mark.cluster
# ---- without a cluster ---------------------------------------------------------------------------

def fake_nodes(monkeypatch, nodes: list[dict]):
    """ray.nodes() answers ``nodes`` (a list the test changes); returns a call counter."""
    import ray

    calls = []

    def answer():
        calls.append(1)
        return [dict(n) for n in nodes]

    monkeypatch.setattr(ray, "nodes", answer)
    return calls


def node(node_id: str, alive: bool = True, **resources: float) -> dict:
    return {"NodeID": node_id * 56, "Alive": alive, "NodeManagerAddress": "10.0.0." + node_id,
            "Resources": {"CPU": 1.0, **resources}}


class FakeJob:
    def __init__(self, submitted: float, started: float | None = None) -> None:
        self.submitted, self.run_started, self.outcome = submitted, started, None


def test_node_watch_warns_once_then_ends_after_the_grace(monkeypatch):
    from gml_ray.engine.runtime import NODE_CHECK_S, NodeWatch

    monkeypatch.delenv("GML_SKIP_RESOURCE_CHECK", raising=False)
    nodes = [node("1"), node("2", only_here=2)]
    calls = fake_nodes(monkeypatch, nodes)
    watch = NodeWatch({"num_cpus": 1, "only_here": 1}, grace_s=60)
    t = 1000.0
    jobs = [FakeJob(t)]
    assert watch.tick(t, jobs) is None and len(calls) == 1 and watch.known  # learns the nodes
    for i in range(1, 200):  # jobs that start: no more looks
        assert watch.tick(t + i * 0.5, [FakeJob(t + i * 0.5 - 1, started=t + i * 0.5)]) is None
    assert len(calls) == 1
    nodes[1]["Alive"] = False  # the only node offering it leaves; a job waits
    t += 100
    waiting = [FakeJob(t - 10)]
    assert watch.tick(t, waiting) is None
    assert len(calls) == 2 and watch.waiting
    assert watch.notice == "no alive node offers {'only_here': 1} (the node 10.0.0.2 22222222 left): jobs wait 60 s for one to join"
    for dt in (1, 2, 30):  # looks at most every NODE_CHECK_S while it waits; the notice stays
        watch.tick(t + dt, waiting)
    assert len(calls) <= 2 + 30 / NODE_CHECK_S + 1 and watch.notice.startswith("no alive node")
    end = watch.tick(t + 60, waiting)
    assert end == ("no alive node offers {'only_here': 1} (the node 10.0.0.2 22222222 left; none joined "
                   "within 60 s): the task's jobs cannot run")
    assert watch.tick(t + 61, waiting) is None  # said once


def test_node_watch_goes_on_when_a_node_joins_within_the_grace(monkeypatch):
    from gml_ray.engine.runtime import NodeWatch

    monkeypatch.delenv("GML_SKIP_RESOURCE_CHECK", raising=False)
    nodes = [node("1"), node("2", only_here=1)]
    fake_nodes(monkeypatch, nodes)
    watch = NodeWatch({"num_cpus": 1, "only_here": 1}, grace_s=60)
    watch.tick(0.0, [])
    # a job's NodeDiedError names the node: it counts as gone before the GCS says so
    watch.job_lost({"lost": True, "lost_node": ("2" * 56, "10.0.0.2 22222222")})
    assert watch.tick(0.5, []) is None and watch.waiting
    nodes.append(node("3", only_here=1))  # an autoscaler's node joins
    assert watch.tick(10.0, [FakeJob(0.0)]) is None and not watch.waiting and watch.notice is None
    assert watch.tick(100.0, [FakeJob(0.0)]) is None and watch.ended is None


def test_node_watch_names_what_no_node_offers_together_and_honours_the_skip(monkeypatch):
    from gml_ray.engine.runtime import NodeWatch

    nodes = [node("1", GPU=1), node("2", only_here=1)]
    fake_nodes(monkeypatch, nodes)
    monkeypatch.setenv("GML_SKIP_RESOURCE_CHECK", "1")
    assert NodeWatch({"num_gpus": 1, "only_here": 1}).tick(0.0, []) is None
    monkeypatch.delenv("GML_SKIP_RESOURCE_CHECK")
    monkeypatch.setenv("GML_UNSCHEDULABLE_GRACE_S", "0")
    watch = NodeWatch({"num_gpus": 1, "only_here": 1})
    assert watch.grace_s == 0
    assert watch.tick(0.0, []) == ("no alive node offers {'num_gpus': 1, 'only_here': 1} on one node "
                                   "(none joined within 0 s): the task's jobs cannot run")


def test_a_node_died_error_is_stored_as_a_whole_short_reason():
    import ray

    from gml_ray.engine.job import error_reason, first_sentence, node_death

    node_id = "2a686e5d918fe4d4586ec3ddaa34637579e3f5064b927dd64dd8570a"
    text = (f"Task failed because the node it was running on is dead or unavailable. Node IP: 192.0.2.2, "
            f"node ID: {node_id}. This can happen if the node was preempted, had a hardware failure, or its "
            f"raylet crashed unexpectedly. To see node death information, use `ray list nodes --filter "
            f"node_id={node_id}`, check the Ray dashboard cluster page, search the node ID in the GCS logs, "
            f"or use `ray logs raylet.out -ip 192.0.2.2`.")
    exc = ray.exceptions.NodeDiedError(text)
    assert error_reason(exc) == "the node running it died (NodeDiedError; node 192.0.2.2 2a686e5d)"
    assert node_death(exc) == (node_id, "192.0.2.2 2a686e5d")
    assert error_reason(ray.exceptions.WorkerCrashedError()) == \
        "WorkerCrashedError: The worker died unexpectedly while executing this task."
    assert node_death(ray.exceptions.WorkerCrashedError()) is None  # a crash is no node loss
    assert first_sentence("x " * 400).endswith(" ...") and len(first_sentence("x " * 400)) <= 305


def test_the_job_table_shows_the_attempt_and_the_earlier_node_and_stars_no_error_job():
    from gml_ray.cli import views
    from rich.console import Console

    from gml_ray.engine.job import CommandJob, earlier_nodes
    from gml_ray.optimize import best_result

    job = CommandJob("true", "job_0001", job_id=1, attempt=2)
    job.follow([{"node": "192.0.2.2 2a686e5d", "attempt": 1}])
    assert job.node_text(None) == "(attempt 1: 192.0.2.2 2a686e5d)"
    stored = job.node_text("192.0.2.3 5e6f7a8b")
    assert stored == "192.0.2.3 5e6f7a8b (attempt 1: 192.0.2.2 2a686e5d)"
    assert earlier_nodes(stored, 2) == "attempt 2: 192.0.2.3 5e6f7a8b; attempt 1: 192.0.2.2 2a686e5d"

    task = {"name": "t", "status": "FINISHED", "optimize_mode": "maximize", "reward_attribute": "acc",
            "scalar_columns": [], "compare": None}
    jobs = [{"job_id": 1, "name": "job_0001", "status": "FINISHED", "arg_dict": {"x": 1}, "reward": 4.0,
             "started": 1.0, "ended": 2.0, "node": stored, "message": None, "attempt": 2},
            {"job_id": 2, "name": "job_0002", "status": "ERROR", "arg_dict": {"x": 2}, "reward": 6.0,
             "started": 1.0, "ended": 2.0, "node": "192.0.2.2 2a686e5d",
             "message": "the node running it died (NodeDiedError; node 192.0.2.2 2a686e5d)", "attempt": 1}]
    assert views.best_job_name(task, jobs) == "job_0001"
    top = best_result(jobs, "maximize")  # the scheduler's best job: the same rule
    assert (top["reward"], top["name"]) == (4.0, "job_0001")
    console = Console(width=200, record=True)
    views.jobs_table(task, jobs, {}).render(console)
    text = console.export_text()
    assert "job_0001 *" in text and "job_0002 *" not in text
    assert "attempt" in text and "2 (1: 192.0.2.2 2a686e5d)" in text
    row = next(line for line in text.splitlines() if "job_0001" in line)
    assert "192.0.2.3 5e6f7a8b" in row


def test_ray_error_messages_stay_out_of_the_terminal(capsys):
    import ray._private.worker as worker

    from gml_ray.engine.runtime import quiet_ray_messages

    quiet_ray_messages()
    quiet_ray_messages()  # once is enough
    worker.print_to_stdstream({"lines": ["Raylet is terminated. ... Last 20 lines of the Raylet logs:"],
                               "pid": "raylet", "is_err": False}, ignore_prefix=False)
    captured = capsys.readouterr()
    assert "Raylet is terminated" not in captured.out + captured.err
