"""A search value never runs as code or expands, in any shell context of a template (gml_ray.config.render).

Every check runs the rendered command for real, with the shell the runner uses (``bash -c``, see
:func:`gml_ray.engine.procgroup.shell`) and with ``/bin/sh`` where that is another shell, in
an otherwise empty directory holding one file (so a glob would show): nothing may be created there
and the program must receive each value literally. The program is coreutils ``printf`` (a real
executable, so what it prints is the argv it got): the outer one prints its arguments NUL-separated,
an inner one (inside ``$(...)`` or backticks) prints each argument in brackets.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from gml_ray.config import parse_config
from gml_ray.config.render import render_job
from gml_ray.config.template import longest_command, parse_template, render_template
from gml_ray.engine.procgroup import shell
from gml_ray.errors import ConfigError
from gml_ray.space import Categorical, Dict, File, Int

PRINTF = shutil.which("printf", path="/usr/bin:/bin")
RUNNER_SHELL = shell()[0]
SHELLS = [RUNNER_SHELL] + [sh for sh in ["/bin/sh"] if os.path.exists(sh)
                           and os.path.realpath(sh) != os.path.realpath(RUNNER_SHELL)]
IS_BASH = {sh: os.path.basename(os.path.realpath(sh)) == "bash" for sh in SHELLS}
HOME = "/nonexistent/gml-home"

pytestmark = pytest.mark.skipif(PRINTF is None, reason="needs coreutils printf")

OUT = f"{PRINTF} '%s\\0'"   # the outer program: its argv, NUL-separated
IN = f"{PRINTF} '[%s]'"     # an inner one: each argument in brackets

HOSTILE = [
    "'", '"', "it's \"quoted\"", "$(touch PWN)", "`touch PWN`", "; touch PWN", "&& touch PWN",
    "| touch PWN", "\ntouch PWN", "a\ntouch PWN #", "'; touch PWN; '", '"; touch PWN; "',
    '\\"; touch PWN; \\"', "\\`touch PWN\\`", "')\"`$(touch PWN)\\", "*", "~", "~root", "\\", "a\\",
    "$HOME", "${IFS}", "$'\\x41'", "!", "!!", "", "é 中文 ☃", "\t tab", "a[$(touch PWN)]", "$((1+1))",
    "{a,b}", "0,1", "1..3", "-n", "#", "2", "EOF\ntouch PWN", "x=1", "if",
]


def br(v: str) -> str:
    return f"[{v}]"


# (id, template, the arguments OUT receives for value v, bash syntax only)
CONTEXTS = [
    ("bare", "OUT {x}", lambda v: [v], False),
    ("single", "OUT '{x}'", lambda v: [v], False),
    ("double", 'OUT "{x}"', lambda v: [v], False),
    ("option", "OUT --opt={x}", lambda v: ["--opt=" + v], False),
    ("single-option", "OUT '--opt={x}'", lambda v: ["--opt=" + v], False),
    ("double-option", 'OUT "--opt={x}"', lambda v: ["--opt=" + v], False),
    ("adjacent", "OUT a{x}'b'\"c\"{x}", lambda v: ["a" + v + "bc" + v], False),
    ("double-with-expansion", 'OUT "$HOME-{x}"', lambda v: [HOME + "-" + v], False),
    ("single-in-double", "OUT \"it's {x}\"", lambda v: ["it's " + v], False),
    ("double-in-single", "OUT '\"{x}\"'", lambda v: ['"' + v + '"'], False),
    ("assignment", 'X={x}; OUT "$X"', lambda v: [v], False),
    ("line-continuation", "OUT \\\n {x}", lambda v: [v], False),
    ("command-word", "{x} 2>/dev/null; OUT ok", lambda v: ["ok"], False),
    ("brace-expansion", "OUT {{a,{x}}}", lambda v: ["a", v], True),
    ("tilde", "OUT ~{x}", lambda v: ["~" + v], False),
    ("fd-digits", "OUT {x}>&1", lambda v: [v], False),
    ("cmdsub", 'OUT "$(IN {x})"', lambda v: [br(v)], False),
    ("cmdsub-double", 'OUT "$(IN "{x}")"', lambda v: [br(v)], False),
    ("cmdsub-single", "OUT \"$(IN '{x}')\"", lambda v: [br(v)], False),
    ("cmdsub-mixed", "OUT \"a$(IN \"b{x}c\" 'd{x}e' {x})f\"",
     lambda v: ["a" + br("b" + v + "c") + br("d" + v + "e") + br(v) + "f"], False),
    ("cmdsub-nested", 'OUT "$(IN "$(IN {x})")"', lambda v: [br(br(v))], False),
    ("cmdsub-assigned", 'X=$(IN {x}); OUT "$X"', lambda v: [br(v)], False),
    ("cmdsub-subshell", 'OUT "$( (IN {x}) )"', lambda v: [br(v)], False),
    ("cmdsub-comment", "OUT \"$(IN {x} # a comment: ) ' \"\n)\"", lambda v: [br(v)], False),
    ("cmdsub-pipeline", 'OUT "$(true | IN {x} && true)"', lambda v: [br(v)], False),
    ("backticks", 'OUT "`IN {x}`"', lambda v: [br(v)], False),
    ("backticks-double", 'OUT "`IN \\"{x}\\"`"', lambda v: [br(v)], False),
    ("backticks-single", "OUT \"`IN '{x}'`\"", lambda v: [br(v)], False),
    ("backticks-assigned", 'X=`IN {x}`; OUT "$X"', lambda v: [br(v)], False),
    ("backticks-assigned-double", 'X=`IN "{x}"`; OUT "$X"', lambda v: [br(v)], False),
    ("backticks-assigned-single", "X=`IN '{x}'`; OUT \"$X\"", lambda v: [br(v)], False),
    ("backticks-nested", 'X=`IN "\\`IN {x}\\`"`; OUT "$X"', lambda v: [br(br(v))], False),
    ("backticks-in-cmdsub", 'OUT "$(IN "`IN {x}`")"', lambda v: [br(br(v))], False),
    ("cmdsub-in-backticks", 'OUT "`IN \\"$(IN {x})\\"`"', lambda v: [br(br(v))], False),
    ("backticks-double-in-cmdsub", 'OUT "$(IN "`IN \\"{x}\\"`")"', lambda v: [br(br(v))], False),
    ("backticks-deep", r'OUT "`IN \"$(IN \"\`IN \\\"{x}\\\"\`\")\"`"',
     lambda v: [br(br(br(v)))], False),
    ("dollar-brace-before", 'OUT "${HOME}" {x}', lambda v: [HOME, v], False),
    ("after-heredoc", "cat >/dev/null <<EOF\nit's $(true) {{braces}}\nEOF\nOUT {x}", lambda v: [v], False),
    ("after-comment", "OUT {x} # it's a comment", lambda v: [v], False),
    ("case", "case a in a) OUT {x};; esac", lambda v: [v], False),
    ("if", "if true; then OUT {x}; fi", lambda v: [v], False),
    ("subshell", "(OUT {x})", lambda v: [v], False),
    ("group", "{{ OUT {x}; }}", lambda v: [v], False),
    ("or", "false || OUT {x}", lambda v: [v], False),
    ("test", "[ -n {x}x ] && OUT {x}", lambda v: [v], False),
    ("ansi-c", "OUT $'{x}'", lambda v: [v], True),
    ("here-string", 'OUT "$(cat <<< {x})"', lambda v: [v.rstrip("\n")], True),
    ("process-substitution", 'OUT "$(cat <(IN {x}))"', lambda v: [br(v)], True),
]


def run(command: str, sh: str, cwd) -> list[str]:
    proc = subprocess.run([sh, "-c", command], cwd=cwd, capture_output=True, timeout=30,
                          env={**os.environ, "HOME": HOME})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().split("\0")[:-1]


def run_all(commands: list[str], sh: str, cwd) -> list[tuple[list[str], str]]:
    """Each command's output and exit status, all in one shell (a quick first pass)."""
    script = "".join(f"{c}\nprintf '\\001%s\\002' \"$?\"\n" for c in commands)
    proc = subprocess.run([sh, "-c", script], cwd=cwd, capture_output=True, timeout=60,
                          env={**os.environ, "HOME": HOME})
    records = proc.stdout.decode(errors="replace").split("\2")[:-1]
    return [(out.split("\0")[:-1], rc) for out, _, rc in (r.rpartition("\1") for r in records)]


