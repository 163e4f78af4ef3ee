"""The embedded SQLite store under a work dir: tasks, jobs, scalars.

Modules: :mod:`.schema` (tables, statuses' storage, liveness rules; no SQLite), :mod:`.db` (the
connection, schema upgrades, transactions), :mod:`.store` (:class:`Store`, the only writer of SQL),
:mod:`.backlog` (writes kept while the disk is full), :mod:`.guard` (the scheduler's guarded
writes), :mod:`.archive` (``ctl rm``, ``export``, ``import``).

The public name (a facade): :class:`Store`.
"""
from gml_ray.store.store import Store

__all__ = ["Store"]
