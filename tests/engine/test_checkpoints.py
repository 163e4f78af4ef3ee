"""Checkpoints: the job-side calls, and jobs that restart from their last checkpoint (real Ray,
real job processes, a real store)."""
from __future__ import annotations

import json
import os

import pytest
from helpers.checkpointing import FUNCTION, TRAIN, checkpoint_config, curve_of, epochs_run, jobs_of, run_config

import gml_ray
from gml_ray import checkpoints, reporting

# ---- the job side, without Ray ------------------------------------------------------------------


@pytest.fixture
def job_env(tmp_path, monkeypatch):
    """A job's checkpoint environment, and the records it sends."""
    ckpt_dir = tmp_path / "job" / "checkpoints"
    monkeypatch.setenv(checkpoints.ENV_DIR, str(ckpt_dir))
    monkeypatch.delenv(checkpoints.ENV_RESTORE, raising=False)
    monkeypatch.delenv(checkpoints.ENV_RESTORE_STEP, raising=False)
    sent: list[dict] = []
    reporting.set_function_sink(sent.extend)
    reporting.reset_report_step()
    yield ckpt_dir, sent
    reporting.set_function_sink(None)
    reporting.reset_report_step()


def test_a_checkpoint_is_moved_to_its_final_name_then_announced(tmp_path, job_env):
    ckpt_dir, sent = job_env
    written = tmp_path / "state"
    written.mkdir()
    (written / "model.bin").write_bytes(b"x" * 100)
    final = gml_ray.checkpoint(str(written), 7)
    assert final == str(ckpt_dir / "ckpt-7")
    assert not written.exists() and (ckpt_dir / "ckpt-7" / "model.bin").read_bytes() == b"x" * 100
    assert [(r["ckpt"], r["s"], r["b"]) for r in sent] == [(final, 7, 100)]


def test_every_file_of_a_checkpoint_is_on_disk_before_the_rename_names_it(tmp_path, job_env, monkeypatch):
    # A power cut cannot run here: what it would lose is what was not fsynced before the rename.
    ckpt_dir, _ = job_env
    written = tmp_path / "state"
    (written / "sub").mkdir(parents=True)
    (written / "model.bin").write_bytes(b"m")
    (written / "sub" / "opt.bin").write_bytes(b"o")
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(("rename", str(b))), real_rename(a, b))[1])
    gml_ray.checkpoint(str(written), 2)
    renamed = events.index(("rename", str(ckpt_dir / "ckpt-2")))
    synced = {path for kind, path in events[:renamed] if kind == "fsync"}
    assert {str(written / "model.bin"), str(written / "sub" / "opt.bin"), str(written / "sub"),
            str(written)} <= synced
    assert ("fsync", str(ckpt_dir)) in events[renamed:]  # and the rename itself before the announcement


def test_the_same_step_again_replaces_the_checkpoint(tmp_path, job_env):
    ckpt_dir, _ = job_env
    for text in ("first", "second"):
        (tmp_path / "f.txt").write_text(text)
        gml_ray.checkpoint(str(tmp_path / "f.txt"), 3)
    assert (ckpt_dir / "ckpt-3").read_text() == "second"
    assert sorted(os.listdir(ckpt_dir)) == ["ckpt-3"]


@pytest.mark.parametrize("step", ["three", 2.5, None, True])
def test_a_step_that_is_no_integer_is_refused(tmp_path, job_env, step):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="step must be an integer"):
        gml_ray.checkpoint(str(tmp_path / "f"), step)
    assert job_env[1] == []


def test_a_missing_path_is_refused_and_nothing_is_announced(tmp_path, job_env):
    with pytest.raises(FileNotFoundError, match="nope"):
        gml_ray.checkpoint(str(tmp_path / "nope"), 1)
    assert job_env[1] == []


def test_a_fresh_job_has_no_checkpoint_and_counts_steps_from_0(job_env):
    _, sent = job_env
    assert gml_ray.get_checkpoint() is None and gml_ray.restored_step() is None
    gml_ray.SummaryWriter().add_scalar("acc", 1.0)
    gml_ray.report(loss=2.0)
    assert [r["s"] for r in sent] == [0, 0]


def test_a_restored_job_counts_its_steps_on_from_the_checkpoint(tmp_path, job_env, monkeypatch):
    _, sent = job_env
    (tmp_path / "ckpt").write_text("state")
    monkeypatch.setenv(checkpoints.ENV_RESTORE, str(tmp_path / "ckpt"))
    monkeypatch.setenv(checkpoints.ENV_RESTORE_STEP, "4")
    assert gml_ray.get_checkpoint() == str(tmp_path / "ckpt") and gml_ray.restored_step() == 4
    writer = gml_ray.SummaryWriter()
    writer.add_scalar("acc", 1.0)
    writer.add_scalar("acc", 1.1)
    gml_ray.report(loss=2.0)
    assert [r["s"] for r in sent] == [5, 6, 5]


def test_report_announces_its_checkpoint_at_its_step_after_its_scalars(tmp_path, job_env):
    ckpt_dir, sent = job_env
    for epoch in range(2):
        (tmp_path / "w").write_text(str(epoch))
        gml_ray.report(acc=0.5 + epoch, checkpoint=str(tmp_path / "w"))
    assert [("ckpt" if "ckpt" in r else r["t"], r["s"]) for r in sent] == [
        ("acc", 0), ("ckpt", 0), ("acc", 1), ("ckpt", 1)]
    assert (ckpt_dir / "ckpt-1").read_text() == "1"


# ---- jobs that restart from their checkpoint ------------------------------------------------------