def fill(template: str) -> str:
    return template.replace("OUT", OUT).replace("IN", IN)


@pytest.mark.parametrize("sh", SHELLS)
@pytest.mark.parametrize("name, template, expect, bash_only", CONTEXTS, ids=[c[0] for c in CONTEXTS])
def test_value_is_one_literal_word(tmp_path, sh, name, template, expect, bash_only):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "g").write_text("")  # a file for a stray glob to match
    commands = [render_template(fill(template), {"x": value}) for value in HOSTILE]
    if bash_only and not IS_BASH[sh]:
        # sh reads this syntax otherwise (or not at all): the value may arrive changed, never run
        for value, command in zip(HOSTILE, commands):
            subprocess.run([sh, "-c", command], cwd=cwd, capture_output=True, timeout=30)
            assert sorted(os.listdir(cwd)) == ["g"], (value, command)
        return
    if run_all(commands, sh, cwd) == [(expect(v), "0") for v in HOSTILE] and os.listdir(cwd) == ["g"]:
        return
    for path in cwd.iterdir():  # something went wrong: find the value, one command at a time
        if path.name != "g":
            path.unlink()
    for value, command in zip(HOSTILE, commands):
        assert run(command, sh, cwd) == expect(value), (value, command)
        assert sorted(os.listdir(cwd)) == ["g"], (value, command)
    pytest.fail("the commands pass one by one but not together")


