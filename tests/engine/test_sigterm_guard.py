"""The run's SIGTERM handler survives what Ray does to SIGTERM as it starts and stops: its own
Python handler (ray.init) and a C-level action put in behind Python's back (the default, as
ray.shutdown() leaves it; any other): a SIGTERM reaches the run's handler every time."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from helpers import REPO_DIR

SCRIPT = textwrap.dedent("""
    import contextlib, ctypes, os, signal, sys, time
    from gml_ray.engine.sigterm_guard import sigterm_kept
    hits = []
    handler = lambda signum, frame: hits.append(signum)
    signal.signal(signal.SIGTERM, handler)
    libc = ctypes.CDLL(None)
    import ray._private.utils
    with sigterm_kept() if sys.argv[1] == "guard" else contextlib.nullcontext():
        ray._private.utils.set_sigterm_handler(lambda signum, frame: sys.exit(signum))  # as ray.init does
        for action in (0, 1):  # SIG_DFL (as ray.shutdown leaves it), SIG_IGN: behind Python's back
            libc.signal(signal.SIGTERM, ctypes.c_void_p(action))
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
    assert signal.getsignal(signal.SIGTERM) is handler
    os.kill(os.getpid(), signal.SIGTERM)  # after the block too
    time.sleep(0.1)
    print("handled", len(hits))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard reads libc's sigaction (Linux)")
@pytest.mark.parametrize("mode, code, out", [("guard", 0, "handled 3"), ("bare", -15, "")])
def test_what_ray_does_to_sigterm_is_undone(tmp_path, mode, code, out):
    (tmp_path / "s.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "s.py", mode], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": REPO_DIR, "PATH": "/usr/bin:/bin"})
    # bare: the control, what happened to the driver before the guard (killed silently)
    assert (done.returncode, done.stdout.strip()) == (code, out), done.stderr
