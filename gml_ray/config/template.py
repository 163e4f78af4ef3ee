"""A command template: its ``{name}`` placeholders, the shell context each one lands in, and
a value quoted for that context (``render_template``); the rendered length's bound.

Placeholders are ``{name}`` (names may hold dashes and dots). ``{{``/``}}`` are literal
braces and ``${VAR}`` is left to the shell.

Quoting: a value is always one literal word, or a literal part of one
---------------------------------------------------------------------
The command runs as ``bash -c CMD`` (``sh -c`` without bash), so a value must never become shell
code, whatever it holds (quotes, ``$(...)``, backticks, ``;``, newlines, ``*``, ``~``, ...). The
approach: quote each value for the exact context it lands in, and refuse (when the config is read)
the contexts where no quoting keeps a value literal. Passing values in environment variables was
not chosen: the command is shown by ``ctl show`` and the report and stored, and must stay readable,
and bash evaluates a variable's value in arithmetic and subscripts too, so it would not make those
contexts safe either.

:func:`parse_template` reads the template the way the shell will (:mod:`gml_ray.config.shell_context`, a small lexer over the literal
text: quotes, backslashes, ``$(...)``/``<(...)`` with their own quoting inside, backticks with
their extra level of backslashes, ``${...}``, arithmetic, ``[[ ]]``, comments, here-documents,
command words) and records for each placeholder the exact context it lands in; :func:`encode`
then quotes the value for that context:

* bare (also inside ``$(...)``, where quoting starts afresh): :func:`shlex.quote`, and a value
  that would not need quotes is quoted anyway where an unquoted one could still change the parse
  (as or inside the command word, where it could be an assignment or keyword; after ``~``; inside
  ``{a,b}``; digits before ``<``/``>``);
* ``'...'``: ``'`` becomes ``'\\''``; ``"..."``: ``\\`` ``"`` ``$`` and backtick get a backslash;
  ``$'...'``: ``\\`` is doubled and ``'`` written ``\\x27`` (no quote that sh could end on);
* inside backticks, the value quoted for its context there gets one more level of backslashes
  (before ``\\``, backtick, ``$``, and ``"`` when the backticks sit in double quotes), once per
  level of nesting, so what the shell reads back after removing them is exactly that text.

So the manual's templates (placeholders bare, in ``'...'`` or in ``"..."``) render exactly as they
always did. Where no quoting makes a value a plain literal, the template is refused when the config
is read (a one-line ``task.template: placeholder {x} at column N ...`` error), never rendered:

* inside ``${...}``, arithmetic (``$(( ))``, ``(( ))``, ``$[ ]``), ``[[ ]]`` and array subscripts
  (``a[{x}]=``): bash evaluates a value there, running any ``$(...)`` in its subscripts;
* in a here-document body or delimiter (a line of the value could end it), in a comment (a
  newline in the value would end it), right after a backslash;
* as an argument of a builtin that evaluates its arguments (``eval``, ``let``, ``trap``,
  ``declare`` and the like, ``read``, ``unset``, the name after ``printf -v`` / ``test -v``), in
  the command string of ``bash -c`` / ``sh -c``, or anywhere in an ``ssh`` command (its remote
  shell parses the words again);
* inside a ``$(...)`` or backticks whose output lands in such a place (``eval "$(echo {x})"``),
  or outside double quotes (``$(echo {x})``: the output is split into words, globbed, and run at
  a command's start), unless it is the value of an assignment (``X=$(...)``);
* after an array assignment ``NAME=( ... )``: after a syntax error in one bash reads on from the
  next line, which may be a line of a value;
* after a construct shells do not all read alike (``\\'`` inside ``$'...'``, quotes inside
  ``"${...}"``, a ``"`` not written ``\\"`` inside backticks inside ``"..."``, ``case`` inside
  ``$(...)``/backticks, ``$((`` that is not arithmetic), where the context of what follows is not
  certain.

What a program does with its arguments is beyond the shell: a value given to ``python -c``, to a
script that runs ``eval``, or as an option (``--x``) is the program's business.
"""
from __future__ import annotations

import functools
import json
import re
import shlex
from typing import Any

from gml_ray.config.shell_context import WHY_REFUSED, Placeholder, ShellState, read_contexts
from gml_ray.space import Categorical, Dict, File, Nested

ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")  # an arg (and placeholder) name


# ---- pass 1: template syntax (braces) -------------------------------------------------------------

_PARAM_PLACEHOLDER = re.compile(r"(?<!\$)\{(" + ARG_NAME.pattern + r")\Z")


