"""TensorBoard export: every scalar and each job's args (HParams), read back with TensorBoard's reader."""
from __future__ import annotations

import glob
import math
import os

import pytest
import typer
from helpers.stores import make_store
from typer.testing import CliRunner

from gml_ray.views.tensorboard import export_job, export_job_quietly, export_task

pytest.importorskip("tensorboardX")
ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="reading events back needs the tensorboard package")


def read_run(run_dir):
    """(scalars {tag: [(step, value)]}, texts {tag: [(step, text)]}, hparams, end status) of a run."""
    from tensorboard.plugins.hparams import metadata

    acc = ea_mod.EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    texts = {t[: -len("/text_summary")]: [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(t)]
             for t in acc.Tags()["tensors"] if t.endswith("/text_summary")}
    try:
        content = acc.PluginTagToContent("hparams")
    except KeyError:  # a run without an HParams session
        content = {}
    hparams, status = None, None
    if "_hparams_/session_start_info" in content:
        info = metadata.parse_session_start_info_plugin_data(content["_hparams_/session_start_info"])
        hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
    if "_hparams_/session_end_info" in content:
        from tensorboard.plugins.hparams import api_pb2
        end = metadata.parse_session_end_info_plugin_data(content["_hparams_/session_end_info"])
        status = api_pb2.Status.Name(end.status)
    return scalars, texts, hparams, status


def test_every_scalar_and_the_args_read_back(tmp_path):
    store = make_store(tmp_path, jobs=5, steps=7, args=lambda i: {
        "lr": 0.001 * i, "opt": ["sgd", "adam"][i % 2], "nested": {"a": i}, "flag": i == 2})
    store.update_job("t", 3, status="ERROR")
    store.update_job("t", 4, status="EARLY_STOPPED")  # an assessor's stop: ended as planned
    store.update_job("t", 5, status="KILLED")
    store.add_scalars("t", [(1, "odd", None, float("nan"), None, 1), (1, "odd", None, float("inf"), None, 1),
                            (1, "odd", None, 2.5, None, 1), (1, "note", 4, "not a number", None, 1)])
    logdir, n_jobs, n_scalars = export_task(store, "t")
    assert logdir == str(tmp_path / "wd" / "tasks" / "t" / "tensorboard")
    assert (n_jobs, n_scalars) == (5, 5 * 7 * 2 + 4)
    assert sorted(os.listdir(logdir)) == [f"job_000{i}" for i in range(1, 6)]

    for job in store.jobs("t"):
        scalars, texts, hparams, status = read_run(os.path.join(logdir, job["name"]))
        expected: dict = {}
        for s in store.scalars("t", [job["job_id"]]):
            if s["value"] is not None or s["flag"] == 1:
                expected.setdefault(s["tag"], []).append(s)
        assert set(scalars) == set(expected)
        for tag, rows in expected.items():
            got = scalars[tag]
            assert [st for st, _ in got] == [r["step"] if r["step"] is not None else i for i, r in enumerate(rows)]
            for (_, v), r in zip(got, rows):
                if math.isnan(r["value"]):
                    assert math.isnan(v)
                else:
                    assert v == pytest.approx(r["value"], rel=1e-6)
        assert hparams["lr"] == pytest.approx(job["arg_dict"]["lr"])
        assert hparams["opt"] == job["arg_dict"]["opt"] and hparams["nested"] == f'{{"a": {job["job_id"]}}}'
        assert hparams["flag"] is (job["job_id"] == 2)
        assert status == {"FINISHED": "STATUS_SUCCESS", "EARLY_STOPPED": "STATUS_SUCCESS",
                          "ERROR": "STATUS_FAILURE", "KILLED": "STATUS_FAILURE"}[job["status"]]
        if job["job_id"] == 1:
            assert texts == {"note": [(4, "not a number")]}


def test_export_again_replaces_and_attempts_are_separate_runs(tmp_path):
    store = make_store(tmp_path, jobs=1, steps=0, tags=("acc",))
    store.add_scalars("t", [(1, "acc", s, 1.0 + s, None, 1) for s in range(3)])
    store.add_scalars("t", [(1, "acc", s, 10.0 + s, None, 2) for s in range(5)])
    store.update_job("t", 1, status="RUNNING", attempt=2)
    logdir = str(tmp_path / "tb")
    for _ in range(2):
        export_job(store, "t", 1, logdir)
    run = os.path.join(logdir, "job_0001")
    assert len(glob.glob(os.path.join(run, "events.out.tfevents.*"))) == 1
    scalars, _, hparams, status = read_run(run)
    assert [v for _, v in scalars["acc"]] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert hparams == {"lr": pytest.approx(0.001), "opt": "adam"} and status is None  # still running
    earlier, _, hp1, _ = read_run(os.path.join(run, "attempt_1"))
    assert [v for _, v in earlier["acc"]] == [1.0, 2.0, 3.0] and hp1 is None


def test_the_scheduler_hook_never_raises(tmp_path, caplog):
    store = make_store(tmp_path, jobs=1)
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    export_job_quietly(store, "t", {"job_id": 1, "name": "job_0001", "arg_dict": {}, "status": "FINISHED"},
                       str(blocker))
    assert "could not write TensorBoard events" in caplog.text


def test_export_tb_command(tmp_path):
    from gml_ray.cli.report_cmds import register
    make_store(tmp_path, jobs=3, steps=2)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["export-tb", "--task", "t", "--workdir", str(tmp_path / "wd"),
                                      "--jobs", "1,job_0003", "--logdir", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    assert "wrote 8 scalars of 2 jobs" in result.output and "tensorboard --logdir" in result.output
    assert sorted(os.listdir(tmp_path / "tb")) == ["job_0001", "job_0003"]


TRAIN = """
import sys
from gml_ray import SummaryWriter
x = float(sys.argv[1])
w = SummaryWriter()
for e in range(3):
    w.add_scalar("acc", x * (e + 1), e)
    w.add_scalars("val", {"loss": 1.0 / (e + 1)}, e)
"""


def test_tensorboard_true_writes_each_job_when_it_ends(run_task):
    """Needs `tensorboard:` in gml_ray/config.py and the hook in SchedulerCore._finish."""
    run = run_task("""
task:
  template: "python train.py {x}"
  search_args:
    - {type: Categorical, name: x, data: [0.1, 0.2]}
searcher: {type: GridSearcher, reward_attribute: acc}
scheduler: {parallel_size: 2}
tensorboard: true
""", {"train.py": TRAIN}, task="tb")
    logdir = os.path.join(run.work_dir, "tasks", "tb", "tensorboard")
    assert sorted(os.listdir(logdir)) == ["job_0001", "job_0002"]
    for job in run.jobs:
        scalars, _, hparams, status = read_run(os.path.join(logdir, job["name"]))
        assert sorted(scalars) == ["acc", "loss"]
        assert [v for _, v in scalars["acc"]] == pytest.approx([job["arg_dict"]["x"] * k for k in (1, 2, 3)])
        assert hparams == {"x": pytest.approx(job["arg_dict"]["x"])} and status == "STATUS_SUCCESS"
