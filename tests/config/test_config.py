"""search_config.yaml parsing: the manual's typical config, and config mistakes as the CLI reports them."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import DATA_DIR

from gml_ray.config.task import load_config, parse_config
from gml_ray.config.validate import parse_duration, parse_reward_limit
from gml_ray.errors import ConfigError

GML_RAY = os.path.join(os.path.dirname(sys.executable), "gml-ray")

DATA = os.path.join(DATA_DIR, "config")


def data(name: str) -> str:
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return f.read()


# The File arg's template file (manual 2.1 uses config.yaml with epochs and a scheduler section),
# and the manual's section 2.1 config, verbatim apart from indentation.
FILE_ARG_YAML = data("config.yaml")
MANUAL_CONFIG = data("manual_search_config.yaml")


def write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def manual_config(tmp_path):
    """The manual's 2.1 config and its config.yaml, parsed."""
    write(tmp_path / "config.yaml", FILE_ARG_YAML)
    return load_config(write(tmp_path / "search_config.yaml", MANUAL_CONFIG))


# ---- the manual's typical config ---------------------------------------------------------------

def test_manual_config_search_args(manual_config):
    cfg = manual_config
    assert [(a.type, a.name) for a in cfg.search_args] == [
        ("Categorical", "batch-size"), ("Categorical", "log-interval"), ("File", "config")]
    batch, log_interval, file_arg = cfg.search_args
    assert batch.data == [1024, 512]
    assert log_interval.data == [10, 20]
    assert [c.type for c in file_arg.args] == ["Categorical", "Nested"]
    assert file_arg.args[0].data == [3, 4, 5]
    assert file_arg.args[1].data == [{"scheduler.step_size": 1, "scheduler.gamma": 0.5},
                                     {"scheduler.step_size": 2, "scheduler.gamma": 0.7}]
    assert file_arg.place_holder == "file_art"
    assert file_arg.file == os.path.join(cfg.base_dir, "config.yaml")
    # four searched leaves: two plain args, and the File arg's two children
    assert list(cfg.search_space().kwspaces) == [
        "batch-size", "log-interval", "config.epochs", f"config.{file_arg.args[1].name}"]


def test_manual_config_sections(manual_config):
    cfg = manual_config
    assert cfg.searcher.type == "GridSearcher"
    assert cfg.reward_attribute == "Test Acc"
    assert cfg.optimize_mode == "maximize"
    assert cfg.parallel_size == 1
    assert cfg.stop.max_tries == 2
    assert cfg.stop.time_limits == 3600  # a bare number is hours
    assert cfg.stop.time_limits_per_job == 3600
    assert cfg.stop.max_reward == math.inf
    assert cfg.pavi_scalars == ["Test Acc"]
    assert cfg.compare_name == "compare_new"
    assert cfg.generate_log is True
    assert cfg.warnings == []  # use_spe: False warns about nothing


def test_manual_template_line_continuations_are_joined_and_srun_becomes_resources(manual_config):
    # Jobs run the command after `srun -p pat_dev -n1 --gres gpu:1`; the GPU is a Ray resource.
    assert manual_config.template == (
        "python mnist.py --config '{config}' "
        "--batch-size {batch-size} --log-interval {log-interval} --pavi")
    assert manual_config.resources == {"num_gpus": 1, "num_cpus": 1}
    assert manual_config.notices == ["srun in task.template: jobs run the command after it on Ray; "
                                     "--gres gpu:1 -> num_gpus 1; dropped --partition pat_dev --ntasks 1"]


def test_defaults(tmp_path):
    cfg = parse_config({"task": {"template": "python t.py {a}",
                                 "search_args": [{"type": "Int", "name": "a", "data": [1, 3]}]}},
                       "s.yaml", str(tmp_path))
    assert cfg.searcher.type == "GridSearcher"
    assert cfg.reward_attribute == "acc"
    assert cfg.optimize_mode == "maximize"
    assert cfg.parallel_size == 1
    assert cfg.resources == {"num_cpus": 1}
    assert cfg.stop.max_tries is None and cfg.stop.max_reward == math.inf


def test_search_args_accepts_args_or_search_args_in_file(tmp_path):
    write(tmp_path / "config.yaml", FILE_ARG_YAML)
    raw = {"task": {"template": "python t.py --config {config}",
                    "search_args": [{"type": "File", "name": "config", "file": "config.yaml",
                                     "args": [{"type": "Categorical", "name": "epochs", "data": [5, 10]}]}]}}
    cfg = parse_config(raw, "s.yaml", str(tmp_path))
    assert [c.name for c in cfg.search_args[0].args] == ["epochs"]


