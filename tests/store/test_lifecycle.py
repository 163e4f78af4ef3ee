"""Task lifecycle: rm, export/import (and refusing unsafe archives), kill -9 then resume."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile

import pytest
import yaml
from helpers import write_files
from helpers.cli import BIN, gml, pid_gone, running_pids, wait_for

from gml_ray.store.schema import run_time
from gml_ray.store.store import Store

TRAIN = """
import os, sys, time
from gml_ray import SummaryWriter
x = float(sys.argv[1])
# the first attempt of x=0.1 and x=0.2 runs "forever"; everything else reports 3 epochs
long = os.environ["GML_JOB_ATTEMPT"] == "1" and x in (0.1, 0.2)
with open(os.environ["GML_JOB_DIR"] + "/pid", "w") as f:
    f.write(str(os.getpid()))
w = SummaryWriter()
for e in range(10000 if long else 3):
    w.add_scalar("acc", x * (e + 1), e)
    time.sleep(0.1 if long else 0.0)
"""

CONFIG = """
task:
  template: "python train.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.2, 0.3, 0.4, 0.5]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
"""


def run(tmp_path, *args, timeout=180):
    result = gml("run", "search_config.yaml", "--workdir", "wd", *args, cwd=tmp_path, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def finished_task(tmp_path, ray_head):
    """A small finished task 'done' in tmp_path/wd (3 jobs), run on the session's Ray head."""
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": CONFIG.replace(
        "0.1, 0.2, 0.3, 0.4, 0.5", "0.3, 0.4, 0.5")})
    run(tmp_path, "--task", "done", "--address", ray_head)
    return tmp_path


