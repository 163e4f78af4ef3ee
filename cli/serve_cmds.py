"""``ctl serve``: the live web dashboard of a work dir (:mod:`gml_ray.views.dashboard`).

``register(ctl_app)`` adds the command to the ``ctl`` Typer app. The store is opened read-only
before anything is served, so a missing, damaged or unreadable store gives the same one-line
error as ``ctl show``.
"""
from __future__ import annotations

import secrets
import sys
from typing import Optional

import typer
from gml_ray.cli.common import WORKDIR_HELP, console, resolve_workdir


def register(ctl_app: typer.Typer) -> None:
    """Add ``serve`` to the ``ctl`` app."""

    @ctl_app.command("serve")
    def serve_cmd(
        task: Optional[str] = typer.Option(None, "--task", "-t", help="print this task's page as the URL to open"),
        port: int = typer.Option(0, "--port", "-p", min=0, max=65535, help="port to listen on (default: a free one)"),
        host: str = typer.Option("127.0.0.1", "--host",
                                 help="address to bind; anything but localhost needs the token printed with the URL"),
        workdir: Optional[str] = typer.Option(None, "--workdir", "-w", help=WORKDIR_HELP),
    ) -> None:
        """Serve a live web dashboard of the work dir: the task list, and each task's report page,
        updated while runs write (read-only: it never writes the store)."""
        from gml_ray.store.store import Store
        from gml_ray.views.dashboard import is_local, serve

        path = resolve_workdir(workdir)
        store = Store(path, create=False, read_only=True)
        store.list_tasks()  # a damaged store says so now, in one line
        if task:
            store.require_task(task)
        store.close()
        token = None if is_local(host) else secrets.token_urlsafe(24)

        def announce(url: str) -> None:
            note = " (the token is needed: keep this URL to yourself)" if token else ""
            console.print(f"dashboard of {path}: {url}{note}", soft_wrap=True, markup=False, highlight=False)
            console.print("Ctrl+C to stop", style="dim")
            sys.stdout.flush()

        serve(path, host, port, token, task, announce)