def test_literal_braces_and_shell_variables_need_no_search_arg(tmp_path):
    raw = {"task": {"template": "python t.py --out ${HOME}/{{run}} --a {a}",
                    "search_args": [{"type": "Int", "name": "a", "data": [1, 3]}]}}
    assert parse_config(raw, "s.yaml", str(tmp_path)).template.startswith("python t.py --out ${HOME}")


def test_manual_scheduler_section(tmp_path):
    """Manual 2.4: time_limits: 1h, time_limits_per_job: 1 (hours), parallel_size: 4."""
    path = write(tmp_path / "s.yaml", T + textwrap.dedent("""\
        scheduler:
            type: FIFO
            parallel_size: 4
            stop_criterion:
                max_tries: 10
                time_limits: 1h
                max_reward: inf
                time_limits_per_job: 1
        """))
    cfg = load_config(path)
    assert (cfg.parallel_size, cfg.stop.max_tries) == (4, 10)
    assert cfg.stop.time_limits == cfg.stop.time_limits_per_job == 3600
    assert cfg.stop.max_reward == math.inf


def test_use_spe_and_ckpt_save_path_warn(tmp_path):
    raw = {"task": {"template": "python t.py {a}",
                    "search_args": [{"type": "Int", "name": "a", "data": [1, 3]}]},
           "searcher": {"ckpt_save_path": "pavi:/x"}, "use_spe": True}
    cfg = parse_config(raw, "s.yaml", str(tmp_path))
    assert len(cfg.warnings) == 2
    assert "ckpt_save_path" not in cfg.searcher.kwargs


def test_config_error_names_file_and_path(tmp_path):
    path = write(tmp_path / "s.yaml", """\
        task:
          template: "python t.py {a}"
          search_args:
            - {type: Int, name: a, data: [5]}
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == "task.search_args[0].data"
    assert str(info.value).startswith(f"{path}: task.search_args[0].data: ")


# ---- config mistakes through the real CLI -------------------------------------------------------

T = 'task:\n  template: "python train.py --lr {lr}"\n  search_args:\n    - {type: Categorical, name: lr, data: [0.1, 0.01]}\n'

BAD_CONFIGS = [
    pytest.param("""\
        task:
          template: "python t.py {lr} {epochs}"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
            - {type: Int, name: epochs, data: [5]}
        """, "task.search_args[1].data", "Int needs [low, high], got [5]", id="int-one-bound"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Real, name: lr, data: [0.5, 0.1]}
        """, "task.search_args[0].data", "low < high", id="real-low-above-high"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Real, name: lr, data: [0, 1], log: true}
        """, "task.search_args[0].data", "low > 0", id="real-log-from-zero"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Categorical, name: lr, data: []}
        """, "task.search_args[0].data", "non-empty list", id="categorical-empty"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Categorial, name: lr, data: [1, 2]}
        """, "task.search_args[0].type", "did you mean 'Categorical'", id="unknown-arg-type"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Int, name: lr, data: [1, 9], setp: 2}
        """, "task.search_args[0].setp", "did you mean 'step'", id="unknown-key-in-arg"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Int, name: lr, data: [1, 9], step: 0.5}
        """, "task.search_args[0].step", "positive integer", id="int-fractional-step"),
    pytest.param(T + "searcherr:\n  type: GridSearcher\n", "searcherr", "did you mean 'searcher'",
                 id="unknown-top-level-key"),
    pytest.param(T + "scheduler:\n  paralel_size: 2\n", "scheduler.paralel_size",
                 "did you mean 'parallel_size'", id="unknown-key-in-scheduler"),
    pytest.param(T + "scheduler:\n  stop_criterion: {max_trys: 3}\n",
                 "scheduler.stop_criterion.max_trys", "did you mean 'max_tries'",
                 id="unknown-key-in-stop-criterion"),
    pytest.param("""\
        task:
          template: "python t.py --lr {lr} --bs {batch-size}"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
        """, "task.template", "placeholder {batch-size} has no search arg", id="placeholder-without-arg"),
    pytest.param("""\
        task:
          template: "srun -p dev -n 4 --gres gpu:1 python t.py --lr {lr}"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
        """, "task.template", "--ntasks 4: a gml-ray job is one process", id="srun-several-tasks"),
    pytest.param("""\
        task:
          template: "srun --frobnicate 3 python t.py --lr {lr}"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
        """, "task.template", "srun option --frobnicate is not known", id="srun-unknown-option"),
    pytest.param("""\
        task:
          template: "python t.py --lr {lr}"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
            - {type: Categorical, name: lr, data: [0.2]}
        """, "task.search_args[1].name", "'lr' is declared twice", id="duplicate-arg-name"),
    pytest.param("""\
        task:
          template: "python t.py --lr {lr"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
        """, "task.template", "malformed placeholder", id="malformed-brace"),
    pytest.param("""\
        task:
          function: "train.main"
          search_args:
            - {type: Categorical, name: lr, data: [0.1]}
        """, "task.function", "module:callable", id="function-malformed"),
    pytest.param("""\
        task:
          template: "python t.py --config {config}"
          search_args:
            - type: File
              name: config
              file: missing.yaml
              search_args:
                - {type: Categorical, name: epochs, data: [1, 2]}
        """, "task.search_args[0].file", "missing.yaml does not exist", id="file-arg-missing-file"),
    pytest.param("""\
        task:
          template: "python t.py --config {config}"
          search_args:
            - type: File
              name: config
              file: config.yaml
              search_args:
                - {type: Categorical, name: epochs, data: [1, 2]}
                - {type: Categorical, name: optim.lr, data: [0.1]}
        """, "task.search_args[0].search_args[1]", "has no key 'optim'", id="file-arg-missing-parent-key"),
    pytest.param(T + "scheduler:\n  parallel_size: 0\n", "scheduler.parallel_size", "positive integer",
                 id="parallel-size-zero"),
    pytest.param(T + "scheduler:\n  stop_criterion: {max_tries: 0}\n", "scheduler.stop_criterion.max_tries",
                 "positive integer", id="max-tries-zero"),
    pytest.param(T + "searcher:\n  optimize_mode: max\n", "searcher.optimize_mode", "maximize or minimize",
                 id="optimize-mode-max"),
    pytest.param(T + "scheduler:\n  stop_criterion: {time_limits: abc}\n",
                 "scheduler.stop_criterion.time_limits", "duration", id="time-limits-abc"),
    pytest.param(T + "scheduler:\n  stop_criterion: {max_reward: lots}\n",
                 "scheduler.stop_criterion.max_reward", "number or inf", id="max-reward-lots"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - type: Real
              name: lr
             data: [0.1, 0.2]
        """, "line 6", "invalid YAML", id="invalid-yaml"),
    pytest.param(T + "searcher:\n  type: GridSearch\n", "searcher.type", "did you mean GridSearcher",
                 id="unknown-searcher"),
    pytest.param(T + "searcher:\n  type: GridSearcher\n  seed: 1\n", "searcher.seed",
                 "no parameter 'seed'", id="searcher-unknown-kwarg"),
    pytest.param("""\
        task:
          template: "python t.py {lr}"
          search_args:
            - {type: Real, name: lr, data: [0.001, 0.1]}
        searcher: {type: GridSearcher}
        """, "searcher", "cannot enumerate arg 'lr'", id="grid-over-continuous-real"),
    pytest.param(T + "custom_imports: [my_plugins.py]\n", "custom_imports[0]", "my_plugins.py does not exist",
                 id="custom-import-missing"),
]