def test_kill_9_then_resume_runs_every_config_once_and_loses_no_scalar(tmp_path, ray_head):
    write_files(tmp_path, {"train.py": TRAIN, "search_config.yaml": CONFIG})
    proc = subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "k9",
                             "--workdir", "wd", "--num-cpus", "2"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pids = running_pids(tmp_path, "k9")
        store = Store(str(tmp_path / "wd"), create=False)
        # let the long jobs report a few epochs, then kill the driver outright
        wait_for(lambda: len(store.scalars("k9")) >= 6)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: all(pid_gone(p) for p in pids), timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # Ray's node agents outlive a SIGKILLed driver
        except ProcessLookupError:
            pass
    shown = gml("ctl", "show", "--task", "k9", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0
    assert store.get_task("k9")["status"] == "ERROR"
    assert [j["status"] for j in store.jobs("k9")] == ["ERROR", "ERROR"]
    before = {j: len(store.scalars("k9", [j])) for j in (1, 2)}
    assert all(n > 0 for n in before.values())
    first_run_s = run_time(store.get_task("k9"))  # to its last heartbeat
    assert first_run_s > 1.0

    run(tmp_path, "--task", "k9", "--resume", "--address", ray_head)  # the SIGKILLed run had its own Ray
    task = store.get_task("k9")
    # the killed attempt's time counts (time_limits, ctl show, the report), and the second's too
    assert task["elapsed_before"] == pytest.approx(first_run_s)
    assert run_time(task) > first_run_s + 0.5
    jobs = store.jobs("k9")
    assert [j["arg_dict"]["x"] for j in jobs] == [0.1, 0.2, 0.3, 0.4, 0.5]  # each config once
    assert [j["status"] for j in jobs] == ["FINISHED"] * 5
    assert [j["attempt"] for j in jobs] == [2, 2, 1, 1, 1]
    for j in jobs:
        rows = store.scalars("k9", [j["job_id"]])
        last = [r for r in rows if r["attempt"] == j["attempt"]]
        assert [r["step"] for r in last] == [0, 1, 2]  # every scalar of the final attempt
        if j["job_id"] in before:  # and the interrupted attempt's are all still there
            assert len([r for r in rows if r["attempt"] == 1]) == before[j["job_id"]]
        assert j["reward"] == pytest.approx(3 * j["arg_dict"]["x"])
    assert store.get_task("k9")["status"] == "FINISHED"


def test_rm_writes_the_summary_then_deletes_files_and_rows(finished_task):
    tmp_path = finished_task
    task_dir = tmp_path / "wd" / "tasks" / "done"
    assert task_dir.is_dir()
    result = gml("ctl", "rm", "--task", "done", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (summary,) = yaml.safe_load((tmp_path / "summary.yaml").read_text())  # a list, one per rm
    assert summary["task"]["name"] == "done" and summary["task"]["status"] == "FINISHED"
    assert [(j["args"]["x"], j["status"], j["reward"]) for j in summary["jobs"]] == [
        (0.3, "FINISHED", pytest.approx(0.9)), (0.4, "FINISHED", pytest.approx(1.2)),
        (0.5, "FINISHED", pytest.approx(1.5))]
    assert summary["task"]["config"]["searcher"]["type"] == "GridSearcher"
    assert not task_dir.exists()
    store = Store(str(tmp_path / "wd"), create=False)
    assert store.get_task("done") is None and store.jobs("done") == [] and store.scalars("done") == []


def test_export_import_round_trip_shows_the_same_task(finished_task):
    tmp_path = finished_task
    show = lambda *extra: gml("ctl", "show", "--task", "done", "--workdir", "wd", *extra, cwd=tmp_path).stdout
    jobs_before, scalars_before = show(), show("--scalar")
    exported = gml("ctl", "export", "--task", "done", "--workdir", "wd", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    (archive,) = (tmp_path / "archive").glob("done.*.tar.gz")

    refused = gml("ctl", "import", "--tar-path", str(archive), "--workdir", "wd", cwd=tmp_path)
    assert refused.returncode == 2 and "already exists" in refused.stderr

    assert gml("ctl", "rm", "--task", "done", "--workdir", "wd", cwd=tmp_path).returncode == 0
    imported = gml("ctl", "import", "--tar-path", str(archive), "--workdir", "wd", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert show() == jobs_before and show("--scalar") == scalars_before
    # the job files came back, at the new task dir
    job = Store(str(tmp_path / "wd"), create=False).jobs("done")[0]
    assert open(os.path.join(job["job_dir"], "pid")).read().strip().isdigit()

    forced = gml("ctl", "import", "--tar-path", str(archive), "--force", "--workdir", "wd", cwd=tmp_path)
    assert forced.returncode == 0 and show() == jobs_before
    renamed = gml("ctl", "import", "--tar-path", str(archive), "--task", "copy", "--workdir", "wd2",
                  cwd=tmp_path)
    assert renamed.returncode == 0
    assert "task copy (FINISHED)" in gml("ctl", "show", "--task", "copy", "--workdir", "wd2", cwd=tmp_path).stdout


def _archive(path, members):
    """Write a tar.gz with a valid export's manifest and rows plus the given (TarInfo, bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("gml-task.json", {"format": "gml-ray-task", "task": "evil"}),
                           ("rows.json", {"tasks": [{"name": "evil", "status": "FINISHED"}]})):
            raw = json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _member(name, kind=tarfile.REGTYPE, data=b"x", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("member, message", [
    (_member("/etc/evil"), "absolute path"),
    (_member("files/../../evil"), "(..)"),
    (_member("files/link", tarfile.SYMTYPE, link="/etc/passwd"), "is a link"),
    (_member("files/hard", tarfile.LNKTYPE, link="files/x"), "is a link"),
    (_member("files/dev", tarfile.CHRTYPE), "device or special file"),
    (_member("files/fifo", tarfile.FIFOTYPE), "device or special file"),
    (_member("evil.sh"), "not part of a gml-ray task export"),
], ids=["absolute", "dotdot", "symlink", "hardlink", "device", "fifo", "stray-member"])
def test_unsafe_archives_are_refused_and_nothing_is_written(tmp_path, member, message):
    _archive(tmp_path / "bad.tar.gz", [member])
    result = gml("ctl", "import", "--tar-path", "bad.tar.gz", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing archive" in lines[0] and message in lines[0]
    assert Store(str(tmp_path / "wd")).get_task("evil") is None
    assert not (tmp_path / "wd" / "tasks").exists()
    assert not (tmp_path / "etc").exists() and not (tmp_path / "evil").exists()


def test_an_archive_that_is_not_a_task_export_is_refused(tmp_path):
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        info, data = _member("files/readme.txt")
        tar.addfile(info, io.BytesIO(data))
    result = gml("ctl", "import", "--tar-path", "other.tar.gz", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 2 and "not a gml-ray task export" in result.stderr
