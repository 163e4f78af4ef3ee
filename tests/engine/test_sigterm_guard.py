"""The run's SIGTERM handler survives a library that puts the default action back at the C level
(as ray.shutdown() does): a SIGTERM then reaches the handler instead of ending the process."""
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
    with sigterm_kept() if sys.argv[1] == "guard" else contextlib.nullcontext():
        libc.signal(signal.SIGTERM, ctypes.c_void_p(0))  # SIG_DFL, behind Python's back
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    assert signal.getsignal(signal.SIGTERM) is handler
    os.kill(os.getpid(), signal.SIGTERM)  # after the block too
    time.sleep(0.1)
    print("handled", len(hits))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard reads libc's sigaction (Linux)")
@pytest.mark.parametrize("mode, code, out", [("guard", 0, "handled 2"), ("bare", -15, "")])
def test_a_reset_to_the_default_action_is_undone(tmp_path, mode, code, out):
    (tmp_path / "s.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "s.py", mode], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": REPO_DIR, "PATH": "/usr/bin:/bin"})
    # bare: the control, what happened to the driver before the guard (killed silently)
    assert (done.returncode, done.stdout.strip()) == (code, out), done.stderr
