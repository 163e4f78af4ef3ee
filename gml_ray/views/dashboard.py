"""``gml-ray ctl serve``: a live web dashboard of a work dir, served by aiohttp.

Pages: ``/`` the task list (what ``ctl show`` lists), ``/task/<name>`` a task's page: the HTML
report's page (``templates/report.html`` and ``report.js``, unchanged) with ``templates/dashboard.js``
on top, which polls for changes and patches the page. API: ``/api/tasks?epoch=&version=``,
``/api/task/<name>/changes?epoch=&version=&rowid=`` (only what changed: see
:mod:`gml_ray.views.live`), ``/api/task/<name>/log/<job index>`` (a job's log tails). Static:
``/static/plotly-<version>.js`` (the installed plotly's bundle, cached for good) and
``/static/dashboard-<hash>.js``.

A task page comes in two parts of one response: the job table's data first (the table shows while
the server reads the scalars), then the curves. Nothing is fetched from elsewhere.

Security: the store is opened read-only and never written. Bound to a local address (the
default, 127.0.0.1) it answers only requests whose Host is a local name (no DNS rebinding);
bound to another address it needs a token: each request without it (``?token=``, or the cookie
the first visit with it sets) gets 401.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import hashlib
import hmac
import html
import json
import os
import re
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Callable, Mapping
from urllib.parse import quote

from aiohttp import web

from gml_ray.errors import UserError
from gml_ray.store.store import Store
from gml_ray.views.live import EPOCH, TaskLive, TasksLive, curves_payload, first_payload

COOKIE = "gml_token"
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1"}
LOG_TAIL = 16_000  # bytes of each log a job's detail shows
POLL_MS = 1000  # how often a page asks for changes
SPLIT = "\x00GML-SPLIT\x00"
ICON = '<link rel="icon" href="data:,">'  # no /favicon.ico request


def is_local(host: str) -> bool:
    """Whether ``host`` (a bind address) is reachable only from this machine."""
    return host in LOCAL_NAMES or host.startswith("127.")


def _template(name: str) -> str:
    return resources.files("gml_ray.views").joinpath("templates").joinpath(name).read_text(encoding="utf-8")


def pack(text: str) -> str:
    """gzip + base64, as the report's page carries its data (``report.js`` inflates it)."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 3, mtime=0)).decode("ascii")


def _json(data: Any) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    return _json(data).replace("</", "<\\/")


@functools.lru_cache(maxsize=1)
def _plotly() -> tuple[str, bytes]:
    """(version, gzip of the bundle) of the installed plotly."""
    import plotly
    from plotly.offline import get_plotlyjs
    return plotly.__version__, gzip.compress(get_plotlyjs().encode("utf-8"), 6, mtime=0)


@functools.lru_cache(maxsize=1)
def _script() -> tuple[str, bytes]:
    """(content hash, text) of dashboard.js."""
    text = _template("dashboard.js").encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:12], text


def _ints(query: Mapping[str, str], *names: str) -> list[int] | None:
    """The query's counters (``version``, ``rowid``; 0 where absent); None if one is not a
    whole number (the page never sends that: a hand-made URL gets 400, not a server error)."""
    try:
        return [int(query.get(name, 0)) for name in names]
    except ValueError:
        return None


def _bad_query() -> web.Response:
    return web.json_response({"error": "version and rowid must be whole numbers"}, status=400)


def _tail(path: str, limit: int = LOG_TAIL) -> str | None:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return None
    return ("[...]\n" if size > limit else "") + data.decode("utf-8", "replace")