def _split(template: str) -> list:
    """The template as literal characters ``(column, char)`` and :class:`Placeholder` s."""
    seq: list = []
    quote = ""
    i, n = 0, len(template)

    def lit(at: int, text: str) -> None:
        seq.extend((at + k + 1, ch) for k, ch in enumerate(text))

    while i < n:
        c = template[i]
        if c == "\\" and quote != "'" and i + 1 < n:
            lit(i, template[i:i + 2])
            i += 2
            continue
        if c in "'\"" and (not quote or quote == c):
            quote = "" if quote else c
        elif c == "{":
            if template.startswith("{{", i):
                lit(i, "{")
                i += 2
                continue
            if i > 0 and template[i - 1] == "$":  # ${VAR}: the shell's, not ours
                end = template.find("}", i)
                end = n - 1 if end < 0 else end
                m = _PARAM_PLACEHOLDER.search(template, i + 1, end)
                if m and end < n and template[end] == "}":
                    name = "{" + m.group(1) + "}"
                    raise ValueError(f"placeholder {name} at column {m.start() + 1} "
                                     + WHY_REFUSED["param"].replace("{x}", name))
                lit(i, template[i:end + 1])
                i = end + 1
                continue
            m = ARG_NAME.match(template, i + 1)
            if not m or not template.startswith("}", m.end()):
                raise ValueError(f"malformed placeholder at column {i + 1}: {template[i:i + 20]!r} "
                                 "(use {name}, or {{ and }} for literal braces)")
            seq.append(Placeholder(m.group(0), quote, column=i + 1))
            i = m.end() + 1
            continue
        elif c == "}":
            if not template.startswith("}}", i):
                raise ValueError(f"malformed placeholder: a lone '}}' at column {i + 1} "
                                 "(use {name}, or {{ and }} for literal braces)")
            lit(i, "}")
            i += 2
            continue
        lit(i, c)
        i += 1
    return seq


@functools.lru_cache(maxsize=64)
def _parse(template: str) -> tuple:
    seq = _split(template)
    phs: list[Placeholder] = []
    items: list = []
    cols: list[int] = []
    for x in seq:
        if isinstance(x, Placeholder):
            items.append(len(phs))
            cols.append(x.column)
            phs.append(x)
        else:
            cols.append(x[0])
            items.append(x[1])
    st = ShellState()
    read_contexts(items, cols, phs, st)
    parts: list = []
    k = 0
    for x in seq:
        if isinstance(x, Placeholder):
            parts.append(st.out[k])
            k += 1
        elif parts and isinstance(parts[-1], str):
            parts[-1] += x[1]
        else:
            parts.append(x[1])
    return tuple(parts)


def parse_template(template: str) -> list[str | Placeholder]:
    """Split a template into literal text and placeholders, each with the shell context it sits in.

    Raises ValueError on a malformed brace or a placeholder in a context no quoting makes safe.
    """
    return list(_parse(template))


def placeholder_names(template: str) -> list[str]:
    """The placeholder names in a template, in order of first use."""
    seen: dict[str, None] = {}
    for part in parse_template(template):
        if isinstance(part, Placeholder):
            seen.setdefault(part.name)
    return list(seen)


def format_value(value: Any) -> str:
    """A config value as text: containers as JSON, everything else as ``str``."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


_BACKTICK_SPECIAL = {"`": re.compile(r"([\\`$])"), '"`': re.compile(r'([\\`$"])')}


def encode(text: str, ph: Placeholder) -> str:
    """``text`` written so that the shell reads it back literally at ``ph``'s place."""
    if ph.quote == "'":
        out = text.replace("'", "'\\''")
    elif ph.quote == '"':
        out = re.sub(r'(["\\$`])', r"\\\1", text)
    elif ph.quote == "$'":
        out = text.replace("\\", "\\\\").replace("'", "\\x27")
    else:
        out = shlex.quote(text)
        if ph.force and out == text:
            out = f"'{text}'"
    for level in ph.escapes:
        out = _BACKTICK_SPECIAL[level].sub(r"\\\1", out)
    return out


def _quoted(text: str, quote: str) -> str:
    return encode(text, Placeholder("", quote))


def render_template(template: str, values: dict[str, Any]) -> str:
    """Substitute ``values`` into ``template``; a missing name raises KeyError."""
    out = []
    for part in _parse(template):
        if isinstance(part, Placeholder):
            out.append(encode(format_value(values[part.name]), part))
        else:
            out.append(part)
    return "".join(out)


MAX_COMMAND_BYTES = 131_072  # Linux's limit on one exec argument: the command runs as `bash -c CMD`
_PATH_BYTES = 4096  # a File arg's value is a path in the job dir
_NUMBER = "0" * 32  # a number's text: digits, '.', '-', 'e', 'inf' ... all quoted alike
_WORST = "'\"\\$` "  # a path of one of these, repeated, is the longest a path can be quoted


def longest_command(template: str, space: Dict) -> int:
    """An upper bound on the length of ``template`` rendered with any config of ``space``.

    Categorical and Nested values are measured as they are quoted at each placeholder; a number
    as 32 characters quoted as numbers are; a File arg's path as the worst text of 4096 characters.
    """
    texts: dict[str, list[str]] = {}
    for key in space:
        sub = space[key]
        if isinstance(sub, Nested):
            for d in sub.data:
                for k, v in d.items():
                    texts.setdefault(k, []).append(format_value(v))
        elif isinstance(sub, File):
            texts[key] = [ch * _PATH_BYTES for ch in _WORST]
        elif isinstance(sub, Categorical):
            texts[key] = [format_value(v) for v in sub.data]
        else:
            texts[key] = [_NUMBER]
    total = 0
    for part in _parse(template):
        if isinstance(part, Placeholder):
            total += max(len(encode(t, part)) for t in texts.get(part.name) or [""])
        else:
            total += len(part)
    return total
