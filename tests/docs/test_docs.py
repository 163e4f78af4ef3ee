"""The documentation runs as printed (no Ray; seconds).

* Every fenced ``yaml`` block with a top-level ``task:`` key in README.md, docs/ and the examples'
  READMEs is a search config: it parses, its searcher and plugins build, and the files it names
  (a File arg's file, a script in the template, a function's module, custom_imports) exist.
* Every ``gml-ray`` / ``search-run`` / ``search-ctl`` / ``search-init`` command line in a ``bash``
  block, and in inline code, parses against the real command line (an unknown option or command
  fails).
* Every relative link in the READMEs points to a file that exists, and every
  ``python benchmarks/...`` or ``python examples/...`` script named exists.

An HTML comment on the line(s) right before a fenced block says what the block is:

``<!-- file: PATH -->``
    the block is the file PATH (from the repository root), verbatim; a config is loaded from it.
``<!-- base_dir: PATH -->``
    a config whose relative files are found in PATH.
``<!-- fragment -->``
    a part of a config: only checked to be YAML.
``<!-- benchmark -->``
    a config for ``gml-ray run --benchmark``.

A config block without ``file`` or ``base_dir`` is read against an empty directory: it may name
no file.
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import typer
import yaml
from helpers import REPO_DIR

from gml_ray.config import load_config, parse_config

ROOT = REPO_DIR
PAGES = sorted({os.path.relpath(p, ROOT) for pattern in (
    "README.md", "docs/**/*.md", "examples/**/README.md", "benchmarks/README.md")
    for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)})
READMES = [p for p in PAGES if os.path.basename(p) == "README.md"]
MARKER = re.compile(r"<!--\s*(file|base_dir|fragment|benchmark)\s*(?::\s*(\S+))?\s*-->")
FENCE = re.compile(r"^(`{3,})\s*([\w-]*)")


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def read(page: str) -> str:
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def blocks(page: str) -> list[Block]:
    """The fenced blocks of a page, with the markers on the lines right above each."""
    lines = read(page).split("\n")
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2), i
        marks: dict[str, str] = {}
        j = i - 1
        while j >= 0 and MARKER.fullmatch(lines[j].strip()):
            mm = MARKER.fullmatch(lines[j].strip())
            marks[mm.group(1)] = mm.group(2) or ""
            j -= 1
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marks))
        i += 1
    return out


def prose(page: str) -> str:
    """The page without its fenced blocks (their lines blanked)."""
    lines = read(page).split("\n")
    keep, fence = [], None
    for line in lines:
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            keep.append("")
        elif fence is not None:
            if line.startswith(fence):
                fence = None
            keep.append("")
        else:
            keep.append(line)
    return "\n".join(keep)


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


def is_config(block: Block) -> bool:
    if block.lang not in ("yaml", "yml"):
        return False
    try:
        raw = yaml.safe_load(block.text)
    except yaml.YAMLError:
        return False
    return isinstance(raw, dict) and "task" in raw


CONFIGS = [b for b in ALL_BLOCKS if is_config(b) and "fragment" not in b.marks]


def test_the_pages_hold_what_is_checked():
    """The collection itself: a change that made it find nothing must not pass quietly."""
    assert "README.md" in PAGES and "docs/configuration.md" in PAGES
    assert len(CONFIGS) >= 3 and len(COMMANDS) >= 20


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang in ("yaml", "yml")], ids=lambda b: b.where)
def test_yaml_blocks_are_yaml(block):
    yaml.safe_load(block.text)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if "file" in b.marks], ids=lambda b: b.where)
def test_a_block_marked_as_a_file_is_that_file(block):
    path = os.path.join(ROOT, block.marks["file"])
    assert os.path.isfile(path), f"{block.where}: <!-- file: {block.marks['file']} --> names no file"
    with open(path, encoding="utf-8") as f:
        assert block.text.rstrip("\n") == f.read().rstrip("\n"), \
            f"{block.where} differs from {block.marks['file']}: copy the file into the page"


def _names_files(cfg, base_dir: str) -> list[str]:
    """What the config names that is not there: a template's scripts, a function's module."""
    missing = []
    for script in re.findall(r"(?:^|[\s;&|])(?:python3?|bash|sh)\s+(\S+\.(?:py|sh))", cfg.template or ""):
        if not os.path.isfile(os.path.join(base_dir, script)):
            missing.append(f"task.template runs {script}")
    if cfg.function:
        module = cfg.function.split(":")[0].replace(".", os.sep)
        if not (os.path.isfile(os.path.join(base_dir, module + ".py"))
                or os.path.isfile(os.path.join(base_dir, module, "__init__.py"))):
            missing.append(f"task.function's module {module}")
    return missing


# Builds the plugins in a fresh interpreter, as `gml-ray run` does: in this one, an earlier test
# may have imported (and so registered) what the config alone would not.
BUILD = """
import sys
from gml_ray.engine.components import build_components
from gml_ray.config import load_config, parse_config
import yaml
kind, what, base_dir, benchmark = sys.argv[1:5]
if kind == "file":
    cfg = load_config(what, mode="mujoco" if benchmark == "1" else None)
