"""The gml-ray command line (installed as ``gml_ray.cli``)."""
import os as _os
import signal as _signal
import time as _time

_sigterm_at: list = []  # when SIGTERMs reached the command's own handler
_running: list = []  # non-empty once the command's code runs (cli.main._main)


def _terminated(signum, frame):  # noqa: ANN001 - a signal handler
    _sigterm_at.append(_time.time())
    if not _running:  # still importing: nothing to clean up, nothing to catch it
        _os.write(2, b"terminated (SIGTERM)\n")
        raise SystemExit(143)
    from gml_ray.errors import Terminated
    raise Terminated("terminated (SIGTERM)")


def command_started() -> None:
    """From here on a SIGTERM raises Terminated where the command is, for it to clean up."""
    _running.append(True)


def command_done() -> None:
    """The command's outcome is decided (its result written, its lines printed): a SIGTERM from
    here on is ignored. Raised later, in click's or the interpreter's teardown, it would turn a
    finished command into a traceback or a silent death (-15) instead of the exit code it chose."""
    _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)


def sigterm_received() -> bool:
    """Whether SIGTERM reached the command's handler (typer turns what it raises into exit 130)."""
    return bool(_sigterm_at)


# The first thing the command does: a SIGTERM from here on (a batch system may preempt at any
# moment, also while the command starts up) ends it with one line and exit 143, through the
# same path as one during a run, instead of the default silent death. An embedding program's
# own handler is left alone.
if _signal.getsignal(_signal.SIGTERM) is _signal.SIG_DFL:
    _signal.signal(_signal.SIGTERM, _terminated)
