"""Fault injection (issue 20): crafted and damaged archives, damaged and read-only stores, poison
scalars, snapshot links. Real `gml-ray` processes on real files; each test checks the one-line
message, the exit code, and that what was stored before the fault is still there."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile

import pytest
from helpers import owned_processes
from helpers.cli import BIN, gml

from gml_ray.store import Store


def one_line(result: subprocess.CompletedProcess) -> str:
    """The command's stderr, which must be exactly one line (no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def make_task(work_dir, name: str = "t", jobs: int = 2) -> Store:
    """A finished task written through the store's API, with job dirs and logs on disk."""
    wd = os.path.abspath(str(work_dir))
    store = Store(wd)
    task_dir = os.path.join(wd, "tasks", name)
    store.create_task(name, status="FINISHED", task_dir=task_dir, code_dir=os.path.join(task_dir, "code"),
                      source_dir="/nonexistent/src", config_path="/nonexistent/src/c.yaml",
                      reward_attribute="acc", optimize_mode="maximize", ended=1.0, started=0.0)
    for i in range(1, jobs + 1):
        job_dir = os.path.join(task_dir, "jobs", f"job_{i:04d}")
        os.makedirs(job_dir)
        with open(os.path.join(job_dir, "stdout.log"), "w") as f:
            f.write(f"job {i}\n")
        store.add_job(name, i, f"job_{i:04d}", {"x": i}, {"x": i}, "python t.py", job_dir,
                      status="FINISHED")
        store.update_job(name, i, reward=0.1 * i)
        store.add_scalars(name, [(i, "acc", s, 0.1 * s, 0, 1) for s in range(3)])
    return store


def snapshot(store: Store, task: str) -> tuple:
    return [(j["name"], j["status"], j["reward"]) for j in store.jobs(task)], store.scalars(task)