def run_cli(config_path: str, workdir: str) -> subprocess.CompletedProcess:
    return subprocess.run([GML_RAY, "run", config_path, "--task", "t", "--workdir", workdir],
                          capture_output=True, text=True, timeout=120, cwd=os.path.dirname(config_path))


@pytest.mark.parametrize("text, path, message", BAD_CONFIGS)
def test_cli_reports_config_mistake_in_one_line(tmp_path, text, path, message):
    write(tmp_path / "config.yaml", FILE_ARG_YAML)
    config = write(tmp_path / "bad_search_config.yaml", text)
    proc = run_cli(config, str(tmp_path / "wd"))
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert err and len(err.splitlines()) == 1, proc.stderr
    assert f"{config}: " in err
    assert path in err
    assert message in err


def test_cli_missing_config_file(tmp_path):
    proc = run_cli(str(tmp_path / "nope.yaml"), str(tmp_path / "wd"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.yaml" in proc.stderr


# ---- durations and reward limits ------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    (2, 7200), (0.5, 1800), ("2", 7200), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1.5h", 5400),
    ("2d", 172800), (" 45 S ", 45),
])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["abc", "", "10x", "h", "-5m", 0, -1, "0s", True, None, [1]])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value, limit", [
    (math.inf, math.inf), (".inf", math.inf), ("inf", math.inf), ("Inf", math.inf), (325, 325.0),
    (0.95, 0.95), ("-inf", -math.inf), ("-.inf", -math.inf), (-math.inf, -math.inf),
])
def test_parse_reward_limit(value, limit):
    assert parse_reward_limit(value) == limit


@pytest.mark.parametrize("value", ["lots", "", True, None, [1], "in"])
def test_parse_reward_limit_rejects(value):
    with pytest.raises(ValueError):
        parse_reward_limit(value)


def test_max_reward_yaml_spellings(tmp_path):
    for text, limit in [("inf", math.inf), (".inf", math.inf), ("-.inf", -math.inf), ("325", 325.0)]:
        path = write(tmp_path / "s.yaml", T + f"scheduler:\n  stop_criterion: {{max_reward: {text}}}\n")
        assert load_config(path).stop.max_reward == limit, text
