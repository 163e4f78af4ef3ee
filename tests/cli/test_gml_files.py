"""GML users' files as printed in the manual, through the real CLI (examples/gml_manual).

The manual's 2.1 template (srun + a script reporting through pavi), its 2.2.2 search_args, the
section 6 MuJoCo config without func_type, OpenMMLab configs with _base_, and the outcomes a GML
user relies on (exit codes, summary.yaml, MOCK_PAVI).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml
from helpers import REPO_DIR, write_files
from helpers.cli import BIN

from gml_ray.reporting import PAVI_COMPAT_DIR
from gml_ray.store import Store

MANUAL = os.path.join(REPO_DIR, "examples", "gml_manual")

# The manual's mnist.py in its shape (same flags, pavi reporting) but instant: it records what it
# was given and reports one value of each kind the manual shows (tensor, numpy scalar, float).
FAKE_MNIST = """
import argparse, json, os, sys
import numpy as np, yaml
from pavi import SummaryWriter
p = argparse.ArgumentParser()
p.add_argument('--config'); p.add_argument('--batch-size', type=int)
p.add_argument('--log-interval', type=int); p.add_argument('--pavi', action='store_true')
a = p.parse_args()
cfg = yaml.safe_load(open(a.config))
json.dump({'batch_size': a.batch_size, 'log_interval': a.log_interval, 'cfg': cfg,
           'pavi': sys.modules['pavi'].__file__},
          open(os.path.join(os.environ['GML_JOB_DIR'], 'seen.json'), 'w'))
w = SummaryWriter('mnist')
acc = 0.5 + a.batch_size / 1e4 + cfg['epochs'] / 100
if os.environ['GML_JOB_ID'] == '1':  # a one-element tensor, as the manual's example (torch is slow to import)
    import torch
    w.add_scalar('Test Acc', torch.tensor([acc - 0.02]), 0)
else:
    w.add_scalar('Test Acc', acc - 0.02, 0)
w.add_scalar('Test Acc', np.float32(acc - 0.01), 1)
w.add_scalar('Test Acc', acc, 2)
w.add_image('sample', None, 2)  # pavi's other calls are accepted
"""

# A user's own pavi (installed, or beside the script) must win over gml-ray's compat module.
FAKE_PAVI = """
import os
from gml_ray import SummaryWriter as _W
open(os.path.join(os.environ['GML_JOB_DIR'], 'own_pavi_used'), 'w').close()
class SummaryWriter(_W):
    def add_image(self, *args, **kwargs):  # a real pavi has it (the manual's script calls it)
        pass
"""


@pytest.fixture
def gml(ray_head):
    """Run the CLI; `gml-ray run` joins the session's Ray head."""
    def _gml(*args, cwd, env=None, timeout=180):
        if args[0] == "run":
            args = (*args, "--address", ray_head)
        return subprocess.run([os.path.join(BIN, "gml-ray"), *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "COLUMNS": "250", "RAY_AUTH_MODE": "disabled",
                                                    **(env or {})})
    return _gml


def manual_dir(tmp_path, *names, fake_mnist=True):
    """The manual example's files copied into tmp_path/code (mnist.py replaced by the fast one)."""
    code = tmp_path / "code"
    code.mkdir()
    for name in ("search_config.yaml", "config.yaml", *names):
        shutil.copy(os.path.join(MANUAL, name), code / name)
    if fake_mnist:
        write_files(code, {"mnist.py": FAKE_MNIST})
    return code


def seen(store, task):
    return [json.load(open(os.path.join(j["job_dir"], "seen.json"))) for j in store.jobs(task)]