def test_the_reported_template_creates_nothing(tmp_path):
    """The config that created PWN and PWN1, through the real config path to the job's command."""
    (tmp_path / "argv.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    values = ['"; touch PWN; "', "a; touch PWN1; echo"]
    raw = {"task": {"template": f"{shlex.quote(sys.executable)} argv.py \"$(echo {{x}})\" \"`echo {{x}}`\"",
                    "search_args": [{"type": "Categorical", "name": "x", "data": values}]}}
    cfg = parse_config(raw, "s.yaml", str(tmp_path))
    for value in values:
        job = render_job(cfg.search_space(), {"x": value}, str(tmp_path / "job"), cfg.template, {})
        proc = subprocess.run([*shell(), job.command], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == [value, value]
        assert sorted(os.listdir(tmp_path)) == ["argv.py"]


def test_manual_quoting_is_unchanged():
    """Bare, single- and double-quoted placeholders render as they always did."""
    template = "python train.py --lr {lr} --bs={batch-size} \"{name}\" '{x}' --cfg {config}"
    values = {"lr": 0.1, "batch-size": 512, "name": "it's $X", "x": "a'b", "config": "/p q/c.yaml"}
    assert render_template(template, values) == \
        "python train.py --lr 0.1 --bs=512 \"it's \\$X\" 'a'\\''b' --cfg '/p q/c.yaml'"


# ---- contexts no quoting makes safe: refused when the config is read ---------------------------

REFUSED = [
    ("OUT $(( {x} + 1 ))", "arithmetic"),
    ("(( n = {x} )); OUT", "arithmetic"),
    ("OUT $[{x}]", "arithmetic"),
    ('OUT "$(( $(echo {x}) ))"', "arithmetic"),
    ("[[ {x} -eq 1 ]] && OUT", r"\[\[ \]\]"),
    ("[[ a == a && {x} -eq 1 ]]", r"\[\[ \]\]"),
    ("[[ $(echo {x}) -eq 1 ]]", r"\[\[ \]\]"),
    ("a[{x}]=1; OUT", "array subscript"),
    ('a["{x}"]=1; OUT', "array subscript"),
    ("a=([{x}]=1); OUT", "array assignment"),
    ("a[$(echo {x})]=1", "array subscript"),
    ("OUT ${{VAR:-{x}}}", r"\$\{\.\.\.\}"),
    ('OUT "${{VAR:-{x}}}"', r"\$\{\.\.\.\}"),
    ("OUT ${{a[{x}]}}", r"\$\{\.\.\.\}"),
    ("OUT ${VAR:-{x}}", r"\$\{\.\.\.\}"),
    ("OUT ${VAR:-$(echo {x})}", r"\$\{\.\.\.\}"),
    ("cat <<EOF\n{x}\nEOF", "here-document"),
    ("cat <<-'EOF'\n\tline {x}\n\tEOF", "here-document"),
    ("cat <<{x}\nEOF\n", "here-document delimiter"),
    ("OUT a # {x}", "comment"),
    ("OUT \"$(true # {x}\n)\"", "comment"),
    ("eval OUT {x}", "`eval`"),
    ("eval \"OUT $(echo {x})\"", "`eval`"),
    ("let n={x}", "`let`"),
    ("declare -i n={x}", "`declare`"),
    ("read {x} </dev/null", "`read`"),
    ("trap {x} EXIT", "`trap`"),
    ("command eval {x}", "`eval`"),
    ("printf -v {x} %s a", "printf -v"),
    ("[ -v {x} ]", "test|\\[ -v"),
    ("test -v {x}", "test -v"),
    ('bash -c "OUT {x}"', "bash -c"),
    ("sh -c 'OUT {x}'", "sh -c"),
    ("/bin/bash -ec \"OUT {x}\"", "bash -c"),
    ('bash -c "$(echo {x})"', "bash -c"),
    ("ssh host OUT {x}", "ssh"),
    ("X=`eval {x}`", "`eval`"),
    ("OUT $'it\\'s' {x}", "not all read alike"),
    ("OUT $'\\{x}'", "backslash"),
    ("OUT \"${{VAR:-'a'}}\" {x}", "not all read alike"),
    ('OUT "$(case a in a) true;; esac; echo {x})"', "not all read alike"),
    ("X=`case a in a) true;; esac; echo {x}`", "not all read alike"),
    ("OUT `echo \\\\{x}`", "backslash"),
    ("a=(b;) OUT {x}", "array assignment"),
    ("export a=(b | c) && OUT {x}", "array assignment"),
    ('OUT "$(a=((b) c) {x})"', "array assignment"),
    ('a=(b); OUT "{x}"', "array assignment"),
    ("a=(b {x}); OUT", "array assignment"),
    ('a=("{x}" b); OUT', "array assignment"),
    ('a=("$(echo {x})"); OUT', "array assignment"),
    ("OUT $(echo {x})", "outside double quotes"),
    ("OUT `echo {x}`", "outside double quotes"),
    ("$(echo {x})", "outside double quotes"),
    ('OUT "$(echo $(echo {x}))"', "outside double quotes"),
    ("OUT a$(echo {x})b", "outside double quotes"),
    ("export X=$(echo {x})", "outside double quotes"),
    ('OUT "`echo "{x}"`"', "not all read alike"),
]


@pytest.mark.parametrize("template, why", REFUSED)
def test_unsafe_context_is_refused(template, why):
    with pytest.raises(ValueError, match=why):
        parse_template(fill(template))


@pytest.mark.parametrize("template", [
    "python t.py $(( {x} + 1 ))", 'python t.py "${VAR:-{x}}"', "cat <<EOF\n{x}\nEOF",
    "eval python t.py {x}", 'bash -c "python t.py {x}"', "[[ {x} -eq 1 ]] && python t.py",
])
def test_unsafe_context_is_a_config_error(tmp_path, template):
    raw = {"task": {"template": template,
                    "search_args": [{"type": "Categorical", "name": "x", "data": ["a", "b"]}]}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "s.yaml", str(tmp_path))
    assert info.value.path == "task.template"
    column = template.index("{x}") + 1
    assert str(info.value).startswith(f"s.yaml: task.template: placeholder {{x}} at column {column} ")
    assert "\n" not in str(info.value)


# Why each is refused: quoted the plain way, the value runs in bash. (Not every case: some need
# ssh, or end the parse before the value runs.)
PLAIN_RUNS = [
    ("echo $(( {x} ))", "$(touch PWN)"),
    ("(( {x} )); true", "a[$(touch PWN)]"),
    ("[[ {x} -eq 1 ]]; true", "a[$(touch PWN)]"),
    ("a[{x}]=1", "a[$(touch PWN)]"),
    ("a=([{x}]=1)", "a[$(touch PWN)]"),
    ("cat >/dev/null <<EOF\n{x}\nEOF", "x\nEOF\ntouch PWN #"),
    ("true # {x}", "\ntouch PWN #"),
    ("declare -i n={x}", "a[$(touch PWN)]"),
    ("printf -v {x} %s a", "a[$(touch PWN)]"),
    ("[ -v {x} ]; true", "a[$(touch PWN)]"),
    ("a=(b;) : {x}", "x\ntouch PWN #"),  # bash reads on from the line after the syntax error
    ("$(echo {x})", "touch PWN"),
    ("read {x} </dev/null; true", "a[$(touch PWN)]"),
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("template, value", PLAIN_RUNS)
def test_refused_contexts_run_a_plainly_quoted_value(tmp_path, template, value):
    with pytest.raises(ValueError):
        parse_template(template)
    subprocess.run(["bash", "-c", template.replace("{x}", shlex.quote(value))], cwd=tmp_path,
                   capture_output=True, timeout=30)
    assert os.listdir(tmp_path) == ["PWN"]


@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="needs /bin/sh")
def test_case_in_a_substitution_is_why_it_is_refused(tmp_path):
    """bash reads `a)` as a case pattern, a paren counter as the end of $(: the value is bare."""
    value = "a; touch PWN"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    command = f'echo "$(case a in a) true;; esac; echo {escaped})"'
    subprocess.run([RUNNER_SHELL, "-c", command], cwd=tmp_path, capture_output=True, timeout=30)
    assert os.listdir(tmp_path) == ["PWN"]


# ---- the length bound ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, template, expect, bash_only", CONTEXTS, ids=[c[0] for c in CONTEXTS])
def test_longest_command_bounds_every_rendering(name, template, expect, bash_only):
    template = fill(template)
    space = Dict(x=Categorical(*HOSTILE))
    bound = longest_command(template, space)
    assert max(len(render_template(template, {"x": v})) for v in HOSTILE) <= bound
    # a number (at most 32 characters) and a File arg's path (any text of up to 4096)
    bound = longest_command(template, Dict(x=Int(-10**9, 10**9)))
    for number in ["-1.2345678901234567e-300", "1" * 32, "-inf", "nan"]:
        assert len(render_template(template, {"x": number})) <= bound
    bound = longest_command(template, Dict(x=File(os.devnull)))
    for ch in "'\"\\$` a~é":
        assert len(render_template(template, {"x": ch * 4096})) <= bound


def test_longest_command_counts_quotes_in_full():
    """shlex.quote writes ' as '"'"': five characters, more than twice the value's length."""
    space = Dict(x=Categorical("''''", "a"))
    assert longest_command("a {x}", space) == len(render_template("a {x}", {"x": "''''"})) == 24
