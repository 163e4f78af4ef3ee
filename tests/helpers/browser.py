"""A small DevTools-protocol client for headless Chromium: the report's and the dashboard's pages
are checked in a real browser."""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request


def chromium_binary() -> str | None:
    for name in (os.environ.get("GML_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol (``websockets``' sync client).

    Records console errors, uncaught exceptions, error log entries and every network request of
    the page. ``close()`` ends the browser's whole process group (started with its own session).
    """

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

    def __init__(self, binary: str, width: int = 1400, height: int = 1000) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="gml-chromium-")
        self.proc = subprocess.Popen(
            [binary, *self.FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "--no-first-run", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = os.path.join(self.profile, "DevToolsActivePort")
            deadline = time.time() + 60
            while True:
                if os.path.exists(port_file):
                    lines = open(port_file).read().split()
                    if len(lines) >= 2:
                        break
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"chromium did not start (exit {self.proc.poll()})")
                time.sleep(0.05)
            port = int(lines[0])
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            page = next(p for p in pages if p["type"] == "page")
            self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20).__enter__()
        except BaseException:
            self.close()
            raise
        self._ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, timeout: float = 120, **params):
        i = next(self._ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression: str, timeout: float = 120):
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                  for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        """URLs the page asked for; blob: and data: URLs are left out (made by the page itself)."""
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"
                and not e["params"]["request"]["url"].startswith(("blob:", "data:"))]

    def open_report(self, path: str, timeout: float = 60) -> dict:
        """Load a report; wait until it says it is drawn. Rows (in the table's list; dom_rows: drawn),
        traces, jobs with a curve of their own, parallel-coordinates lines, errors, requests."""
        self.events.clear()
        url = "file://" + os.path.abspath(path)
        t0 = time.perf_counter()
        self.call("Page.navigate", url=url)
        deadline = time.time() + timeout
        while not self.eval("!!(window.gmlReport && (window.gmlReport.ready || window.gmlReport.errors.length))"):
            if time.time() > deadline:
                raise AssertionError(f"report not drawn in {timeout}s: {self.errors()}")
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        info = self.eval("""({
            ready_ms: window.gmlReport.readyMs, page_errors: window.gmlReport.errors,
            rows: gmlReport.rows().length,
            dom_rows: document.querySelectorAll('#jobs tbody tr[data-row]').length,
            traces: Array.from(document.querySelectorAll('.curve-plot')).map(d => (d.data || []).length),
            own: gmlReport.ownCurves(),
            tags: Array.from(document.querySelectorAll('.curve-plot')).map(d => d.dataset.tag),
            parcoords: (gmlReport.parcoords() || {}).lines,
            best_traces: (document.getElementById('best-plot').data || []).length,
            summary: document.getElementById('summary').innerText,
        })""")
        info.update(wall_s=wall, errors=self.errors() + info.pop("page_errors"),
                    requests=[u for u in self.requests() if u != url])
        return info

    def screenshot(self, path: str) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close", timeout=5)  # the quick way out; the group is ended below
                self.proc.wait(5)
            except Exception:  # noqa: BLE001
                pass
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass
        pgid = self.proc.pid  # the browser leads its own process group (start_new_session)
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            deadline = time.time() + wait  # and its helpers (renderer, zygote, crashpad)
            while time.time() < deadline:
                try:
                    os.killpg(pgid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                continue
            break
        if self.proc.poll() is None:
            self.proc.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)