def test_manual_2_1_with_srun_and_pavi_runs_as_printed(tmp_path, gml):
    code = manual_dir(tmp_path)
    out = gml("run", "search_config.yaml", "--task", "m21", "--workdir", "wd", cwd=code)
    assert out.returncode == 0, out.stdout + out.stderr
    # Once: what became of the srun options.
    assert out.stderr.count("note: srun in task.template") == 1
    assert "--gres gpu:1 -> num_gpus 1" in out.stderr and "dropped --partition pat_dev" in out.stderr
    assert "compare compare_new: gml-ray ctl report --task m21" in out.stdout
    store = Store(str(code / "wd"), create=False)
    jobs = store.jobs("m21")
    assert [j["status"] for j in jobs] == ["FINISHED", "FINISHED"]  # max_tries: 2
    assert all(j["command"].startswith("python mnist.py --config ") for j in jobs)
    for j, s in zip(jobs, seen(store, "m21")):
        assert s["pavi"].startswith(PAVI_COMPAT_DIR)  # gml-ray's compat module
        assert s["cfg"]["epochs"] == j["arg_dict"]["config(epochs)"]
        rows = store.scalars("m21", [j["job_id"]], ["Test Acc"])
        assert [r["step"] for r in rows] == [0, 1, 2] and all(r["flag"] == 0 for r in rows)
        assert j["reward"] == pytest.approx(rows[-1]["value"])
    show = gml("ctl", "show", "--workdir", "wd", cwd=code).stdout
    assert "compare_new" in show


def test_a_users_own_pavi_wins(tmp_path, gml):
    code = manual_dir(tmp_path)
    write_files(code, {"pavi/__init__.py": FAKE_PAVI})
    out = gml("run", "search_config.yaml", "--task", "own", "--workdir", "wd", cwd=code)
    assert out.returncode == 0, out.stdout + out.stderr
    store = Store(str(code / "wd"), create=False)
    for j in store.jobs("own"):
        assert j["status"] == "FINISHED"
        assert os.path.exists(os.path.join(j["job_dir"], "own_pavi_used"))
        assert j["reward"] is not None
    assert all(s["pavi"].startswith(str(code)) for s in seen(store, "own"))


def test_a_gpu_request_no_node_can_meet_is_one_line(tmp_path, gml):
    code = manual_dir(tmp_path)
    text = (code / "search_config.yaml").read_text().replace("--gres gpu:1", "--gres gpu:2")
    (code / "search_config.yaml").write_text(text)  # the head has 1 GPU
    out = gml("run", "search_config.yaml", "--task", "g", "--workdir", "wd", cwd=code)
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr.strip().splitlines()[-1]
    assert "no node of the Ray cluster can run a job" in err and "--num-gpus" in err
    assert "Traceback" not in out.stderr


def test_manual_2_2_2_args_later_value_wins_and_each_config_runs_once(tmp_path, gml):
    code = manual_dir(tmp_path, "search_config_2_2_2.yaml")
    out = gml("run", "search_config_2_2_2.yaml", "--task", "a222", "--workdir", "wd", cwd=code)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.count("sets 'batch-size' after task.search_args[0]: the later value wins") == 1
    assert "does not use 'lr'" in out.stderr
    store = Store(str(code / "wd"), create=False)
    jobs = store.jobs("a222")
    # log-interval 2 x Nested 2 x (epochs 2 x scheduler Nested 2): the batch-size Categorical is
    # always overridden by the Nested dict, so it adds no jobs.
    assert len(jobs) == 16 and all(j["status"] == "FINISHED" for j in jobs)
    keys = {json.dumps(j["arg_dict"], sort_keys=True) for j in jobs}
    assert len(keys) == 16
    for j, s in zip(jobs, seen(store, "a222")):
        args = j["arg_dict"]
        assert (args["lr"], args["batch-size"]) in [(0.5, 512), (1, 1024)]
        assert s["batch_size"] == args["batch-size"]  # the Nested value reached the command line
        assert s["cfg"]["scheduler"]["gamma"] == args["config(scheduler.gamma)"]


