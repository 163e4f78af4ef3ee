"""The SQLite connection under the store: WAL, transactions, read-only opening, and writes that
wait in a backlog while they fail (:mod:`gml_ray.store.backlog`). :class:`~gml_ray.store.store.Store`
builds the rows API on it; nothing else opens the database."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Iterable, Iterator

from gml_ray.errors import UserError
from gml_ray.store.backlog import Write, WriteBacklog, is_write_failure
from gml_ray.store.schema import RENAMED_COLUMNS, SCHEMA, SCHEMA_VERSION, db_path


class StoreUnreadable(sqlite3.OperationalError):
    """A store that cannot be read where it is; the message says what to do."""


class StoreTooNew(StoreUnreadable):
    """A store written by a newer gml-ray (a higher schema version than this one knows)."""


class Deferred:
    """What a deferred write returns in place of a cursor."""

    rowcount = 0


DEFERRED = Deferred()


class Database(ABC):
    """A connection to ``<work_dir>/gml.db`` (the schema ensured); ``create=False`` refuses a
    work dir that has none. ``read_only=True`` opens an existing store for reading only: no
    schema changes, no writes; if SQLite cannot even create its WAL index there, the file is read
    as immutable (what the last run checkpointed into it). Subclasses add the rows API."""

    @abstractmethod
    def _insert_rows(self, sql: str, rows: list[tuple]) -> None:
        """Insert a batch of scalar rows (the subclass knows how to store a row SQLite refuses)."""

    def __init__(self, work_dir: str, create: bool = True, read_only: bool = False,
                 busy_timeout: float = 30.0) -> None:
        self.work_dir = os.path.abspath(work_dir)
        self.path = db_path(self.work_dir)
        self.read_only = read_only
        if (read_only or not create) and not os.path.exists(self.path):
            raise UserError(f"no gml-ray store at {self.path} (run `gml-ray init` or `gml-ray run` "
                            f"first, or pass --workdir)")
        self._lock = threading.RLock()
        # With defer_failed_writes (the scheduler's store), a write that fails for a reason that
        # may pass (disk full, I/O error, lock) waits in the backlog instead of raising.
        self.defer_failed_writes = False
        self.backlog = WriteBacklog()
        self._replaying = False
        self._warned: set = set()  # (task, job_id, tag) already warned about an unstorable scalar
        self.upgraded_from: int | None = None  # the schema version this open upgraded, if it did
        self.backup_path: str | None = None  # the copy of the store made before that upgrade
        if read_only:
            self._conn = self._connect_read_only()
            return
        os.makedirs(self.work_dir, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        if self._up_to_date():
            return  # opening a current store takes no write lock (a run may hold it a while)
        # The schema is ensured on every open, reading included: a run may have created the file
        # an instant before its tables. The version is read inside the write transaction, so
        # two processes opening an old store upgrade it once.
        with self.transaction():
            version = check_version(self._conn, self.path)
            steps = upgrade_statements(self._conn) if version < SCHEMA_VERSION else []
            if steps:
                self.upgraded_from = version
                self.backup_path = self._backup(version)
                for step in steps:
                    self._conn.execute(step)
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            if version != SCHEMA_VERSION:
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if self.backup_path:
            print(f"note: upgraded the store {self.path} from schema version {self.upgraded_from} "
                  f"to {SCHEMA_VERSION}; the old one is kept as {self.backup_path}",
                  file=sys.stderr, flush=True)

    def _up_to_date(self) -> bool:
        """Whether the store already has this schema version and its tables (a read)."""
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        return version == SCHEMA_VERSION and self._conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
            "('tasks', 'jobs', 'scalars')").fetchone()[0] == 3

    def _backup(self, version: int) -> str:
        """A consistent copy of the store as it is (read through a second connection, which
        sees the last commit), beside it, before an upgrade changes it."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = f"{self.path}.v{version}-backup-{stamp}"
        src = sqlite3.connect(self.path, timeout=30)
        dst = sqlite3.connect(path)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return path

    def _connect_read_only(self) -> sqlite3.Connection:
        from urllib.parse import quote
        uri = f"file:{quote(self.path)}?mode=ro"
        conn = None
        for suffix in ("", "&immutable=1"):
            conn = sqlite3.connect(uri + suffix, uri=True, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.OperationalError:  # no -shm beside it and none can be made
                conn.close()
                if suffix:
                    raise
        assert conn is not None
        wal = self.path + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0 and "immutable" in uri + suffix:
            conn.close()
            raise StoreUnreadable(f"its latest changes are in {wal}, which SQLite cannot read on a "
                                  f"read-only disk without {self.path}-shm: copy the work dir to a "
                                  f"writable disk and pass --workdir")
        if check_version(conn, self.path) < SCHEMA_VERSION and upgrade_statements(conn):
            # An older store on a disk we may not write: read an upgraded copy in memory.
            mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.backup(mem)
            conn.close()
            for step in upgrade_statements(mem):
                mem.execute(step)
            mem.executescript(SCHEMA)  # tables it never had (empty)
            conn = mem
        conn.row_factory = sqlite3.Row
        return conn

    def close(self) -> None:
        self._conn.close()

    def copy_to(self, path: str) -> None:
        """Write the whole store, as this connection sees it, to a new SQLite file ``path``
        (a store whose file was deleted lives on while a connection holds it open)."""
        with self._lock:
            dst = sqlite3.connect(path)
            try:
                self._conn.backup(dst)
            finally:
                dst.close()

    @contextlib.contextmanager
    def transaction(self, keep_on_error: bool = False, wait_s: float | None = None) -> Iterator[None]:
        """Group writes into one commit (re-entrant). An error rolls them back, or with
        ``keep_on_error`` commits what was written before it. ``wait_s``: wait at most this long
        for another writer's lock (else the connection's busy timeout), then raise "locked"."""
        with self._lock:
            outer = not self._conn.in_transaction and not self.backlog.failing
            if outer and wait_s is not None:
                busy = self._conn.execute("PRAGMA busy_timeout").fetchone()[0]
                self._conn.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                finally:
                    self._conn.execute(f"PRAGMA busy_timeout={busy}")
            elif outer and not self._control("BEGIN IMMEDIATE"):
                outer = False
            try:
                yield
            except BaseException:
                if outer and self._conn.in_transaction:
                    self._control("COMMIT" if keep_on_error else "ROLLBACK")
                raise
            else:
                if outer and self._conn.in_transaction:
                    self._control("COMMIT")

    def _control(self, sql: str) -> bool:
        """BEGIN / COMMIT / ROLLBACK; with ``defer_failed_writes`` a failure moves the journal
        to the backlog (returns False) instead of raising."""
        try:
            self._conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if not (self.defer_failed_writes and is_write_failure(exc)):
                raise
            self._lose_transaction(exc, None)
            return False
        if sql != "BEGIN IMMEDIATE":
            self.backlog.journal = []
        return True

    def _lose_transaction(self, exc: BaseException, write: Write | None) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        self.backlog.fail(exc, write)

    def retry_backlog(self) -> bool:
        """Make the backlog's writes in one transaction; True when none are left."""
        with self._lock:
            if not self.backlog.failing:
                return True
            if self._conn.in_transaction:
                return False  # only between transactions
            self._replaying = True
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for sql, params, many in self.backlog.pending:
                    if many:
                        self._insert_rows(sql, [tuple(r) for r in params])
                    else:
                        self._conn.execute(sql, tuple(params))
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if not is_write_failure(exc):
                    raise
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                self.backlog.error = " ".join(str(exc).split())
                return False
            finally:
                self._replaying = False
            self.backlog.cleared()
            return True

    def replay(self, writes: list[Write]) -> None:
        """Make ``writes`` (a spill file's) now, in one transaction; errors raise."""
        with self._lock, self.transaction():
            for sql, params, many in writes:
                if many:
                    self._insert_rows(sql, [tuple(r) for r in params])
                else:
                    self._conn.execute(sql, tuple(params))

    @contextlib.contextmanager
    def unlocked(self) -> Iterator[None]:
        """Inside a transaction: commit what was written, run the block without holding the
        database's write lock (other runs write to the same file), then open a new transaction."""
        with self._lock:
            inside = self._conn.in_transaction
            if inside:
                inside = self._control("COMMIT")
            try:
                yield
            finally:
                if inside and not self.backlog.failing:
                    self._control("BEGIN IMMEDIATE")

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """A write (an INSERT, UPDATE or DELETE). Returns its cursor; a deferred write returns
        one whose ``rowcount`` is 0."""
        with self._lock:
            if not self.defer_failed_writes:
                return self._conn.execute(sql, tuple(params))
            write: Write = (sql, tuple(params), False)
            if self.backlog.failing:
                self.backlog.pending.append(write)
                return DEFERRED
            try:
                cur = self._conn.execute(sql, write[1])
            except sqlite3.OperationalError as exc:
                if not is_write_failure(exc):
                    raise
                self._lose_transaction(exc, write)
                return DEFERRED
            if self._conn.in_transaction:
                self.backlog.journal.append(write)
            return cur

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None  # plain tuples, zipped with the names: faster than sqlite3.Row
            cur.execute(sql, tuple(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]


def check_version(conn: sqlite3.Connection, path: str) -> int:
    """The store's schema version; raises :class:`StoreTooNew` for one this gml-ray cannot read."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreTooNew(f"written by a newer gml-ray (store schema version {version}; this "
                          f"gml-ray reads up to {SCHEMA_VERSION}): upgrade gml-ray "
                          f"(`pip install -U gml-ray`), or use another --workdir")
    return version


def _target_columns() -> dict[str, list[tuple[str, str, Any, int]]]:
    """Each table's columns in :data:`SCHEMA` as SQLite itself reads them: (name, type, default,
    not null). Parsed by SQLite, so comments and constraints in the schema text cannot leak."""
    mem = sqlite3.connect(":memory:")
    try:
        mem.executescript(SCHEMA)
        tables = [r[0] for r in mem.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [(r[1], r[2], r[4], r[3]) for r in mem.execute(f"PRAGMA table_info({t})")]
                for t in tables}
    finally:
        mem.close()


def upgrade_statements(conn: sqlite3.Connection) -> list[str]:
    """What brings a store an earlier gml-ray wrote up to :data:`SCHEMA`: renamed columns
    first, then every column it lacks, with its default (empty: nothing to change)."""
    def columns(table: str) -> set[str]:
        return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}

    out: list[str] = []
    renamed: dict[str, set[str]] = {}
    for table, old, new, value in RENAMED_COLUMNS:
        have = columns(table)
        if old in have and new not in have:
            out += [f"ALTER TABLE {table} ADD COLUMN {new} REAL",
                    f"UPDATE {table} SET {new} = {value}",
                    f"ALTER TABLE {table} DROP COLUMN {old}"]
            renamed.setdefault(table, set()).add(new)
    for table, cols in _target_columns().items():
        have = columns(table) | renamed.get(table, set())
        if not have:
            continue  # a table this store never had: SCHEMA creates it
        for name, type_, default, not_null in cols:
            if name in have:
                continue
            if not_null and default is None:  # SQLite cannot add it to existing rows
                raise StoreUnreadable(f"cannot upgrade its table {table}: column {name} is "
                                      f"required and has no default")
            decl = f"{name} {type_}" + (f" DEFAULT {default}" if default is not None else "")
            out.append(f"ALTER TABLE {table} ADD COLUMN {decl}")
    return out