class Dashboard:
    """The app's state: a read-only store for the polls (one thread) and one per page build."""

    def __init__(self, work_dir: str, token: str | None = None, poll_ms: int = POLL_MS) -> None:
        self.work_dir, self.token, self.poll_ms = work_dir, token, poll_ms
        self.store = Store(work_dir, create=False, read_only=True)
        self.poll = ThreadPoolExecutor(1, "gml-dashboard-poll")  # the store's connection: one thread
        self.pages = ThreadPoolExecutor(2, "gml-dashboard-page")
        self.tasks = TasksLive(self.store)
        self.live: dict[str, TaskLive] = {}

    # ---- helpers --------------------------------------------------------------------------

    async def _in(self, pool: ThreadPoolExecutor, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def _task_live(self, name: str, force: bool = False) -> TaskLive:
        live = self.live.get(name)
        if live is None:
            self.store.require_task(name)  # UserError for an unknown task
            live = self.live[name] = TaskLive(self.store, name)
            force = True
        live.refresh(force)
        return live

    def _build(self, fn: Callable, name: str) -> Any:
        store = Store(self.work_dir, create=False, read_only=True)
        try:
            return fn(store, name)
        finally:
            store.close()

    def _page(self, title: str, body: str, config: dict[str, Any]) -> str:
        digest = _script()[0]
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>{ICON}'
                f'<style>{_template("report.css")}\n{_template("dashboard.css")}</style></head><body>'
                f'{body}<script type="application/json" id="gml-live">{_script_json(config)}</script>'
                f'<script src="/static/dashboard-{digest}.js"></script></body></html>')

    def _nav(self, name: str | None) -> str:
        where = f' &rsaquo; <b>{html.escape(name)}</b>' if name else ""
        return (f'<nav id="live"><a href="/">gml-ray</a> <span class="note">{html.escape(self.work_dir)}</span>{where}'
                f' <span id="live-state" class="note">connecting...</span></nav>')

    # ---- handlers -------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        body = (self._nav(None) + '<section><h2>Tasks</h2><div class="tablewrap"><table id="tasks">'
                '<thead></thead><tbody></tbody></table></div></section>')
        page = self._page(f"gml-ray: {self.work_dir}", body, {"mode": "tasks", "poll_ms": self.poll_ms})
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def task_page(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            live = await self._in(self.poll, self._task_live, name, True)
        except UserError as exc:
            return web.Response(status=404, text=str(exc))
        version = live.version  # every change after it reaches the page through the polls
        data = await self._in(self.pages, self._build, first_payload, name)
        rowid, n_jobs = data.pop("rowid"), len(data["jobs"])
        data.pop("curves")
        core = {**data, "jobs": [{k: v for k, v in j.items() if k != "logs"} for j in data["jobs"]]}
        parts = {"%%TITLE%%": html.escape(f"gml-ray: {name}"),
                 "%%CSS%%": _template("report.css") + "\n" + _template("dashboard.css"),
                 "%%DATA%%": pack(_json(core)), "%%CURVES%%": SPLIT, "%%LOGS%%": pack("[]"),
                 "%%APP%%": _template("report.js"), "%%PARCOORDS%%": _template("report_parcoords.js"),
                 "%%OBJECTIVES%%": _template("report_objectives.js"), "%%PLOTLY%%": ""}
        page = re.sub("|".join(re.escape(k) for k in parts), lambda m: parts[m.group(0)], _template("report.html"))
        head, tail = page.split(SPLIT)
        head = head.replace("</head>", ICON + "</head>", 1).replace("<body>", "<body>" + self._nav(name), 1)
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
        await resp.prepare(request)
        await resp.write(head.encode("utf-8"))  # the table shows while the curves are read
        curves = await self._in(self.pages, self._build, curves_payload, name)
        keep = {k: [e for e in v if e[0] < n_jobs] for k, v in curves["curves"].items()}  # jobs the page has
        latest = {i: row for i, row in zip(curves["ids"], curves["latest"])}
        config = {"mode": "task", "task": name, "epoch": EPOCH, "version": version, "rowid": rowid,
                  "poll_ms": self.poll_ms, "latest": [latest.get(j["id"]) for j in core["jobs"]]}
        scripts = (f'<script src="/static/plotly-{_plotly()[0]}.js"></script>'
                   f'<script type="application/json" id="gml-live">{_script_json(config)}</script>'
                   f'<script src="/static/dashboard-{_script()[0]}.js"></script>')
        await resp.write((pack(_json(keep)) + tail.replace("</body>", scripts + "</body>", 1)).encode("utf-8"))
        await resp.write_eof()
        return resp

    async def api_tasks(self, request: web.Request) -> web.Response:
        q = request.query
        since = _ints(q, "version")
        if since is None:
            return _bad_query()
        out = await self._in(self.poll, self.tasks.changes, q.get("epoch", ""), since[0])
        return web.json_response(out, dumps=_json)

    async def api_changes(self, request: web.Request) -> web.Response:
        name, q = request.match_info["name"], request.query
        try:
            live = await self._in(self.poll, self._task_live, name)
        except UserError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        since = _ints(q, "version", "rowid")
        if since is None:
            return _bad_query()
        out = await self._in(self.poll, live.changes, q.get("epoch", ""), *since)
        return web.json_response(out, dumps=_json)

    async def api_log(self, request: web.Request) -> web.Response:
        name, index = request.match_info["name"], int(request.match_info["index"])
        live = self.live.get(name)
        if live is None or not 0 <= index < len(live.order):
            return web.json_response({"error": "no such job"}, status=404)
        job_dir = live.raw[live.order[index]].get("job_dir")  # from the store, never from the request
        out = {s: _tail(os.path.join(job_dir, f"{s}.log")) if job_dir else None for s in ("stdout", "stderr")}
        return web.json_response(out, dumps=_json)

    async def static(self, request: web.Request) -> web.Response:
        fname = request.match_info["file"]
        forever = {"Cache-Control": "public, max-age=31536000, immutable"}
        if fname == f"plotly-{_plotly()[0]}.js":
            body = _plotly()[1]
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                return web.Response(body=body, content_type="text/javascript", charset="utf-8",
                                    headers={**forever, "Content-Encoding": "gzip"})
            return web.Response(body=gzip.decompress(body), content_type="text/javascript", charset="utf-8",
                                headers=forever)
        if fname == f"dashboard-{_script()[0]}.js":
            return web.Response(body=_script()[1], content_type="text/javascript", charset="utf-8", headers=forever)
        raise web.HTTPNotFound()

    # ---- the guard ------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:  # a local bind: refuse a page reached under a foreign name
            host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") \
                else request.host[1:].split("]")[0]
            return host in LOCAL_NAMES or host.startswith("127.")
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    @web.middleware
    async def guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if not self._authorized(request):
            if self.token is None:
                return web.Response(status=403, text="403: this dashboard answers only as localhost\n")
            return web.Response(status=401, text="401: this dashboard needs its token: open the URL "
                                "`gml-ray ctl serve` printed (.../?token=...)\n")
        return await handler(request)

    async def _set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        if self.token is not None and request.query.get("token"):
            # (a header: on_response_prepare comes after aiohttp has turned the cookies into headers)
            response.headers.add("Set-Cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard])
        app.on_response_prepare.append(self._set_cookie)
        app.add_routes([web.get("/", self.index), web.get("/task/{name}", self.task_page),
                        web.get("/api/tasks", self.api_tasks),
                        web.get("/api/task/{name}/changes", self.api_changes),
                        web.get("/api/task/{name}/log/{index:\\d+}", self.api_log),
                        web.get("/static/{file}", self.static)])
        return app


def url_for(host: str, port: int, task: str | None, token: str | None) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    path = f"task/{quote(task, safe='')}" if task else ""
    return f"http://{shown}:{port}/{path}" + (f"?token={token}" if token else "")


def serve(work_dir: str, host: str, port: int, token: str | None, task: str | None,
          announce: Callable[[str], None], poll_ms: int = POLL_MS) -> None:
    """Serve until SIGINT or SIGTERM; ``announce(url)`` once listening (port 0: a free one)."""
    dash = Dashboard(work_dir, token, poll_ms)

    async def run() -> None:
        runner = web.AppRunner(dash.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        announce(url_for(host, runner.addresses[0][1], task, token))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            dash.poll.shutdown(wait=False, cancel_futures=True)
            dash.pages.shutdown(wait=False, cancel_futures=True)

    asyncio.run(run())