def test_a_run_where_no_job_got_a_reward_exits_1_naming_the_failure(tmp_path, gml):
    write_files(tmp_path, {"search_config.yaml": """
        task:
          template: "srun -p dev -n1 no_such_program_xyz --x {x}"
          search_args:
            - {type: Categorical, name: x, data: [1, 2]}
        scheduler: {parallel_size: 2}
        """})
    out = gml("run", "search_config.yaml", "--task", "bad", "--workdir", "wd", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "no job of bad finished with a reward" in last and "2 ERROR: exit code 127" in last
    # ctl rm twice: summary.yaml keeps both summaries
    write_files(tmp_path, {"ok.yaml": """
        task:
          template: "true {x}"
          search_args:
            - {type: Categorical, name: x, data: [1]}
        metrics: none
        """})
    assert gml("run", "ok.yaml", "--task", "ok", "--workdir", "wd", cwd=tmp_path).returncode == 0
    listing = gml("ctl", "show", "--workdir", "wd", cwd=tmp_path).stdout
    header = next(line for line in listing.splitlines() if "task" in line and "status" in line)
    assert all(col in header for col in ("early stopped", "killed", "error"))
    bad_row = next(line for line in listing.splitlines() if line.strip("│ ").startswith("bad "))
    assert [c.strip() for c in bad_row.split("│") if c.strip()][2:8] == ["2", "0", "0", "0", "0", "2"]
    for task in ("bad", "ok"):
        assert gml("ctl", "rm", "--task", task, "--workdir", "wd", cwd=tmp_path).returncode == 0
    summaries = yaml.safe_load((tmp_path / "summary.yaml").read_text())
    assert [s["task"]["name"] for s in summaries] == ["bad", "ok"]
    assert [j["status"] for j in summaries[0]["jobs"]] == ["ERROR", "ERROR"]


def test_mock_pavi_2_runs_jobs_without_scalars_and_refuses_what_needs_them(tmp_path, gml):
    code = manual_dir(tmp_path)
    env = {"MOCK_PAVI": "2"}
    out = gml("run", "search_config.yaml", "--task", "m2", "--workdir", "wd", cwd=code, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    store = Store(str(code / "wd"), create=False)
    assert [j["status"] for j in store.jobs("m2")] == ["FINISHED", "FINISHED"]
    assert store.scalars("m2") == []  # API-compatible, nothing collected
    text = (code / "search_config.yaml").read_text().replace("type: GridSearcher", "type: SkoptSearcher")
    (code / "skopt.yaml").write_text(text)
    out = gml("run", "skopt.yaml", "--task", "m3", "--workdir", "wd", cwd=code, env=env)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "searcher.type: SkoptSearcher learns from rewards, which MOCK_PAVI=2" in errors[0]


def test_manual_section_6_mujoco_config_without_func_type(tmp_path, gml):
    code = tmp_path / "code"
    code.mkdir()
    text = open(os.path.join(MANUAL, "mujoco_search_config.yaml")).read()
    (code / "search_config.yaml").write_text(text.replace("max_tries: 10000", "max_tries: 3"))
    out = gml("run", "search_config.yaml", "--task", "swim", "--workdir", "wd",
              "--benchmark", cwd=code)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "note: scheduler.func_type is not set: swimmer (16 search args)" in out.stderr
    jobs = Store(str(code / "wd"), create=False).jobs("swim")
    assert len(jobs) == 3 and all(j["status"] == "FINISHED" and j["reward"] is not None for j in jobs)


def test_openmmlab_config_with_base_renders_self_contained(tmp_path, gml):
    pytest.importorskip("mmengine", reason="the mmcv extra (pip install 'gml-ray[mmcv]') is not installed")
    write_files(tmp_path, {
        "configs/_base_/schedule.py": """
            optimizer = dict(type='SGD', lr=0.01, momentum=0.9)
            total_epochs = 12
            """,
        "configs/model.py": """
            _base_ = ['./_base_/schedule.py']
            import math
            model = dict(type='ResNet', depth=50, widths=[2 ** i for i in range(4)])
            runner = dict(max_epochs={{_base_.total_epochs}})
            scale = math.sqrt(4)
            """,
        "train.py": """
            import os, sys
            from mmengine import Config
            from gml_ray import report
            cfg = Config.fromfile(sys.argv[1])
            assert os.path.dirname(os.path.abspath(sys.argv[1])) == os.environ['GML_JOB_DIR']
            report(acc=cfg.optimizer.lr, depth=cfg.model.depth, epochs=cfg.runner.max_epochs,
                   momentum=cfg.optimizer.momentum, scale=cfg.scale, width=cfg.model.widths[3])
            """,
        "search_config.yaml": """
            task:
              template: "python train.py {cfg}"
              search_args:
                - type: File
                  name: cfg
                  file: configs/model.py
                  args:
                    - {type: Categorical, name: optimizer.lr, data: [0.1, 0.2]}
                    - {type: Categorical, name: model.depth, data: [101]}
            """})
    out = gml("run", "search_config.yaml", "--task", "mm", "--workdir", "wd", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    store = Store(str(tmp_path / "wd"), create=False)
    for j in store.jobs("mm"):
        got = {r["tag"]: r["value"] for r in store.scalars("mm", [j["job_id"]])}
        assert got == {"acc": j["arg_dict"]["cfg(optimizer.lr)"], "depth": 101, "epochs": 12,
                       "momentum": 0.9, "scale": 2.0, "width": 8}
        rendered = open(os.path.join(j["job_dir"], "model.py")).read()
        assert "_base_" not in rendered and "import" not in rendered


def test_rendered_yaml_keeps_the_base_files_comments(tmp_path):
    from gml_ray.config import load_config
    from gml_ray.config.render import render_job
    write_files(tmp_path, {
        "base.yaml": """
            # training settings
            epochs: 3      # how long
            optim:
              lr: 0.1      # searched
              betas: [0.9, 0.99]
            """,
        "s.yaml": """
            task:
              template: "python t.py {c}"
              search_args:
                - type: File
                  name: c
                  file: base.yaml
                  args: [{type: Categorical, name: optim.lr, data: [0.5]}]
            """})
    cfg = load_config(str(tmp_path / "s.yaml"))
    job = render_job(cfg.search_space(), {"c": {"optim.lr": 0.5}}, str(tmp_path / "job"), cfg.template,
                     cfg.file_bases)
    job.write_files()
    text = (tmp_path / "job" / "base.yaml").read_text()
    assert "# training settings" in text and "# how long" in text and "# searched" in text
    assert yaml.safe_load(text) == {"epochs": 3, "optim": {"lr": 0.5, "betas": [0.9, 0.99]}}
    assert job.command == f"python t.py {tmp_path / 'job' / 'base.yaml'}"


def test_explicit_assessor_optimize_mode_is_honoured(tmp_path):
    from gml_ray.config import parse_config
    from gml_ray.engine.components import build_components
    raw = {"task": {"template": "python t.py {x}",
                    "search_args": [{"type": "Categorical", "name": "x", "data": [1, 2]}]},
           "searcher": {"optimize_mode": "maximize"},
           "scheduler": {"assessor": {"type": "MedianStopAssessor", "optimize_mode": "minimize"}}}
    comps = build_components(parse_config(raw, "s.yaml", str(tmp_path)))
    assert comps.assessor.optimize_mode == "minimize"
    del raw["scheduler"]["assessor"]["optimize_mode"]
    assert build_components(parse_config(raw, "s.yaml", str(tmp_path))).assessor.optimize_mode == "maximize"


def test_build_stop_criterion_reads_values_as_the_yaml_does():
    import math

    from gml_ray.errors import ConfigError
    from gml_ray.schedulers import build_stop_criterion
    crit = build_stop_criterion({"max_tries": 10, "time_limits": "1h", "max_reward": "inf",
                                 "time_limits_per_job": 1})
    assert (crit.max_tries, crit.time_limits, crit.max_reward, crit.time_limits_per_job) == \
        (10, 3600, math.inf, 3600)
    with pytest.raises(ConfigError, match="time_limits"):
        build_stop_criterion({"time_limits": "soon"})


def test_scalar_view_labels_each_attempt_of_a_resumed_job():
    from gml_ray.cli.views import scalars_table
    jobs = [{"job_id": 1, "name": "job_0001"}, {"job_id": 2, "name": "job_0002"}]
    rows = [{"job_id": 1, "tag": "acc", "step": s, "value": v, "text": None, "attempt": a}
            for a, s, v in [(1, 0, 0.1), (1, 1, 0.2), (2, 0, 0.3)]]
    rows.append({"job_id": 2, "tag": "acc", "step": 0, "value": 0.5, "text": None, "attempt": 1})
    grid = scalars_table(jobs, rows)
    assert [(r[0], r[2]) for r in grid.rows] == [("job_0001 (attempt 1)", "0 1"),
                                                 ("job_0001 (attempt 2)", "0"), ("job_0002", "0")]
