"""Templates, arg_dict and per-job config files (gml_ray.config.render)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import DATA_DIR

from gml_ray.config import load_config, parse_config
from gml_ray.config.files import file_format, set_dotted
from gml_ray.config.render import arg_dict, load_config_file, render_file, render_job, rendered_file_name
from gml_ray.config.shell_context import Placeholder
from gml_ray.config.template import parse_template, placeholder_names, render_template
from gml_ray.errors import ConfigError
from gml_ray.space import Categorical, File


def job_values(space, config, job_dir):
    """What a job's template gets, its File args' copies written into ``job_dir``."""
    job = render_job(space, config, job_dir, None, {})
    job.write_files()
    return job.values


DATA = os.path.join(DATA_DIR, "config")


def manual_config(tmp_path):
    """The manual's section 2.1 config (with its config.yaml) copied into tmp_path and parsed."""
    for name in ("manual_search_config.yaml", "config.yaml"):
        shutil.copy(os.path.join(DATA, name), tmp_path / name)
    return load_config(str(tmp_path / "manual_search_config.yaml"))


@pytest.fixture
def argv_cmd(tmp_path):
    """A shell-quoted command prefix that runs a script printing its argv as JSON."""
    script = tmp_path / "argv.py"
    script.write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    return f"{sys.executable} {script}"


def run_bash(command: str, **env: str) -> list[str]:
    """Run a rendered command with bash; the argv the program received."""
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ---- parsing templates -------------------------------------------------------------------------

def test_placeholders_with_dashes_and_dots():
    template = "python t.py --bs {batch-size} --depth {model.depth} --bs2 {batch-size}"
    assert placeholder_names(template) == ["batch-size", "model.depth"]
    assert render_template(template, {"batch-size": 512, "model.depth": 18}) == \
        "python t.py --bs 512 --depth 18 --bs2 512"


def test_parse_template_records_quoting():
    parts = parse_template("""a {x} '{y}' "{z}" '"{w}"'""")
    assert [p for p in parts if isinstance(p, Placeholder)] == [
        Placeholder("x", ""), Placeholder("y", "'"), Placeholder("z", '"'), Placeholder("w", "'")]


def test_double_braces_are_literal():
    assert placeholder_names("echo {{a}} {b} }}") == ["b"]
    assert render_template("echo {{a}} {b} }}", {"b": 1}) == "echo {a} 1 }"


def test_dollar_brace_is_left_to_the_shell(argv_cmd):
    template = f"{argv_cmd} ${{HOME}} {{a}}"
    assert placeholder_names(template) == ["a"]
    assert run_bash(render_template(template, {"a": 1}), HOME="/some/home") == ["/some/home", "1"]


@pytest.mark.parametrize("template", [
    "python t.py {lr", "python t.py {}", "python t.py { lr}", "python t.py {lr }", "python t.py {1lr}",
    "python t.py {lr,wd}", "python t.py {a b}", "{",
])
def test_malformed_braces_raise(template):
    with pytest.raises(ValueError, match="malformed placeholder"):
        parse_template(template)


@pytest.mark.parametrize("template", ["python t.py --lr {lr}}", "python t.py --lr lr}"])
def test_lone_closing_brace_is_malformed(template):
    with pytest.raises(ValueError):
        parse_template(template)


def test_missing_value_raises_keyerror():
    with pytest.raises(KeyError):
        render_template("python t.py {a} {b}", {"a": 1})


# ---- quoting, checked by running the command with bash -----------------------------------------

NASTY = ["two words", "a;echo PWNED", "it's", 'say "hi"', "$HOME `id` $(id)", "back\\slash", "*",
         "", "tab\there", "line\nbreak", "{x}"]


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize("wrap", ["{v}", "'{v}'", '"{v}"', "--opt={v}", "'--opt={v}'", '"--opt={v}"'])
def test_value_arrives_as_one_argument(argv_cmd, wrap, value):
    template = f"{argv_cmd} {wrap.replace('{v}', '{a}')} end"
    argv = run_bash(render_template(template, {"a": value}))
    expected = wrap.strip("'\"").replace("{v}", value)
    assert argv == [expected, "end"]


def test_container_values_are_json_and_one_argument(argv_cmd):
    argv = run_bash(render_template(f"{argv_cmd} {{a}} '{{b}}'", {"a": [1, 2], "b": {"k": "v w"}}))
    assert [json.loads(a) for a in argv] == [[1, 2], {"k": "v w"}]


def test_quoting_inside_quotes_is_raw_or_escaped():
    value = "it's $X"
    assert render_template("x '{a}'", {"a": "p q"}) == "x 'p q'"
    assert render_template('x "{a}"', {"a": value}) == 'x "it\'s \\$X"'
    assert render_template("x {a}", {"a": "plain"}) == "x plain"


# ---- arg_dict and job values ---------------------------------------------------------------------

def first_config(cfg):
    from gml_ray.searchers import GridSearcher
    return GridSearcher(cfg.search_space()).get_config()