def test_resume_restarts_a_command_job_from_its_checkpoint(ray_session, tmp_path):
    summary, store, _ = run_config(tmp_path, checkpoint_config(), {"train.py": TRAIN})
    assert summary["counts"] == {"ERROR": 2}
    summary, store, notices = run_config(tmp_path, checkpoint_config(), {"train.py": TRAIN}, resume=True)
    assert summary["counts"] == {"FINISHED": 2} and notices == []
    for job in store.jobs("t"):
        ran = epochs_run(job)
        # epochs 0-2 once in attempt 1; attempt 2 starts at 3, from the checkpoint of epoch 2
        assert [(a, e) for a, e, _ in ran] == [("1", "0"), ("1", "1"), ("1", "2"),
                                              ("2", "3"), ("2", "4"), ("2", "5")]
        assert ran[3][2].endswith(os.path.join(job["name"], "checkpoints", "ckpt-2"))
        x = job["config"]["x"]
        assert curve_of(store, job["job_id"]) == [(e, x * (e + 1)) for e in range(6)]  # one curve, no gap
        assert job["reward"] == x * 6 and job["attempt"] == 2


def test_resume_restarts_a_function_trial_from_its_checkpoint(ray_session, tmp_path):
    summary, store, _ = run_config(tmp_path, checkpoint_config(function="trial"), {"trial.py": FUNCTION})
    assert summary["counts"] == {"ERROR": 2}
    summary, store, _ = run_config(tmp_path, checkpoint_config(function="trial"), {"trial.py": FUNCTION}, resume=True)
    assert summary["counts"] == {"FINISHED": 2}
    for job in store.jobs("t"):
        assert epochs_run(job) == [("1", "0"), ("1", "1"), ("1", "2"), ("2", "3"), ("2", "4")]
        x = job["config"]["x"]
        assert curve_of(store, job["job_id"]) == [(e, x * (e + 1)) for e in range(5)]


def test_only_the_newest_checkpoints_are_kept(ray_session, tmp_path):
    summary, store, _ = run_config(tmp_path, checkpoint_config("python train.py {x} 6 99", keep=2), {"train.py": TRAIN})
    assert summary["counts"] == {"FINISHED": 2}
    for job in store.jobs("t"):
        ckpt_dir = os.path.join(job["job_dir"], "checkpoints")
        kept = sorted(n for n in os.listdir(ckpt_dir) if not n.startswith(".trash-"))
        assert kept == ["ckpt-4", "ckpt-5"]
        assert [r["step"] for r in store.checkpoints("t", job["job_id"])] == [4, 5]
    assert store.checkpoint_bytes("t") == sum(os.path.getsize(os.path.join(r["path"], "state.json"))
                                              for r in store.checkpoints("t"))


def test_a_missing_checkpoint_means_a_restart_from_scratch_with_one_warning(ray_session, tmp_path):
    run_config(tmp_path, checkpoint_config(), {"train.py": TRAIN})
    first = next(iter(jobs_of(tmp_path)))
    for name in os.listdir(os.path.join(first["job_dir"], "checkpoints")):
        checkpoints.remove_tree(os.path.join(first["job_dir"], "checkpoints", name))
    summary, store, notices = run_config(tmp_path, checkpoint_config(), {"train.py": TRAIN}, resume=True)
    assert summary["counts"] == {"FINISHED": 2}
    assert len(notices) == 1 and "job_0001" in notices[0] and "starts from scratch" in notices[0]
    again = store.jobs("t", ["job_0001"])[0]
    assert [(a, e) for a, e, _ in epochs_run(again)][3:] == [("2", str(e)) for e in range(6)]
    assert [s for s, _ in curve_of(store, 1)] == list(range(6))


def test_a_checkpoint_never_announced_is_never_restored(ray_session, tmp_path):
    run_config(tmp_path, checkpoint_config(), {"train.py": TRAIN})
    jobs = jobs_of(tmp_path)
    # a checkpoint under a final name the store was never told of (its announcement was lost)
    stray = os.path.join(jobs[0]["job_dir"], "checkpoints", "ckpt-9")
    os.makedirs(stray)
    with open(os.path.join(stray, "state.json"), "w") as f:
        json.dump({"sum": 1000.0}, f)
    summary, store, _ = run_config(tmp_path, checkpoint_config(), {"train.py": TRAIN}, resume=True)
    assert summary["counts"] == {"FINISHED": 2}
    ran = epochs_run(store.jobs("t", ["job_0001"])[0])
    assert ran[3][2].endswith("ckpt-2") and not os.path.exists(stray)



def test_ctl_shows_checkpoint_bytes_and_exports_them_only_when_asked(ray_session, tmp_path):
    import tarfile

    from helpers.cli import gml

    run_config(tmp_path, checkpoint_config("python train.py {x} 3 99", keep=1), {"train.py": TRAIN})
    shown = gml("ctl", "show", "--workdir", "wd", cwd=tmp_path)
    assert shown.returncode == 0 and "checkpoints" in shown.stdout, shown.stdout
    for flag, carried in (([], False), (["--checkpoints"], True)):
        tar_path = tmp_path / f"t{len(flag)}.tar.gz"
        out = gml("ctl", "export", "--task", "t", "--tar-path", str(tar_path), *flag, "--workdir", "wd", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        names = tarfile.open(tar_path).getnames()
        assert any(n.endswith("checkpoints/ckpt-2/state.json") for n in names) == carried
        assert any(n.endswith("epochs.log") for n in names)
        imported = gml("ctl", "import", "--tar-path", str(tar_path), "--task", f"copy{len(flag)}",
                       "--workdir", "wd2", cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        from gml_ray.store import Store
        rows = Store(str(tmp_path / "wd2"), create=False).checkpoints(f"copy{len(flag)}")
        assert len(rows) == (2 if carried else 0)
        assert all(os.path.isfile(os.path.join(r["path"], "state.json")) and "wd2" in r["path"] for r in rows)
