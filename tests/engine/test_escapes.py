"""A command job's processes that left its process group, its session or its environment end
with the job, however it ended; processes that are not the job's are left alone."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import pid_alive, write_files

from gml_ray.engine.procgroup import TOKEN_ENV
from gml_ray.vocab import JobStatus

MARK = f"gml-escapee-{os.getpid()}"  # on every escapee's command line: what the cleanup checks

# The process left behind: writes its pid to argv[1] once it runs (and, when told, ignores
# SIGTERM), then sleeps.
ESCAPEE = f"""
import os, signal, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)  # {MARK}
"""

# The job: leaves an escapee behind in the style argv[1] names, waits until it runs, exits 0.
JOB = """
import os, subprocess, sys, time
style, out = sys.argv[1], sys.argv[2]
cmd = [sys.executable, os.path.join(os.getcwd(), "escapee.py"), out,
       "stubborn" if style == "stubborn" else "plain"]
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if style in ("session", "stubborn"):
    subprocess.Popen(cmd, start_new_session=True, **quiet)
elif style == "group":
    subprocess.Popen(cmd, process_group=0, **quiet)
elif style == "emptyenv":
    subprocess.Popen(cmd, env={}, start_new_session=True, **quiet)
elif style.startswith("daemon"):
    child = os.fork()
    if child == 0:  # the classic double fork: new session, then a grandchild that init adopts
        os.setsid()
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            if not style.endswith("-pipe"):  # a daemon closes what it inherited (the scalar pipe)
                os.closerange(3, 1024)
            os.execve(sys.executable, cmd, dict(os.environ) if style == "daemon" else {})
        os._exit(0)
    os.waitpid(child, 0)
else:
    raise SystemExit(f"unknown style {style}")
deadline = time.time() + 30
while not os.path.exists(out) and time.time() < deadline:
    time.sleep(0.02)
end = os.environ.get("END", "exit0")
if end == "hang":
    time.sleep(120)
sys.exit(3 if end == "exit3" else 0)
"""


def _config(template: str, extra: str = "") -> str:
    return f"""
task:
  template: '{template}'
  search_args:
    - {{type: Categorical, name: x, data: [1]}}
scheduler:
  parallel_size: 1
{extra}
"""


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _kill_if_escapee(pid: int) -> None:
    """SIGKILL ``pid`` if it still is one of this test's escapees (never anything else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"escapee.py" not in f.read():
                return
        os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


@contextlib.contextmanager
def _bystanders():
    """Two processes that are not the job's, started by the test: one carrying another job's token,
    one carrying none. They must survive every run."""
    code = f"import time; time.sleep(120)  # {MARK}-bystander"
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    procs = [subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                              env={**env, TOKEN_ENV: "1-2-3-4"}),
             subprocess.Popen([sys.executable, "-c", code], start_new_session=True, env=env)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture
def escaped():
    """The escapees' pids a test saw; any still running at its end are SIGKILLed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        _kill_if_escapee(pid)


def _escape_run(run_task, tmp_path, escaped, template: str, extra: str = ""):
    """Runs a one-job task whose job leaves an escapee; returns (the run, the escapee's pid)."""
    out = tmp_path / "escaped.pid"
    with _bystanders() as others:
        run = run_task(_config(template.format(out=out), extra), {"escapee.py": ESCAPEE, "job.py": JOB})
        pid = int(out.read_text()) if out.exists() else None
        if pid is not None:
            escaped.append(pid)
        assert all(pid_alive(p) for p in others), "a process that is not the job's was ended"
    return run, pid


STYLES = ["session", "group", "daemon", "emptyenv", "daemon-emptyenv", "stubborn"]


@pytest.mark.parametrize("style", STYLES)
def test_a_process_that_escaped_a_finished_job_ends_with_it(run_task, tmp_path, escaped, style):
    run, pid = _escape_run(run_task, tmp_path, escaped, f"python job.py {style} {{out}}")
    assert run.statuses() == [JobStatus.FINISHED]
    assert pid is not None, "the escapee never ran"
    # SIGTERM at once; one that ignores it gets SIGKILL after the grace period (3 s)
    assert _gone_within(pid, 10), f"{style}: the escaped process outlived its job"


def test_a_nohup_background_process_of_the_template_ends_with_its_job(run_task, tmp_path, escaped):
    template = ("nohup python escapee.py {out} plain >/dev/null 2>&1 & "
                "while [ ! -e {out} ]; do sleep 0.02; done")
    run, pid = _escape_run(run_task, tmp_path, escaped, template)
    assert run.statuses() == [JobStatus.FINISHED]
    assert pid is not None and _gone_within(pid, 10)


@pytest.mark.parametrize("end, status", [("exit3", JobStatus.ERROR), ("hang", JobStatus.KILLED)])
def test_a_daemon_without_the_token_ends_with_a_job_that_failed_or_was_killed(run_task, tmp_path, escaped,
                                                                            end, status):
    # `hang` runs into time_limits_per_job (3 s) after its daemon started
    run, pid = _escape_run(run_task, tmp_path, escaped, f"END={end} python job.py daemon-emptyenv {{out}}",
                           extra="  stop_criterion: {time_limits_per_job: 3s}")
    assert run.statuses() == [status]
    assert pid is not None and _gone_within(pid, 10)


def test_the_workers_own_children_survive_its_jobs_escapees_do_not(tmp_path, escaped):
    """run_command in a bare Python (as in a Ray worker) that has children of its own, started
    before the job and during it: only the job's processes are ended, among them a daemon without
    the token that holds the job's scalar pipe open."""
    write_files(tmp_path, {"escapee.py": ESCAPEE, "job.py": JOB})
    out = tmp_path / "escaped.pid"
    script = (
        "import json, subprocess, sys, threading, time\n"
        "from gml_ray.engine.runners import run_command\n"
        "from gml_ray.engine.spec import JobSpec\n"
        f"code = 'import time; time.sleep(120)  # {MARK}-own'\n"
        "before = subprocess.Popen([sys.executable, '-c', code])\n"
        "during = []\n"
        "timer = threading.Timer(0.3, lambda: during.append(subprocess.Popen([sys.executable, '-c', code])))\n"
        "try:\n"
        "    timer.start()\n"
        f"    outcome = run_command(JobSpec(command='sleep 0.6; python job.py daemon-emptyenv-pipe {out}', "
        f"cwd={str(tmp_path)!r}, job_dir={str(tmp_path / 'job')!r}))\n"
        "    alive = [before.poll() is None, bool(during) and during[0].poll() is None]\n"
        "    print(json.dumps({'status': outcome['status'], 'alive': alive}))\n"
        "finally:\n"
        "    timer.join()\n"
        "    for p in [before, *during]:\n"
        "        p.kill(); p.wait()\n")
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        stdout, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:  # it hung: end it and the children it started (its group)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        if out.exists():
            escaped.append(int(out.read_text()))
    assert worker.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result == {"status": JobStatus.FINISHED, "alive": [True, True]}
    assert escaped and _gone_within(escaped[0], 10)


ZOMBIES = """
import os, sys
worker = int(sys.argv[1])
count = 0
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += fields[0] == "Z" and int(fields[1]) == worker
print(count)
"""


def test_a_job_that_keeps_orphaning_short_lived_processes_leaves_no_zombies_piling_up(tmp_path):
    """What the job orphans is adopted by the process that runs it, which reaps what exits while
    the job runs (init did before)."""
    write_files(tmp_path, {"zombies.py": ZOMBIES})
    command = ("for i in $(seq 60); do (sleep 0.01 &); done; sleep 1; "
               "python zombies.py $PPID > zombies.txt")
    script = ("from gml_ray.engine.runners import run_command\n"
              "from gml_ray.engine.spec import JobSpec\n"
              f"print(run_command(JobSpec(command={command!r}, cwd={str(tmp_path)!r}, "
              f"job_dir={str(tmp_path / 'job')!r}))['status'])\n")
    worker = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert worker.returncode == 0 and worker.stdout.split()[-1] == JobStatus.FINISHED, worker.stderr
    assert int((tmp_path / "zombies.txt").read_text()) <= 2  # what exited in the last check's 0.2 s


@pytest.mark.slow
def test_a_job_process_that_ignores_sigterm_ends_when_the_worker_running_it_dies(tmp_path, escaped):
    """The watchdog SIGTERMs the job's group when the worker's lifeline closes, then SIGKILLs what
    is left after the grace period: it must outlive its own SIGTERM to do that."""
    write_files(tmp_path, {"escapee.py": ESCAPEE})
    out = tmp_path / "stubborn.pid"
    worker = subprocess.Popen([sys.executable, "-c", (
        "from gml_ray.engine.runners import run_command\n"
        "from gml_ray.engine.spec import JobSpec\n"
        f"run_command(JobSpec(command='python escapee.py {out} stubborn', cwd={str(tmp_path)!r}, "
        f"job_dir={str(tmp_path / 'job')!r}))\n")], start_new_session=True)
    try:
        deadline = time.time() + 30
        while not out.exists() and time.time() < deadline:
            time.sleep(0.02)
        assert out.exists(), "the job never ran"
        escaped.append(int(out.read_text()))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert _gone_within(escaped[0], 10), "a job process that ignores SIGTERM outlived its dead worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
