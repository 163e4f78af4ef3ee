"""One alarm thread per process for the delayed callbacks of jobs (streaming, time limits)."""
from __future__ import annotations

import threading
import time
from typing import Callable


class Alarm:
    """Runs callbacks after a delay on one daemon thread per process: a ``threading.Timer`` per
    job would start (and join) a thread for every short trial."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}  # token -> (when, callback)
        self._running: int | None = None  # the token whose callback runs now
        self._next = 0
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` after ``delay`` seconds unless cancelled; returns a token."""
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="gml-alarm", daemon=True)
                self._thread.start()
            self._next += 1
            self._due[self._next] = (time.monotonic() + delay, callback)
            self._cv.notify()
            return self._next

    def cancel(self, token: int) -> None:
        """After this returns the callback has either run to its end or will never run."""
        with self._cv:
            self._due.pop(token, None)
            while self._running == token:
                self._cv.wait()

    def _loop(self) -> None:
        with self._cv:
            while True:
                if not self._due:
                    self._cv.wait()
                    continue
                token = min(self._due, key=lambda t: self._due[t][0])
                when, callback = self._due[token]
                wait = when - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                del self._due[token]
                self._running = token
                self._cv.release()
                try:
                    callback()
                except Exception:  # noqa: BLE001 - a failed send is the job's loss, not the alarm's
                    pass
                finally:
                    self._cv.acquire()
                    self._running = None
                    self._cv.notify_all()


alarm = Alarm()  # the process's one alarm thread