def test_arg_dict_of_manual_config(tmp_path):
    cfg = manual_config(tmp_path)
    config = first_config(cfg)
    args = arg_dict(cfg.search_space(), config)
    assert set(args) == {"batch-size", "log-interval", "config(epochs)",
                         "config(scheduler.step_size)", "config(scheduler.gamma)"}
    assert args == {"batch-size": 1024, "log-interval": 10, "config(epochs)": 3,
                    "config(scheduler.step_size)": 1, "config(scheduler.gamma)": 0.5}


def test_job_values_render_the_file_arg_per_job(tmp_path):
    cfg = manual_config(tmp_path)
    space = cfg.search_space()
    original = (tmp_path / "config.yaml").read_text()
    nested = cfg.search_args[2].args[1].name
    config = {"batch-size": 512, "log-interval": 20,
              "config": {"epochs": 5, nested: {"scheduler.step_size": 2, "scheduler.gamma": 0.7}}}
    job_dir = tmp_path / "job 0001"  # a space in the path: '{config}' is quoted in the template
    job_dir.mkdir()
    values = job_values(space, config, str(job_dir))
    assert values["config"] == str(job_dir / "file_art.yaml")  # place_holder names the copy
    assert load_config_file(values["config"]) == {
        "epochs": 5, "lr": 0.1, "scheduler": {"step_size": 2, "gamma": 0.7}}
    assert (tmp_path / "config.yaml").read_text() == original
    command = render_template(cfg.template, values)
    assert f"--config '{job_dir / 'file_art.yaml'}' --batch-size 512 --log-interval 20 --pavi" in command
    # without a job dir the File arg is shown by its file name
    assert rendered_file_name(space["config"]) == "file_art.yaml"


def test_each_job_gets_its_own_copy(tmp_path):
    cfg = manual_config(tmp_path)
    from gml_ray.searchers import GridSearcher
    searcher = GridSearcher(cfg.search_space())
    rendered = {}
    for i in range(6):
        config = searcher.get_config()
        job_dir = tmp_path / f"job{i}"
        job_dir.mkdir()
        path = job_values(cfg.search_space(), config, str(job_dir))["config"]
        rendered[path] = config
    assert len(rendered) == 6
    for path, config in rendered.items():
        args = arg_dict(cfg.search_space(), config)
        data = load_config_file(path)
        assert (data["epochs"], data["scheduler"]["step_size"], data["scheduler"]["gamma"]) == (
            args["config(epochs)"], args["config(scheduler.step_size)"], args["config(scheduler.gamma)"])
    assert {load_config_file(p)["epochs"] for p in rendered} == {3, 4, 5}


def test_manual_command_runs_with_bash(tmp_path, argv_cmd):
    cfg = manual_config(tmp_path)
    template = argv_cmd + " " + cfg.template.split("python mnist.py ", 1)[1]
    config = first_config(cfg)
    job_dir = tmp_path / "job dir"
    job_dir.mkdir()
    argv = run_bash(render_template(template, job_values(cfg.search_space(), config, str(job_dir))))
    assert argv == ["--config", str(job_dir / "file_art.yaml"), "--batch-size", "1024",
                    "--log-interval", "10", "--pavi"]


# ---- File args: YAML, JSON and Python config files -----------------------------------------------

PY_CONFIG = '''\
"""An mmcv-style config."""
# model settings
model = dict(depth=18, act='relu', neck=dict(channels=[64, 128]))
layers = [64, 128, 256]
img_scale = (1333, 800)
lr = 0.1 * 2
warmup = lr / 4 + 1
name = 'res' + 'net'
flags = dict(a=True, b=None, c=-1)
'''

BASE = {"model": {"depth": 18, "act": "relu", "neck": {"channels": [64, 128]}},
        "layers": [64, 128, 256], "lr": 0.2}

SEARCHED = {"model.depth": 50, "layers.1": 99, "model.neck.channels.0": 32, "lr": 0.5, "model.width": 2}


def write_config(tmp_path, fmt: str) -> str:
    path = tmp_path / f"base.{fmt}"
    if fmt == "py":
        path.write_text(PY_CONFIG)
    elif fmt == "json":
        path.write_text(json.dumps(BASE, indent=2))
    else:
        import yaml
        path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    return str(path)


def file_space(path: str, place_holder=None) -> File:
    return File(path, place_holder, **{k: Categorical(v) for k, v in SEARCHED.items()})


@pytest.mark.parametrize("fmt", ["yaml", "yml", "json", "py"])
def test_render_file_sets_dotted_keys(tmp_path, fmt):
    path = write_config(tmp_path, fmt)
    original = open(path).read()
    out = tmp_path / "job"
    out.mkdir()
    rendered = render_file(file_space(path), dict(SEARCHED), str(out))
    assert rendered == str(out / f"base.{fmt}")
    data = load_config_file(rendered)
    assert data["model"] == {"depth": 50, "act": "relu", "neck": {"channels": [32, 128]}, "width": 2}
    assert data["layers"] == [64, 99, 256]
    assert data["lr"] == 0.5
    assert open(path).read() == original