def export(tmp_path, task: str = "t") -> str:
    path = str(tmp_path / f"{task}.tar.gz")
    result = gml("ctl", "export", "--task", task, "--workdir", "wd", "--tar-path", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return path


def retar(archive: str, out: str, edit) -> None:
    """Unpack ``archive``, let ``edit(rows)`` change rows.json, and tar it again as a user would
    (`tar czf out -C dir .`)."""
    unpacked = out + ".d"
    os.makedirs(unpacked)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    rows_path = os.path.join(unpacked, "rows.json")
    with open(rows_path) as f:
        rows = json.load(f)
    edit(rows)
    with open(rows_path, "w") as f:
        json.dump(rows, f)
    subprocess.run(["tar", "czf", out, "-C", unpacked, "."], check=True)


# ---- crafted archives -----------------------------------------------------------------------------

def test_an_archive_whose_rows_name_a_dir_outside_the_work_dir_is_refused(tmp_path):
    """The issue's attack: rows.json's task_dir edited to a directory outside the work dir."""
    store = make_task(tmp_path / "wd")
    before = snapshot(store, "t")
    archive = export(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")

    def point_outside(rows):
        rows["tasks"][0]["task_dir"] = str(victim)
    retar(archive, str(tmp_path / "evil.tar.gz"), point_outside)
    result = gml("ctl", "import", "--tar-path", "evil.tar.gz", "--task", "evil", "--workdir", "wd",
                 cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result)
    assert "refusing archive: rows.json: tasks[0].task_dir" in line and str(victim) in line
    assert (victim / "precious").read_text() == "keep me"
    assert store.get_task("evil") is None and not (tmp_path / "wd" / "tasks" / "evil").exists()
    assert not (tmp_path / "wd" / "tasks" / "evil.import").exists()
    assert snapshot(store, "t") == before

    # a job dir outside the task is refused the same way
    def job_outside(rows):
        rows["jobs"][1]["job_dir"] = str(victim)
    retar(archive, str(tmp_path / "evil2.tar.gz"), job_outside)
    result = gml("ctl", "import", "--tar-path", "evil2.tar.gz", "--task", "evil", "--workdir", "wd",
                 cwd=tmp_path)
    assert result.returncode == 2 and "jobs[1].job_dir" in one_line(result)

    # an untouched re-tarred export (./ names) still imports, with its paths in the new work dir
    retar(archive, str(tmp_path / "same.tar.gz"), lambda rows: None)
    result = gml("ctl", "import", "--tar-path", "same.tar.gz", "--task", "copy", "--workdir", "wd",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    copy = store.get_task("copy")
    assert copy["task_dir"] == str(tmp_path / "wd" / "tasks" / "copy")
    assert all(j["job_dir"].startswith(copy["task_dir"] + os.sep) for j in store.jobs("copy"))


def test_rm_deletes_only_inside_the_work_dir_whatever_the_row_says(tmp_path):
    store = make_task(tmp_path / "wd")
    make_task(tmp_path / "wd", "other")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    store.update_task("t", task_dir=str(victim))  # an edited (or older, crafted) row
    result = gml("ctl", "rm", "--task", "t", "--workdir", "wd", "--summary", "s.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (victim / "precious").read_text() == "keep me"
    assert not (tmp_path / "wd" / "tasks" / "t").exists()  # the task's real directory is gone
    assert store.get_task("t") is None
    assert len(store.scalars("other")) == 6 and (tmp_path / "wd" / "tasks" / "other").is_dir()


def _bomb(path, size: int, data: bytes | None = None) -> None:
    """A gzip'd export whose one file member is ``size`` bytes: zeros when ``data`` is None
    (compresses ~1000:1), or a header that only claims the size (``data`` is what follows)."""
    with gzip.open(path, "wb", compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as tar:
            for name, doc in (("gml-task.json", {"format": "gml-ray-task", "task": "bomb"}),
                              ("rows.json", {"tasks": [{"name": "bomb", "status": "FINISHED"}]})):
                raw = json.dumps(doc).encode()
                info = tarfile.TarInfo(name)
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
            info = tarfile.TarInfo("files/zeros")
            info.size = size
            if data is None:
                tar.addfile(info, _Zeros(size))
            else:
                gz.write(info.tobuf(tarfile.PAX_FORMAT))
                gz.write(data)
                return


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def test_a_gzip_bomb_is_refused_before_anything_is_written(tmp_path):
    store = make_task(tmp_path / "wd")
    before = snapshot(store, "t")
    _bomb(tmp_path / "bomb.tar.gz", 64 << 20)  # 64 MiB unpacked from ~64 KiB
    assert os.path.getsize(tmp_path / "bomb.tar.gz") < 1 << 20
    result = gml("ctl", "import", "--tar-path", "bomb.tar.gz", "--max-bytes", "16M", "--workdir", "wd",
                 cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result)
    assert "more than 16 MiB unpacked" in line and "--max-bytes" in line
    assert store.get_task("bomb") is None
    assert sorted(os.listdir(tmp_path / "wd" / "tasks")) == ["t"]
    # the default cap (8 GiB) is checked from the member's header, before its data is read
    _bomb(tmp_path / "claims.tar.gz", 9 << 30, data=bytes(1024))
    result = gml("ctl", "import", "--tar-path", "claims.tar.gz", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 2 and "more than 8 GiB unpacked" in one_line(result)
    # raising the cap lets the real one in
    result = gml("ctl", "import", "--tar-path", "bomb.tar.gz", "--max-bytes", "1G", "--workdir", "wd",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert os.path.getsize(tmp_path / "wd" / "tasks" / "bomb" / "zeros") == 64 << 20
    assert snapshot(store, "t") == before


def test_too_many_members_are_refused(tmp_path):
    with tarfile.open(tmp_path / "many.tar.gz", "w:gz") as tar:
        for i in range(50):
            info = tarfile.TarInfo(f"files/f{i}")
            tar.addfile(info, io.BytesIO(b""))
    result = gml("ctl", "import", "--tar-path", "many.tar.gz", "--max-members", "20", "--workdir", "wd",
                 cwd=tmp_path)
    assert result.returncode == 2 and "more than 20 members" in one_line(result)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> str:
    """An export (by `ctl export`) of a task made by make_task, shared by the damage cases."""
    tmp_path = tmp_path_factory.mktemp("exported")
    make_task(tmp_path / "wd")
    return export(tmp_path)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated or damaged archive"),
    ("rows-not-json", "rows.json is not valid JSON"),
    ("rows-wrong-shape", "'jobs' must be a list of rows"),
    ("rows-bad-values", "its rows cannot be stored"),
    ("rows-duplicate-job", "UNIQUE constraint failed: jobs.task, jobs.job_id"),
    ("file-under-file", "clashes with member 'files/jobs/job_0001/stdout.log'"),
    ("dir-over-file", "is both a file and a directory"),
], ids=["truncated", "rows-not-json", "rows-wrong-shape", "rows-bad-values", "rows-duplicate-job",
        "file-under-file", "dir-over-file"])
def test_a_damaged_archive_is_one_line_and_nothing_is_imported(tmp_path, exported, damage, message):
    store = make_task(tmp_path / "wd")
    before = snapshot(store, "t")
    archive = exported
    bad = str(tmp_path / "bad.tar.gz")
    if damage == "truncate":
        with open(archive, "rb") as f:
            data = f.read()
        with open(bad, "wb") as f:
            f.write(data[: len(data) // 2])
    elif damage == "rows-not-json":
        unpacked = tmp_path / "u"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        (unpacked / "rows.json").write_text('{"tasks": [')
        subprocess.run(["tar", "czf", bad, "-C", str(unpacked), "."], check=True)
    elif damage == "rows-wrong-shape":
        retar(archive, bad, lambda rows: rows.update(jobs={"job_0001": 1}))
    elif damage == "rows-bad-values":
        retar(archive, bad, lambda rows: rows["scalars"][0].update(value={"a": 1}))
    elif damage == "rows-duplicate-job":
        retar(archive, bad, lambda rows: rows["jobs"][1].update(job_id=1))
    else:  # files/jobs/job_0001/stdout.log is a file; add a file under it, or a dir of its name
        shutil.copy(archive, tmp_path / "plain.tar.gz")
        subprocess.run(["gzip", "-d", str(tmp_path / "plain.tar.gz")], check=True)
        with tarfile.open(tmp_path / "plain.tar", "a") as tar:
            if damage == "file-under-file":
                info = tarfile.TarInfo("files/jobs/job_0001/stdout.log/x")
            else:
                info = tarfile.TarInfo("files/jobs/job_0001/stdout.log")
                info.type = tarfile.DIRTYPE
            tar.addfile(info, io.BytesIO(b""))
        subprocess.run(["gzip", str(tmp_path / "plain.tar")], check=True)
        os.replace(tmp_path / "plain.tar.gz", bad)
    result = gml("ctl", "import", "--tar-path", bad, "--task", "imp", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 2
    line = one_line(result)
    assert message in line and ("bad.tar.gz" in line or "refusing archive" in line)
    assert store.get_task("imp") is None
    assert sorted(os.listdir(tmp_path / "wd" / "tasks")) == ["t"]  # no staging dir left behind
    assert snapshot(store, "t") == before


# ---- damaged and read-only stores ---------------------------------------------------------------

def _checkpoint(db: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_store_is_one_line_naming_the_file(tmp_path, damage):
    store = make_task(tmp_path / "wd")
    store.close()
    db = str(tmp_path / "wd" / "gml.db")
    _checkpoint(db)
    if damage == "truncated":
        os.truncate(db, 4096)
        sqlite_says = "database disk image is malformed"
    else:
        with open(db, "wb") as f:
            f.write(os.urandom(8192))
        sqlite_says = "file is not a database"
    size = os.path.getsize(db)
    (tmp_path / "c.yaml").write_text(
        'task:\n  template: "true {x}"\n  search_args:\n    - {type: Categorical, name: x, data: [1]}\n')
    for args in (["ctl", "show"], ["ctl", "show", "--task", "t"],
                 ["run", "c.yaml", "--task", "new", "--num-cpus", "1"]):
        result = gml(*args, "--workdir", "wd", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        line = one_line(result)
        assert line.startswith(f"error: {db}: {sqlite_says}")
        assert "ctl export" in line and "--workdir" in line
    assert os.path.getsize(db) == size  # left as it was, for whoever repairs it


def _read_only(work_dir: str, *args: str, cwd) -> subprocess.CompletedProcess:
    """Run gml-ray with ``work_dir`` bind-mounted read-only in a private mount namespace."""
    script = (f'mount --bind "{work_dir}" "{work_dir}" && mount -o remount,bind,ro "{work_dir}" && '
              f'exec "{os.path.join(BIN, "gml-ray")}" "$@"')
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def _no_private_mounts(tmp_path) -> str:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        return "no unshare(1)"
    result = subprocess.run(["unshare", "-rm", "sh", "-c", f'mount --bind "{probe}" "{probe}" && '
                             f'mount -o remount,bind,ro "{probe}" && ! touch "{probe}/x" 2>/dev/null'],
                            capture_output=True, text=True)
    return "" if result.returncode == 0 else f"no read-only bind mount here: {result.stderr.strip()}"


def test_ctl_show_reads_a_read_only_work_dir(tmp_path):
    why = _no_private_mounts(tmp_path)
    if why:
        pytest.skip(why)
    store = make_task(tmp_path / "wd")
    wd = str(tmp_path / "wd")
    # as a killed run leaves it: the last changes only in gml.db-wal, with its -shm beside it
    conn = sqlite3.connect(os.path.join(wd, "gml.db"))
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE jobs SET reward = 0.75 WHERE job_id = 2")
    conn.commit()
    assert os.path.getsize(os.path.join(wd, "gml.db-wal")) > 0
    shown = _read_only(wd, "ctl", "show", "--task", "t", "--workdir", wd, cwd=tmp_path)
    conn.close()
    assert shown.returncode == 0, shown.stderr
    assert "0.75" in shown.stdout and "job_0002" in shown.stdout
    store.close()
    scal = _read_only(wd, "ctl", "show", "--task", "t", "--scalar", "--workdir", wd, cwd=tmp_path)
    assert scal.returncode == 0 and "0 0.1 0.2" in scal.stdout
    listed = _read_only(wd, "ctl", "show", "--workdir", wd, cwd=tmp_path)
    assert listed.returncode == 0 and "FINISHED" in listed.stdout
    report = _read_only(wd, "ctl", "report", "--task", "t", "--out", str(tmp_path / "t.html"),
                        "--workdir", wd, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    # a job's log tail, read from the work dir (the page carries the tails gzip-packed)
    import base64
    import gzip
    import re
    packed = re.search(r'id="gml-logs">([A-Za-z0-9+/=]*)<', (tmp_path / "t.html").read_text()).group(1)
    assert "job 2" in gzip.decompress(base64.b64decode(packed)).decode()
    # a command that must write says so in one line (exit 1) and names the file
    stop = _read_only(wd, "ctl", "rm", "--task", "t", "--workdir", wd, "--summary",
                      str(tmp_path / "s.yaml"), cwd=tmp_path)
    assert stop.returncode == 1
    line = one_line(stop)
    assert line.startswith(f"error: {wd}/gml.db:") and "cannot be written" in line
    assert len(Store(wd).scalars("t")) == 6


# ---- poison scalars, snapshot links, a work dir with spaces --------------------------------------

POISON_TRAIN = """
import json, os
from gml_ray import SummaryWriter
print(open("data/v.txt").read().strip())  # data -> ../data, a relative link out of the code dir
w = SummaryWriter()
w.add_scalar("acc", 0.5, 0)
w.add_scalar("acc", 10**400, 5)
w.add_scalar("acc", 10**400, 6)
w.add_scalar("acc", 0.7, 10**30)
w.add_scalar("loss", 0.1, 1)
# written without the writer: the scheduler and the store get the raw numbers
line = json.dumps({"t": "raw", "v": 10**400, "s": 10**30, "c": 0}) + "\\n"
os.write(int(os.environ["GML_SCALAR_FD"]), line.encode())
w.add_scalar("acc", 0.6, 3)
"""


def run_cli(tmp_path, config: str, task: str, address: str, workdir: str = "wd") -> subprocess.CompletedProcess:
    return gml("run", config, "--task", task, "--workdir", workdir, "--address", address, cwd=tmp_path,
               timeout=120)


def test_poison_scalars_of_a_command_job_never_end_it(tmp_path, ray_head):
    proj = tmp_path / "proj"
    proj.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v.txt").write_text("forty-two\n")
    (proj / "train.py").write_text(POISON_TRAIN)
    (proj / "c.yaml").write_text('task:\n  template: "python train.py {x}"\n  search_args:\n'
                                 '    - {type: Categorical, name: x, data: [1]}\n'
                                 'searcher: {reward_attribute: acc}\n')
    os.symlink("../data", proj / "data")
    os.symlink("nowhere", proj / "dangling")
    result = run_cli(tmp_path, "proj/c.yaml", "c", ray_head, workdir="work dir")
    assert result.returncode == 0, result.stderr
    wd = tmp_path / "work dir"
    store = Store(str(wd), create=False)
    (job,) = store.jobs("c")
    assert job["status"] == "FINISHED" and store.get_task("c")["status"] == "FINISHED"
    assert job["reward"] == 0.7  # the best finite value; inf is never a reward
    rows = store.scalars("c")
    acc = [(r["step"], r["value"], r["flag"]) for r in rows if r["tag"] == "acc"]
    # every value reported around the poison ones is stored; the huge ones as inf, flagged
    assert acc == [(0, 0.5, 0), (3, 0.6, 0), (5, float("inf"), 2), (6, float("inf"), 2), (7, 0.7, 0)]
    assert [(r["step"], r["value"]) for r in rows if r["tag"] == "loss"] == [(1, 0.1)]
    assert [(r["step"], r["value"], r["flag"]) for r in rows if r["tag"] == "raw"] == [
        (None, float("inf"), 2)]
    job_dir = wd / "tasks" / "c" / "jobs" / "job_0001"
    assert (job_dir / "stdout.log").read_text().strip() == "forty-two"
    warned = (job_dir / "stderr.log").read_text().strip().splitlines()
    assert len(warned) == 2 and all(w.startswith("gml_ray: scalar 'acc':") for w in warned)
    assert "~1e+400 does not fit a float" in warned[0] and "step ~1e+30" in warned[1]
    log = (wd / "tasks" / "c" / "scheduler.log").read_text()
    assert log.count("scalar 'raw': its step ~1e+30 does not fit SQLite") == 1
    # the snapshot: the outside link resolved, the dangling one named; one warning line each
    code = wd / "tasks" / "c" / "code"
    assert os.readlink(code / "data") == str(tmp_path / "data")
    assert f"warning: {proj}/data -> ../data points outside the code dir" in result.stderr
    assert f"warning: {proj}/dangling -> nowhere dangles" in result.stderr
    # the hint at the end quotes the work dir, and works as printed
    hint = [ln for ln in result.stdout.splitlines() if ln.startswith("see: ")][-1]
    assert hint == "see: gml-ray ctl show --task c --workdir 'work dir'"
    shown = subprocess.run(hint[len("see: "):], shell=True, cwd=tmp_path, capture_output=True,
                           text=True, env=dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"]))
    assert shown.returncode == 0 and "job_0001" in shown.stdout


POISON_TRIAL = """
import gml_ray
from gml_ray import reporting

def train(config):
    gml_ray.report(score=0.25)
    gml_ray.report(score=10**400)
    gml_ray.report(10**30, score=0.5)
    reporting.emit([{"t": "raw", "v": 10**400, "s": 10**30, "c": 0}])  # not through report()
    gml_ray.report(score=0.75, loss=1)
"""


def test_poison_scalars_of_a_function_trial_never_end_it(tmp_path, ray_head):
    (tmp_path / "trial.py").write_text(POISON_TRIAL)
    (tmp_path / "f.yaml").write_text('task:\n  function: "trial:train"\n  search_args:\n'
                                     '    - {type: Categorical, name: x, data: [1, 2]}\n'
                                     'searcher: {reward_attribute: score}\n'
                                     'scheduler: {parallel_size: 1}\n')
    result = run_cli(tmp_path, "f.yaml", "f", ray_head)
    assert result.returncode == 0, result.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    assert [j["status"] for j in store.jobs("f")] == ["FINISHED", "FINISHED"]
    assert store.get_task("f")["status"] == "FINISHED"
    for job in store.jobs("f"):
        assert job["reward"] == 0.75
        rows = store.scalars("f", [job["job_id"]])
        assert [(r["step"], r["value"]) for r in rows if r["tag"] == "score"] == [
            (0, 0.25), (1, float("inf")), (2, 0.5), (3, 0.75)]
        assert [(r["step"], r["value"]) for r in rows if r["tag"] == "raw"] == [(None, float("inf"))]
        assert [(r["step"], r["value"]) for r in rows if r["tag"] == "loss"] == [(3, 1.0)]


def test_importing_a_task_leaves_a_task_named_like_its_staging_dir_alone(tmp_path):
    store = make_task(tmp_path / "wd")
    make_task(tmp_path / "wd", "t.import")
    before = snapshot(store, "t.import")
    archive = export(tmp_path)
    result = gml("ctl", "import", "--tar-path", archive, "--force", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "wd" / "tasks" / "t.import" / "jobs" / "job_0001" / "stdout.log").is_file()
    assert snapshot(store, "t.import") == before
    assert sorted(os.listdir(tmp_path / "wd" / "tasks")) == ["t", "t.import"]


def test_a_dead_runs_jobs_end_at_its_last_heartbeat_not_when_ctl_notices(tmp_path):
    """SIGKILL/SIGTERM of the driver: the next `ctl` marks the task and its jobs ERROR; a job's
    duration runs to the run's last heartbeat, not to that later command."""
    import socket
    import time
    store = make_task(tmp_path / "wd", "d", jobs=2)
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    beat = now - 20.0  # the run died 20 s ago
    store.update_task("d", status="RUNNING", heartbeat=beat, host=socket.gethostname(), pid=gone.pid,
                      ended=None)
    store.update_job("d", 1, status="RUNNING", started=beat - 2.5, ended=None)
    store.update_job("d", 2, status="RUNNING", started=beat + 0.3, ended=None)  # after the beat
    result = gml("ctl", "show", "--task", "d", "--workdir", "wd", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = store.jobs("d")
    assert [j["status"] for j in jobs] == ["ERROR", "ERROR"]
    assert jobs[0]["ended"] == pytest.approx(beat, abs=0.01)
    assert jobs[1]["ended"] == pytest.approx(beat + 0.3, abs=0.01)
    assert store.get_task("d")["status"] == "ERROR" and len(store.scalars("d")) == 6


def test_import_and_export_on_a_full_disk_are_one_line_and_leave_nothing_half_written(tmp_path, exported):
    """The work dir on a 2 MiB tmpfs (a private mount namespace): a task that fits is imported,
    then one that does not; the second is refused in one line naming the file (exit 1), its
    staging dir is removed, and the first task is intact. An export onto the full disk likewise."""
    why = _no_private_mounts(tmp_path)
    if why:
        pytest.skip(why)
    _bomb(tmp_path / "big.tar.gz", 8 << 20)
    make_task(tmp_path / "src", "big")
    with open(tmp_path / "src" / "tasks" / "big" / "noise", "wb") as f:
        f.write(os.urandom(3 << 20))  # does not compress
    gml_ray = os.path.join(BIN, "gml-ray")
    script = f'''
        mount -t tmpfs -o size=2m none wd || exit 99
        "{gml_ray}" ctl import --tar-path "{exported}" --workdir wd >/dev/null || exit 98
        "{gml_ray}" ctl import --tar-path big.tar.gz --workdir wd; echo "import rc=$?"
        ls -A wd/tasks
        "{gml_ray}" ctl show --task t --scalar --workdir wd | grep job_
        mkdir wd/out
        "{gml_ray}" ctl export --task big --workdir src --tar-path wd/out/big.tar.gz; echo "export rc=$?"
        ls -A wd/out
    '''
    (tmp_path / "wd").mkdir()
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, COLUMNS="200"))
    out = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert errors[0] == f"error: [Errno 28] No space left on device: '{tmp_path}/wd/tasks/.bomb.import/zeros'"
    assert errors[1] == "error: [Errno 28] No space left on device: 'wd/out/big.tar.gz.part'"
    assert out[0] == "import rc=1" and out[1] == "t"  # no staging dir left
    assert [line.split("│")[4].strip() for line in out[2:4]] == ["0 0.1 0.2", "0 0.1 0.2"]
    assert out[4:] == ["export rc=1"]  # and no .part file


# ---- the scheduler core: driver signals, escaped processes, config limits, odd pipe lines ------

SLEEPY = """
task:
  template: "python -c 'import time; time.sleep({x})'"
  search_args:
    - {type: Categorical, name: x, data: [60, 61]}
scheduler: {parallel_size: 2}
"""


def test_sigterm_to_the_driver_ends_the_run_like_ctrl_c(tmp_path, ray_head):
    import signal
    import time

    (tmp_path / "search_config.yaml").write_text(SLEEPY)
    proc = subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "t",
                             "--workdir", "wd", "--address", ray_head], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # both jobs running
            if os.path.exists(tmp_path / "wd" / "gml.db"):
                jobs = Store(str(tmp_path / "wd"), create=False).jobs("t")
                if len(jobs) == 2 and all(j["status"] == "RUNNING" for j in jobs):
                    break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "SIGTERM received" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "terminated (SIGTERM): running jobs of t were stopped (ERROR)"
    store = Store(str(tmp_path / "wd"), create=False)
    assert store.get_task("t")["status"] == "ERROR"
    assert [(j["status"], j["message"]) for j in store.jobs("t")] == [("ERROR", "terminated (SIGTERM)")] * 2


def test_a_setsid_grandchild_does_not_outlive_its_job(tmp_path, ray_head):
    marker = f"gml-escape-{os.getpid()}"
    (tmp_path / "search_config.yaml").write_text(f"""
task:
  template: "setsid python -c 'import time; time.sleep(60)' {marker} & echo {{x}}"
  search_args:
    - {{type: Categorical, name: x, data: [1]}}
metrics: collect
""")
    out = gml("run", "search_config.yaml", "--task", "t", "--workdir", "wd", "--address", ray_head, cwd=tmp_path)
    assert out.returncode == 1  # it reports nothing: no reward
    (job,) = Store(str(tmp_path / "wd"), create=False).jobs("t")
    assert job["status"] == "FINISHED" and job["ended"] - job["started"] < 5
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert left == []


@pytest.mark.slow
def test_a_command_jobs_processes_end_when_the_worker_running_it_dies(tmp_path):
    """The process that runs a command job (a Ray worker, here a bare Python) is SIGKILLed: the
    watchdog in the job's process group sees its lifeline close and ends the job's processes."""
    import signal
    import sys
    import time

    from helpers import pid_alive
    worker = subprocess.Popen([sys.executable, "-c", (
        "from gml_ray.engine.runners import run_command\n"
        "from gml_ray.engine.spec import JobSpec\n"
        f"run_command(JobSpec(command='echo $$ > pid; read line; sleep 60', cwd={str(tmp_path)!r}, "
        f"job_dir={str(tmp_path / 'job')!r}))\n")])
    try:
        deadline = time.time() + 30
        while not (tmp_path / "pid").exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # the pid file is written: its shell runs (and reads /dev/null, not the lifeline)
        job_pid = int((tmp_path / "pid").read_text())
        assert pid_alive(job_pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        deadline = time.time() + 5
        while pid_alive(job_pid) and time.time() < deadline:
            time.sleep(0.02)
        assert not pid_alive(job_pid), "the job outlived the worker that ran it"
    finally:
        if worker.poll() is None:
            worker.kill()


@pytest.mark.parametrize("text, message", [
    (b"\xff\xfe\x00 not text", "not a UTF-8 text file"),
    (b"", None),  # the billion-laughs file is built in the test
    (("task:\n  template: 'echo {x}'\n  search_args:\n    - {type: Categorical, name: x, data: ['"
      + "a" * 200_000 + "']}\n").encode(), "a rendered command could be"),
], ids=["binary", "alias-bomb", "long-command"])
def test_config_limits_are_one_line(tmp_path, text, message):
    if message is None:  # the billion-laughs shape: 10 levels of 9 references each
        levels = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for i in range(1, 10):
            levels.append(f"&a{i} [{levels[-1]}" + f",*a{i - 1}" * 8 + "]")
        text = ("task:\n  template: 'echo {x}'\n  search_args:\n    - type: Categorical\n      name: x\n"
                f"      data: {levels[-1]}\n").encode()
        message = "the YAML expands to more than 1,000,000 values"
    (tmp_path / "c.yaml").write_bytes(text)
    out = gml("run", "c.yaml", "--task", "t", "--workdir", "wd", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_a_pipe_line_with_a_non_text_tag_does_not_end_the_task(tmp_path, ray_head):
    (tmp_path / "odd.py").write_text(
        "import json, os\n"
        "fd = int(os.environ['GML_SCALAR_FD'])\n"
        "os.write(fd, (json.dumps({'t': ['x'], 'v': 1, 's': 0}) + '\\n').encode())\n"
        "os.write(fd, (json.dumps({'t': 'acc', 'v': 0.6, 's': 0}) + '\\n').encode())\n")
    (tmp_path / "search_config.yaml").write_text("""
task:
  template: "python odd.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [1]}
""")
    out = gml("run", "search_config.yaml", "--task", "t", "--workdir", "wd", "--address", ray_head, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    assert store.get_task("t")["status"] == "FINISHED"
    (job,) = store.jobs("t")
    assert job["reward"] == 0.6
    assert sorted(r["tag"] for r in store.scalars("t")) == ["['x']", "acc"]


def test_store_writes_that_fail_wait_in_the_backlog_and_are_written_later(tmp_path):
    """A full database (SQLite's max_page_count, as a full disk answers) loses no write."""
    store = Store(str(tmp_path / "wd"))
    store.create_task("t", scalar_columns=["acc"])
    store.add_job("t", 1, "job_0001", {"x": 1}, {"x": 1}, "cmd", str(tmp_path))
    store.defer_failed_writes = True
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # full from now on
    rows = [("t", 1, "acc", i, i / 1000, None, 0, 0, 1) for i in range(5000)]
    with store.transaction():
        store.update_job("t", 1, status="RUNNING")
        store.insert_scalar_rows(rows)
        store.update_job("t", 1, reward=4.999)  # after the failure: deferred too
    assert store.backlog.failing and "full" in store.backlog.error
    assert store.backlog.records() == 5002
    assert not store.retry_backlog()  # still full
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.retry_backlog() and not store.backlog.failing
    (job,) = store.jobs("t")
    assert (job["status"], job["reward"]) == ("RUNNING", 4.999)
    assert len(store.scalars("t")) == 5000


DISK_FULL_JOB = """
import os, time
from gml_ray import SummaryWriter
open(os.path.join(os.environ["GML_JOB_DIR"], "started"), "w").close()
while not os.path.exists(os.path.join(os.environ["GML_CODE"], "go")):
    time.sleep(0.1)
w = SummaryWriter()
for i in range(20000):
    w.add_scalar("acc", i / 20000, i)
"""

DISK_FULL_RUN = """
set -u
mkdir -p wd && mount -t tmpfs -o size=8m none wd || exit 99
export GML_CODE=$PWD
"$BIN/gml-ray" run c.yaml --task t --workdir wd --num-cpus 2 --no-snapshot > out.txt 2> err.txt &
P=$!
for i in $(seq 900); do [ -e wd/tasks/t/jobs/job_0001/started ] && break; sleep 0.2; done
dd if=/dev/zero of=wd/filler bs=64k 2>/dev/null
touch go
wait $P; echo "rc=$?"
rm -f wd/filler
ls wd/spill | grep -c spill- | sed 's/^/spills=/'
"$BIN/gml-ray" run c.yaml --task t --workdir wd --num-cpus 2 --no-snapshot --resume > out2.txt 2> err2.txt
echo "resume_rc=$?"
ls wd/spill | grep -c spill- | sed 's/^/spills_after=/'
"$BIN/python" -c "
from gml_ray.store import Store
s = Store('wd', create=False)
print('scalars=%d' % len(s.scalars('t')), 'jobs=%s' % [(j['status'], j['reward']) for j in s.jobs('t')])
"
"""


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_a_full_disk_pauses_the_run_spills_what_it_holds_and_resume_loads_it(tmp_path):
    why = _no_private_mounts(tmp_path)
    if why:
        pytest.skip(why)
    (tmp_path / "job.py").write_text(DISK_FULL_JOB)
    (tmp_path / "c.yaml").write_text("""
task:
  template: "python job.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [1]}
""")
    (tmp_path / "run.sh").write_text(DISK_FULL_RUN)
    env = dict(os.environ, BIN=BIN, GML_STORE_END_WAIT_S="2", GML_STORE_IDLE_MAX_S="3", COLUMNS="200")
    result = subprocess.run(["unshare", "-rm", "sh", "run.sh"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env=env)
    out = dict(line.split("=", 1) for line in result.stdout.split() if "=" in line and "'" not in line)
    assert out.get("rc") == "1", result.stdout + result.stderr
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "the store could not be written" in last and "--resume` loads it" in last
    shown = (tmp_path / "out.txt").read_text()
    assert "warning: store writes fail (database or disk is full)" in shown
    # the end is told as it is (ERROR, no table of jobs the store still shows RUNNING)
    assert "ended ERROR" in last and "task t FINISHED" not in shown and "RUNNING" not in shown
    assert out["spills"] == "1" and out["resume_rc"] == "0" and out["spills_after"] == "0"
    assert "scalars=20000" in result.stdout and "[('FINISHED', 0.99995)]" in result.stdout


def _session_of(pid: int) -> str | None:
    """The Ray session name in the command line of a child of ``pid`` (the local Ray it started)."""
    import re
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != pid:
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                m = re.search(rb"session_\d{4}-\d\d-\d\d_[\d_-]+", f.read())
        except (OSError, IndexError, ValueError):
            continue
        if m:
            return m.group(0).decode()
    return None


def _with_session(session: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if session.encode() in f.read():
                        out.append(int(entry))
            except OSError:
                pass
    return out


@pytest.mark.ray  # its `gml-ray run` starts a local Ray
def test_a_sigkilled_drivers_local_ray_ends_with_it(tmp_path):
    import signal
    import time

    (tmp_path / "search_config.yaml").write_text(SLEEPY)
    proc = subprocess.Popen([os.path.join(BIN, "gml-ray"), "run", "search_config.yaml", "--task", "t",
                             "--workdir", "wd", "--num-cpus", "2"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    session = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline and session is None:
            time.sleep(0.5)
            if os.path.exists(tmp_path / "wd" / "gml.db") and \
                    Store(str(tmp_path / "wd"), create=False).jobs("t"):
                session = _session_of(proc.pid)
        assert session, "no local Ray session found"
        assert owned_processes(proc.pid), "the run's Ray carries no owner mark"
        proc.send_signal(signal.SIGKILL)  # the driver only: no process group kill
        proc.wait(timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and (_with_session(session) or owned_processes(proc.pid)):
            time.sleep(0.5)
        assert _with_session(session) == []
        # Ray's agents too, whose command lines (ray::...) name no session
        assert owned_processes(proc.pid) == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in _with_session(session) if session else []:
            os.kill(pid, signal.SIGKILL)