else:
    cfg = parse_config(yaml.safe_load(sys.stdin.read()), what, base_dir, mode="mujoco" if benchmark == "1" else None)
build_components(cfg)
"""


@pytest.mark.parametrize("block", CONFIGS, ids=lambda b: b.where)
def test_config_blocks_parse_and_build(block, tmp_path, monkeypatch):
    """A config shown in the docs is read, names no missing file, and its searcher and plugins
    build, as `gml-ray run` does before it starts Ray."""
    monkeypatch.delenv("MOCK_PAVI", raising=False)
    benchmark = "benchmark" in block.marks
    mode = "mujoco" if benchmark else None
    if "file" in block.marks:
        path = os.path.join(ROOT, block.marks["file"])
        cfg = load_config(path, mode=mode)
        base_dir = os.path.dirname(path)
        args = ["file", path, base_dir]
    else:
        base_dir = os.path.join(ROOT, block.marks["base_dir"]) if "base_dir" in block.marks else str(tmp_path)
        assert os.path.isdir(base_dir), f"{block.where}: base_dir {block.marks['base_dir']} is no directory"
        cfg = parse_config(yaml.safe_load(block.text), block.where, base_dir, mode=mode)
        args = ["text", block.where, base_dir]
    assert not cfg.warnings, f"{block.where}: {cfg.warnings}"
    assert not _names_files(cfg, base_dir), f"{block.where}: no such file: {_names_files(cfg, base_dir)}"
    env = {k: v for k, v in os.environ.items() if k != "MOCK_PAVI"}
    done = subprocess.run([sys.executable, "-c", BUILD, *args, "1" if benchmark else "0"], input=block.text,
                          capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=120)
    assert done.returncode == 0, f"{block.where}: building its plugins failed:\n{done.stderr[-2000:]}"


# ---- command lines -------------------------------------------------------------------------------

def _programs() -> dict[str, tuple]:
    from gml_ray.cli.main import app, ctl_app
    return {"gml-ray": (app, []), "search-run": (app, ["run"]), "search-init": (app, ["init"]),
            "search-ctl": (ctl_app, [])}


PROGRAMS = ("gml-ray", "search-run", "search-init", "search-ctl")
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}


@dataclass
class Command:
    where: str
    words: list[str]
    inline: bool = False  # named in prose: it may leave out required arguments
    cwd: str = ""  # where a `cd` earlier in its block went (from the repository root)

    def __str__(self) -> str:
        return " ".join(self.words)


def _commands_in(words: list[str], where: str, inline: bool = False,
                 cwd: list[str] | None = None) -> list[Command]:
    out: list[Command] = []
    segment: list[str] = []
    cwd = cwd if cwd is not None else [""]
    for word in [*words, ";"]:
        if word not in OPERATORS:
            segment.append(word)
            continue
        if len(segment) == 2 and segment[0] == "cd":
            cwd[0] = os.path.normpath(os.path.join(cwd[0], segment[1]))
        for k, w in enumerate(segment):
            if os.path.basename(w) in PROGRAMS:
                out.append(Command(where, [os.path.basename(w), *segment[k + 1:]], inline, cwd[0]))
                break
        segment = []
    return out


def commands(page: str) -> list[Command]:
    found = []
    for block in blocks(page):
        if block.lang not in ("bash", "sh", "shell", "console"):
            continue
        text = re.sub(r"\\\n", " ", block.text)
        cwd = [""]
        for n, line in enumerate(text.split("\n")):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            found += _commands_in(list(lexer), f"{block.where}+{n}", cwd=cwd)
    text = prose(page)
    for m in re.finditer(r"`([^`]+)`", text):
        span = " ".join(m.group(1).split())
        if os.path.basename(span.split(" ")[0]) not in PROGRAMS or "..." in span:
            continue
        line = text.count("\n", 0, m.start()) + 1
        found += _commands_in(shlex.split(span.replace("[", " ").replace("]", " ")), f"{page}:{line}", True)
    return found


COMMANDS = [c for page in PAGES for c in commands(page)]


def parse_command(words: list[str], partial: bool = False) -> dict:
    """Parse ``words`` (``gml-ray run x.yaml --task t``) as the real command line would, down to
    the subcommand, and return the subcommand's name and parameters; raises what the command line
    would report. ``partial``: a required argument or option may be missing (a command named in
    prose, or one with ``--help``); an unknown option or command, or a wrong value, still fails."""
    program, *args = words
    partial = partial or "--help" in args
    app, prefix = _programs()[program]
    args = [*prefix, *(a for a in args if a != "--help")]
    cmd, path = typer.main.get_command(app), []
    while True:
        if hasattr(cmd, "commands") and not args:
            return {}  # a group by itself prints its help
        try:
            ctx = cmd.make_context(" ".join([program, *path]), list(args), resilient_parsing=False)
        except Exception as exc:
            if partial and type(exc).__name__ == "MissingParameter":
                return {}
            raise
        if not hasattr(cmd, "commands"):
            return {"command": " ".join(path), **ctx.params}
        protected = getattr(ctx, "_protected_args", None)
        if protected is None:
            protected = ctx.protected_args
        name, cmd, args = cmd.resolve_command(ctx, [*protected, *ctx.args])
        path.append(name)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.where}: {c}"[:120])
def test_command_lines_parse(command):
    try:
        params = parse_command(command.words, partial=command.inline)
    except Exception as exc:  # noqa: BLE001 - click's UsageError and friends
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        pytest.fail(f"{command.where}: `{command}`: {message}")
    config = params.get("config") if params.get("command") == "run" else None
    if config and not command.inline and (command.cwd or "/" in config):
        # A config of this repository (not a stand-in name such as search_config.yaml): it reads.
        path = os.path.join(ROOT, command.cwd, config)
        assert os.path.isfile(path), f"{command.where}: `{command}`: no {os.path.relpath(path, ROOT)}"
        load_config(path, mode="mujoco" if params.get("benchmark") else None)


@pytest.mark.parametrize("words", [
    ["gml-ray", "run", "x.yaml", "--taks", "t"],        # an unknown option
    ["gml-ray", "ctl", "shw", "--task", "t"],           # an unknown subcommand
    ["gml-ray", "ctl", "import", "--max-members", "N"],  # a value of the wrong type
    ["search-ctl", "run", "x.yaml"],                    # search-ctl is `gml-ray ctl`
    ["gml-ray", "ctl", "stop"],                         # --task is required
])
def test_a_wrong_command_line_is_caught(words):
    with pytest.raises(Exception):  # noqa: B017 - whatever the command line raises
        parse_command(words)


def test_a_command_named_in_prose_may_leave_out_required_arguments():
    parse_command(["gml-ray", "ctl", "stop"], partial=True)
    with pytest.raises(Exception):  # noqa: B017
        parse_command(["gml-ray", "ctl", "stop", "--taks", "t"], partial=True)


# ---- links and scripts ---------------------------------------------------------------------------

def links(page: str) -> list[tuple[int, str]]:
    text = prose(page)
    found = []
    for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        target = m.group(1)
        if re.match(r"[a-z][a-z+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor of the page itself
        found.append((text.count("\n", 0, m.start()) + 1, target))
    return found


@pytest.mark.parametrize("page", READMES)
def test_relative_links_in_the_readmes_resolve(page):
    base = os.path.dirname(os.path.join(ROOT, page))
    broken = [f"{page}:{line}: {target}" for line, target in links(page)
              if not os.path.exists(os.path.join(base, target.split("#")[0]))]
    assert not broken, broken


def test_benchmarks_readme_has_no_relative_links():
    """docs/benchmarks.md includes it whole: a relative link would point elsewhere there."""
    assert links("benchmarks/README.md") == []


@pytest.mark.parametrize("page", PAGES)
def test_scripts_named_exist(page):
    text = read(page)
    missing = sorted({s for s in re.findall(r"python3?\s+((?:benchmarks|examples)/\S+?\.py)\b", text)
                      if not os.path.isfile(os.path.join(ROOT, s))})
    assert not missing, f"{page} names scripts that do not exist: {missing}"


def test_the_modules_the_architecture_page_names_exist():
    """docs/architecture.md lists each package's modules: a module moved or renamed must be
    moved or renamed there too."""
    missing = []
    for line in read("docs/architecture.md").split("\n"):
        cells = line.split("|")
        if len(cells) < 4 or cells[1].strip() in ("package", "---"):
            continue
        packages = re.findall(r"`([\w/]+/)`", cells[1]) or [""]
        for name in re.findall(r"`([\w/]+(?:\.py|/))`", cells[2]):
            if not any(os.path.exists(os.path.join(ROOT, "gml_ray", pkg, name)) for pkg in packages):
                missing.append(f"{'/'.join(packages) or 'gml_ray'}: {name}")
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