def test_python_config_literals(tmp_path):
    path = write_config(tmp_path, "py")
    data = load_config_file(path)
    assert data == {"model": {"depth": 18, "act": "relu", "neck": {"channels": [64, 128]}},
                    "layers": [64, 128, 256], "img_scale": (1333, 800), "lr": 0.2,
                    "warmup": 1.05, "name": "resnet", "flags": {"a": True, "b": None, "c": -1}}


def test_rendered_python_config_keeps_other_values(tmp_path):
    path = write_config(tmp_path, "py")
    out = tmp_path / "job"
    out.mkdir()
    data = load_config_file(render_file(file_space(path), dict(SEARCHED), str(out)))
    assert data["img_scale"] == (1333, 800)
    assert (data["name"], data["warmup"], data["flags"]) == ("resnet", 1.05, {"a": True, "b": None, "c": -1})


CODE_CONFIGS = [
    "import os\nx = 1\n",
    "from os import path\n",
    "x = os.getcwd()\n",
    "x = open('/etc/passwd').read()\n",
    "x = __import__('os')\n",
    "def f():\n    pass\n",
    "x = [i for i in range(3)]\n",
    "x = undefined_name\n",
    "if True:\n    x = 1\n",
]


@pytest.mark.parametrize("text", CODE_CONFIGS)
def test_python_config_with_code_needs_the_mmcv_extra(tmp_path, text):
    """Without mmengine, code in a Python config is refused, naming the extra that reads it."""
    path = tmp_path / "bad.py"
    path.write_text(text)
    probe = ("import sys; sys.modules['mmengine'] = None\n"  # as if gml-ray[mmcv] were not installed
             "from gml_ray.config.files import load\n"
             f"try:\n    load({str(path)!r})\nexcept ValueError as e:\n    print('REFUSED', e)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("REFUSED"), out.stdout + out.stderr
    assert "gml-ray[mmcv]" in out.stdout


def test_broken_python_config_is_a_config_error(tmp_path):
    (tmp_path / "model.py").write_text("import os\ndepth = undefined_name\n")
    raw = {"task": {"template": "python t.py {config}",
                    "search_args": [{"type": "File", "name": "config", "file": "model.py",
                                     "args": [{"type": "Categorical", "name": "depth", "data": [18, 50]}]}]}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "s.yaml", str(tmp_path))
    assert info.value.path == "task.search_args[0].file"


@pytest.mark.parametrize("place_holder, name", [(None, "base.yaml"), ("exp_a", "exp_a.yaml")])
def test_place_holder_sets_the_rendered_stem(tmp_path, place_holder, name):
    path = write_config(tmp_path, "yaml")
    out = tmp_path / "job"
    out.mkdir()
    assert os.path.basename(render_file(file_space(path, place_holder), dict(SEARCHED), str(out))) == name


def test_set_dotted():
    data = {"a": {"b": [1, {"c": 2}]}}
    set_dotted(data, "a.b.1.c", 3)
    set_dotted(data, "a.b.0", 0)
    set_dotted(data, "a.new", "leaf")
    assert data == {"a": {"b": [0, {"c": 3}], "new": "leaf"}}
    for bad in ["x.y", "a.b.5", "a.b.x", "a.new.z"]:
        with pytest.raises(KeyError):
            set_dotted(data, bad, 1)


def test_unsupported_config_file_type(tmp_path):
    with pytest.raises(ValueError, match="unsupported"):
        file_format(str(tmp_path / "x.txt"))


def test_python_config_dict_unpacking_is_never_silently_wrong(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("base = dict(act='relu', depth=18)\nmodel = dict(**base, depth=50)\n")
    try:
        data = load_config_file(str(path))
    except ValueError:
        return  # rejecting it is acceptable too
    assert data["model"] == {"act": "relu", "depth": 50}


def test_file_args_with_the_same_file_name_do_not_overwrite_each_other(tmp_path):
    for sub, key in [("a", "x"), ("b", "y")]:
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "config.yaml").write_text(f"{key}: 1\n")
    raw = {"task": {"template": "python t.py --a {ca} --b {cb}", "search_args": [
        {"type": "File", "name": "ca", "file": "a/config.yaml",
         "args": [{"type": "Categorical", "name": "x", "data": [5]}]},
        {"type": "File", "name": "cb", "file": "b/config.yaml",
         "args": [{"type": "Categorical", "name": "y", "data": [7]}]}]}}
    try:
        cfg = parse_config(raw, "s.yaml", str(tmp_path))
    except ConfigError:
        return  # refusing the clash up front is acceptable too
    space = cfg.search_space()
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    values = job_values(space, {"ca": {"x": 5}, "cb": {"y": 7}}, str(job_dir))
    assert values["ca"] != values["cb"]
    assert load_config_file(values["ca"]) == {"x": 5}
    assert load_config_file(values["cb"]) == {"y": 7}
