"""Stores written by earlier gml-ray releases open and upgrade in place (after a backup copy);
a store from a newer gml-ray is refused up front with one line.

``tests/data/stores/<commit>.db`` are real stores: each is what ``gml-ray run`` at that commit
wrote for a 3-job grid search (task ``old``), one per schema the store has had."""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
from helpers import DATA_DIR

from gml_ray.store import Store
from gml_ray.store.db import StoreTooNew
from gml_ray.store.schema import SCHEMA, SCHEMA_VERSION, run_time

BIN = os.path.dirname(sys.executable)
STORES = os.path.join(DATA_DIR, "stores")
RELEASES = ["cc8f4e7", "c906443", "74e2ce3", "e8e8eb1", "5f8dbea", "8793563", "f79e464"]  # 8793563: schema 1, f79e464: 2

# sha256 of SCHEMA's text per schema version: a change to SCHEMA must bump SCHEMA_VERSION
# (and keep every older store opening), so this test names the version it is for.
SCHEMA_DIGESTS = {1: "5db9a5919baa4f1c0a4a70368e336e54d02ff8d6b4e975c990bd70871f5c9410",
                  2: "e7a83585aef450ba15d9c062b5cffec29d6551099a6a02623672eb20af54352c",
                  3: "2e97a7cec88f71e937e9bd85bb78530c69262e476cfa8183c39e8e32cd3cb0c7"}


def gml(*args, cwd=None, timeout=120):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([os.path.join(BIN, "gml-ray"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def old_store(tmp_path, release: str) -> str:
    wd = tmp_path / f"wd-{release}"
    wd.mkdir()
    shutil.copy(os.path.join(STORES, f"{release}.db"), wd / "gml.db")
    return str(wd)


def rows(path: str, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_schema_change_bumps_the_version():
    digest = hashlib.sha256(SCHEMA.encode()).hexdigest()
    assert SCHEMA_DIGESTS.get(SCHEMA_VERSION) == digest, (
        f"SCHEMA changed: bump SCHEMA_VERSION, add {{{SCHEMA_VERSION + 1}: '{digest}'}} here, "
        f"and keep every store in tests/data/stores opening")


@pytest.mark.parametrize("release", RELEASES)
def test_store_of_an_earlier_release_opens_and_upgrades(tmp_path, release):
    wd = old_store(tmp_path, release)
    db = os.path.join(wd, "gml.db")
    before = rows(db, "SELECT job_id, status, reward FROM jobs ORDER BY job_id")
    n_scalars = rows(db, "SELECT COUNT(*) FROM scalars")[0][0]

    listed = gml("ctl", "show", "--workdir", wd)
    assert listed.returncode == 0, listed.stderr
    assert "old" in listed.stdout and "FINISHED" in listed.stdout
    shown = gml("ctl", "show", "--task", "old", "--workdir", wd)
    assert shown.returncode == 0, shown.stderr
    assert all(f"job_000{i}" in shown.stdout for i in (1, 2, 3))
    scalars = gml("ctl", "show", "--task", "old", "--scalar", "--workdir", wd)
    assert scalars.returncode == 0 and "acc" in scalars.stdout, scalars.stderr

    # upgraded in place: the version stamped, nothing lost, every column of this schema there
    assert rows(db, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert rows(db, "SELECT job_id, status, reward FROM jobs ORDER BY job_id") == before
    assert rows(db, "SELECT COUNT(*) FROM scalars")[0][0] == n_scalars > 0
    task = Store(wd, create=False).require_task("old")
    assert {"elapsed_before", "compare", "source_dir", "objectives", "warm_start"} <= set(task) and "elapsed" not in task
    assert Store(wd, create=False).checkpoints("old") == []  # the table a later schema added
    assert 0 < run_time(task) < 600
    # the backup is the store as the earlier release left it, when anything had to change
    backups = [f for f in os.listdir(wd) if f.startswith("gml.db.v") and "-backup-" in f]
    # every earlier store lacks a column of this schema: it is copied before it is changed
    assert len(backups) == 1, os.listdir(wd)
    assert "upgraded the store" in listed.stderr and backups[0] in listed.stderr
    backup = os.path.join(wd, backups[0])
    assert rows(backup, "PRAGMA user_version")[0][0] == {"8793563": 1, "f79e464": 2}.get(release, 0)
    assert rows(backup, "SELECT job_id, status, reward FROM jobs ORDER BY job_id") == before
    # a second open changes nothing more
    again = gml("ctl", "show", "--workdir", wd)
    assert again.returncode == 0 and "upgraded" not in again.stderr
    assert len([f for f in os.listdir(wd) if f.startswith("gml.db.v") and "-backup-" in f]) == len(backups)


def test_elapsed_of_the_first_resume_release_becomes_the_earlier_attempts_time(tmp_path):
    wd = old_store(tmp_path, "c906443")
    db = os.path.join(wd, "gml.db")
    conn = sqlite3.connect(db)
    # a task resumed once under that release: 100 s before this attempt, which ran 30 s
    conn.execute("UPDATE tasks SET started = 1000, ended = 1030, elapsed = 130")
    conn.commit()
    conn.close()
    task = Store(wd, create=False).require_task("old")
    assert task["elapsed_before"] == pytest.approx(100.0)
    assert run_time(task) == pytest.approx(130.0)


def test_old_store_reads_on_a_store_opened_read_only(tmp_path):
    wd = old_store(tmp_path, "cc8f4e7")
    db = os.path.join(wd, "gml.db")
    with open(db, "rb") as f:
        raw = f.read()
    store = Store(wd, read_only=True)
    assert [j["status"] for j in store.jobs("old")] == ["FINISHED"] * 3
    assert store.require_task("old")["compare"] is None
    store.close()
    with open(db, "rb") as f:
        assert f.read() == raw  # read-only: upgraded in memory, the file untouched


def test_store_of_a_newer_release_is_refused_up_front(tmp_path):
    wd = old_store(tmp_path, "5f8dbea")
    db = os.path.join(wd, "gml.db")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreTooNew):
        Store(wd, create=False)
    for args in (["ctl", "show"], ["ctl", "show", "--task", "old"], ["ctl", "export", "--task", "old"]):
        result = gml(*args, "--workdir", wd, cwd=tmp_path)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"store schema version {SCHEMA_VERSION + 1}" in lines[0] and "newer gml-ray" in lines[0]
    (tmp_path / "cfg.yaml").write_text(
        "task:\n  template: python -c pass {x}\n  search_args: [{type: Categorical, name: x, data: [1]}]\n")
    ran = gml("run", str(tmp_path / "cfg.yaml"), "--task", "new", "--workdir", wd, cwd=tmp_path)
    assert ran.returncode == 1 and "newer gml-ray" in ran.stderr, ran
    assert rows(db, "SELECT name FROM tasks") == [("old",)]  # refused before any row was written
    assert rows(db, "PRAGMA user_version")[0][0] == SCHEMA_VERSION + 1
