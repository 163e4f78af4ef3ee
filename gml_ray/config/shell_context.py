"""The shell's view of a command template's literal text: for each ``{placeholder}``, the exact
context its value lands in (bare, which quotes, inside ``$(...)`` or backticks and how deep, a
command word), or why no quoting could keep a value literal there (a ValueError naming it).

A small lexer that reads the text the way bash (and sh) will: quotes, backslashes, ``$(...)`` and
``<(...)`` with their own quoting inside, backticks with their extra level of backslashes,
``${...}``, arithmetic, ``[[ ]]``, comments, here-documents, command words.
:mod:`gml_ray.config.template` splits a template and quotes each value for the context found here.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterator


@dataclass(frozen=True)
class Placeholder:
    """A ``{name}`` in a template and the shell context the value lands in.

    ``quote`` is the innermost quoting: '' (bare), "'", '"' or "$'"; ``force``: quote a bare value
    even where :func:`shlex.quote` would not; ``escapes``: the backtick levels around it, innermost
    first ('`', or '"`' for backticks inside double quotes); ``column``: where it is (1-based).
    """

    name: str
    quote: str
    force: bool = False
    escapes: tuple[str, ...] = ()
    column: int = field(default=0, compare=False)


# Why a placeholder in each refused context cannot be quoted safely (the end of its one-line error).
WHY_REFUSED = {
    "param": "sits inside ${...}, whose quoting differs between shells (and whose subscripts bash "
             "evaluates as arithmetic): give the value to a variable first (X={x}; ... \"${VAR:-$X}\")",
    "arith": "sits inside arithmetic ($(( )), (( )) or $[ ]), which evaluates a value as an "
             "expression (running any $(...) in its array subscripts): pass it to the program instead",
    "cond": "sits inside [[ ]], whose -eq/-lt/... evaluate a value as arithmetic (running any $(...) "
            "in its array subscripts): use [ ] instead",
    "subscript": "sits inside an array subscript, which bash evaluates as arithmetic (running any "
                 "$(...) in it)",
    "heredoc": "sits in a here-document, which a line of the value could end: pipe it in instead "
               "(printf '%s\\n' {x} | ...)",
    "delim": "is a here-document delimiter",
    "compound": ": after a syntax error in one, bash reads on from the next line, which may be a line "
                "of a value; put the placeholder before it, or set elements one by one (NAME[0]={x})",
    "unquoted": "sits inside a $(...) or backticks outside double quotes, whose output the shell "
                "splits into words and globs (and runs, at a command's start): write \"$(...)\"",
    "comment": "sits in a comment, which a newline in the value would end (running the rest)",
    "backslash": "comes right after a backslash, which would escape the value's first character",
    "ssh": "is part of an ssh command, whose remote shell parses the words again: run a script "
           "there with the value as an argument",
}
# builtins that evaluate an argument: as code, as arithmetic or as a variable name with a subscript
_EVALUATING = {"eval", "let", "trap", "declare", "typeset", "local", "readonly", "read", "mapfile",
               "readarray", "unset", "alias", "bind", "complete", "compgen", "fc"}
_NAME_FLAGS = {"printf": {"-v"}, "test": {"-v", "-R"}, "[": {"-v", "-R"}, "wait": {"-p"}}
_DECLARING = {"export", "declare", "typeset", "local", "readonly"}  # take NAME=( ... ) too
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"}
_KEYWORDS = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time", "fi",
             "done", "esac", "coproc"}  # a command word may follow
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_SUBSCRIPT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)?\[[^\]]*\Z")
_VALUE = "\0"  # a value's place in a word's raw text


class _Cmd:
    """The state of a command list: the top level, ``$( )``, ``<( )`` or the inside of backticks."""

    def __init__(self, closer: str | None, nested: bool) -> None:
        self.closer, self.nested = closer, nested
        self.depth = 0            # open ( ) subshells
        self.word: list[str] = []  # raw text of the word being read
        self.brace = False        # an unquoted '{' in it (brace expansion)
        self.cond = False         # inside [[ ]]
        self.compound = False     # inside an array assignment's ( )
        self.saved_refusing = ""
        self.delim = ""           # the next word is a here-document delimiter ('<<' or '<<-')
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, <<-, quoted): bodies to come
        self.heredoc_from = 0     # where the first of them was declared
        self.new_command()

    def new_command(self) -> None:
        self.words: list[str] = []  # the simple command's words, its name first
        self.cmd_pos = True       # the next word may be the command's name
        self.prefix = False       # after `command` / `builtin`
        self.target = False       # the next word is a redirection's target

    def why(self) -> str | None:
        """Why no value may sit in the word being read, if none may."""
        if self.cond:
            return WHY_REFUSED["cond"]
        if self.delim:
            return WHY_REFUSED["delim"]
        raw = "".join(self.word)
        if _SUBSCRIPT.match(raw) and (self.cmd_pos or raw.startswith("[")):
            return WHY_REFUSED["subscript"]
        names = [_plain(w) for w in self.words]
        if names and names[0] in _EVALUATING:
            return f"is an argument of `{names[0]}`, a builtin that evaluates its arguments (as code, " \
                   "arithmetic or variable names): give the value to a program instead"
        if len(names) > 1 and names[0] in _NAME_FLAGS and names[-1] in _NAME_FLAGS[names[0]]:
            return f"is the variable name after `{names[0]} {names[-1]}`, whose subscript bash evaluates"
        for k, name in enumerate(names):
            base = (name or "").rsplit("/", 1)[-1]
            if base == "ssh":
                return WHY_REFUSED["ssh"]
            if base in _SHELLS and any(re.fullmatch(r"-[A-Za-z]*c[A-Za-z]*", w or "") for w in names[k + 1:]):
                return f"sits in the command string of `{base} -c`, which parses it again as shell " \
                       "code: put that command in the template itself"
        return None


def _plain(raw: str) -> str | None:
    """A word's text without its quotes, or None when it expands (its value is not known)."""
    if any(ch in raw for ch in "$`" + _VALUE):
        return None
    return re.sub(r"\\(.)|['\"]", lambda m: m.group(1) or "", raw)


class ShellState:
    def __init__(self) -> None:
        self.out: dict[int, Placeholder] = {}
        self.uncertain = ""  # what, from where on, bash and sh read differently

    def diverge(self, col: int, what: str, why: str = "") -> None:
        self.uncertain = self.uncertain or f"comes after {what} at column {col}" + (why or (
            ", which shells do not all read alike, so where the value lands is not certain: put the "
            "placeholder before it, or write that part otherwise"))


class _Lexer:
    """Reads literal text (characters, ints for placeholders) as bash does; annotates placeholders."""

    def __init__(self, items: list, cols: list[int], phs: list[Placeholder], st: ShellState,
                 escapes: tuple[str, ...] = (), refusing: str = "", nested: bool = False) -> None:
        self.items, self.cols, self.phs, self.st = items, cols, phs, st
        self.escapes, self.refusing, self.nested = escapes, refusing, nested
        self.i = 0

    def peek(self, k: int = 0) -> Any:
        j = self.i + k
        return self.items[j] if j < len(self.items) else None

    def col(self) -> int:
        return self.cols[min(self.i, len(self.cols) - 1)] if self.cols else 0

    def refuse(self, idx: int, why: str) -> None:
        ph = self.phs[idx]
        raise ValueError(f"placeholder {{{ph.name}}} at column {ph.column} {why.replace('{x}', '{' + ph.name + '}')}")

    def place(self, idx: int, quote: str, cmd: _Cmd | None, force: bool = False) -> None:
        why = self.refusing or self.st.uncertain or (cmd.why() if cmd else "")
        if why:
            self.refuse(idx, why)
        self.st.out[idx] = replace(self.phs[idx], quote=quote, force=force, escapes=self.escapes)
        self.i += 1
        if cmd:
            cmd.word.append(_VALUE)

    def take(self, cmd: _Cmd | None, n: int = 1) -> None:
        if cmd:
            cmd.word.extend(ch for ch in self.items[self.i:self.i + n] if isinstance(ch, str))
        self.i += n

    def backslash(self, cmd: _Cmd | None) -> None:
        nxt = self.peek(1)
        if isinstance(nxt, int):
            self.refuse(nxt, WHY_REFUSED["backslash"])
        self.take(cmd, 1 if nxt is None else 2)

    # -- command lists ----------------------------------------------------------------------------

    def commands(self, closer: str | None) -> None:
        c = _Cmd(closer, self.nested or closer is not None)
        while True:
            it = self.peek()
            if it is None:
                self.end_word(c)
                self.set_cond(c, False)
                if c.heredocs and self.nested:
                    self.st.diverge(self.col(), "a here-document whose body would start after backticks end")
                return
            if isinstance(it, int):
                self.bare(it, c)
            elif it == "\\":
                if self.peek(1) == "\n":  # a line continuation
                    self.i += 2
                else:
                    self.backslash(c)
            elif it == "'":
                self.take(c)
                self.squote(c)
            elif it == '"':
                self.take(c)
                self.dquote(c)
            elif it == "$" and self.dollar(c, in_dq=False):
                pass
            elif it == "`":
                self.backtick(c, in_dq=False)
            elif it == "#" and not c.word:
                self.comment()
            elif it in " \t\n;&|()<>":
                if self.operator(c, it):
                    return
            else:
                if it == "{":
                    c.brace = True
                self.take(c)

    def operator(self, c: _Cmd, it: str) -> bool:
        """A blank, newline or operator character at ``it``; True when it closes the command list."""
        if it == "(" and not (c.cond or c.compound) and _ASSIGNMENT.fullmatch("".join(c.word)) and (
                c.cmd_pos or (c.words and _plain(c.words[0]) in _DECLARING)):
            # NAME=( ... ): an array's words. After a syntax error in it (in its words, or even
            # inside a substitution there) bash reads on from the next line, which can be a line of
            # any value after it: none may come after one.
            self.st.diverge(self.col() - len(c.word), "an array assignment NAME=( ... )", WHY_REFUSED["compound"])
            self.end_word(c)
            self.i += 1
            c.compound = True
            return False
        if it in "<>" and self.peek(1) == "(" and not c.cond:  # process substitution: part of a word
            self.take(c, 2)
            with self.refusing_in(c.why()):
                self.commands(")")
            c.word.append(")")
            return False
        if it in "<>" and c.word and all(ch.isdigit() for ch in c.word):
            c.word = []  # a file descriptor number, part of the operator
        if c.word:
            self.end_word(c)  # then read the character again: the word may have been ]] or case
            return False
        self.i += 1
        if c.compound:  # ( ) of NAME=( ... ): its words; other operators are syntax errors there
            c.compound = it != ")"
        elif c.cond and it not in ";\n":  # [[ ]]'s own ( ) < > && || and blanks
            pass
        elif it in " \t":
            pass
        elif it == "\n":
            self.set_cond(c, False)
            c.new_command()
            self.heredoc_bodies(c)
        elif it in ";&|":
            if it == "&" and self.peek() == ">":  # &> and &>>: redirections
                self.i += 2 if self.peek(1) == ">" else 1
                c.target = True
                return False
            while self.peek() in (";", "&", "|"):
                self.i += 1
            self.set_cond(c, False)
            c.new_command()
        elif it == "(":
            if self.peek() == "(":  # (( )): arithmetic
                self.i += 1
                self.arith("((")
            else:
                c.depth += 1
                c.new_command()
        elif it == ")":
            if c.depth:
                c.depth -= 1
            elif c.closer == ")":
                self.set_cond(c, False)
                if c.heredocs:
                    self.st.diverge(self.col(), "a here-document whose body would start after $(...) ends")
                return True
            c.new_command()  # a case pattern's ), or a subshell's end
        else:  # < or >
            op = it
            while self.peek() in ("<", ">", "&", "|", "-") and len(op) < 3:
                if self.peek() == "-" and op != "<<":
                    break
                op += self.peek()
                self.i += 1
            if op in ("<<", "<<-"):
                c.delim = op
            else:
                c.target = True
        return False

    def bare(self, idx: int, c: _Cmd) -> None:
        raw = "".join(c.word)
        nxt = self.peek(1)
        force = (c.cmd_pos and "=" not in raw) or c.brace or raw.endswith("~") or (
            all(ch.isdigit() or ch == _VALUE for ch in raw) and (isinstance(nxt, int) or nxt in ("<", ">")))
        self.place(idx, "", c, force)

    def end_word(self, c: _Cmd) -> None:
        if not c.word:
            return
        raw = "".join(c.word)
        c.word, c.brace = [], False
        if c.delim:
            if any(ch in raw for ch in "$`" + _VALUE):
                self.st.diverge(self.col() - len(raw), "a here-document delimiter with $ or ` in it")
            if not c.heredocs:
                c.heredoc_from = self.i
            c.heredocs.append((_plain(raw) or "", c.delim == "<<-", any(ch in raw for ch in "'\"\\")))
            c.delim = ""
            return
        if c.target:
            c.target = False
            return
        if c.cond:
            self.set_cond(c, raw != "]]")
            return
        if c.compound:
            return
        if c.cmd_pos:
            if _ASSIGNMENT.match(raw) or raw in _KEYWORDS or (c.prefix and raw.startswith("-")):
                return
            if raw in ("command", "builtin"):
                c.prefix = True
                return
            if raw == "[[":
                self.set_cond(c, True)
                return
            if raw == "case" and c.nested:
                self.st.diverge(self.col() - len(raw), "`case` inside $(...) or backticks")
            c.cmd_pos = c.prefix = False
        c.words.append(raw)

    def set_cond(self, c: _Cmd, on: bool) -> None:
        """Enter or leave [[ ]]: nothing in it (nested substitutions too) may hold a value."""
        if on and not c.cond:
            c.saved_refusing, self.refusing = self.refusing, self.refusing or WHY_REFUSED["cond"]
        elif c.cond and not on:
            self.refusing = c.saved_refusing
        c.cond = on

    def comment(self) -> None:
        while self.peek() not in (None, "\n"):
            if isinstance(self.peek(), int):
                self.refuse(self.peek(), WHY_REFUSED["comment"])
            self.i += 1

    def heredoc_bodies(self, c: _Cmd) -> None:
        """Skip the bodies of the here-documents of the line just ended (no value may be in one)."""
        if any(it == "\n" for it in self.items[c.heredoc_from:self.i - 1]):
            self.st.diverge(self.col(), "a here-document whose line goes on over a newline")
        for delim, strip, quoted in c.heredocs:
            while self.peek() is not None:
                line: list[str] = []
                while True:
                    while self.peek() not in (None, "\n"):
                        it = self.peek()
                        if isinstance(it, int):
                            self.refuse(it, WHY_REFUSED["heredoc"])
                        line.append(it)
                        self.i += 1
                    trailing = len(line) - len("".join(line).rstrip("\\"))
                    if quoted or trailing % 2 == 0 or self.peek() is None:
                        break
                    line.pop()  # \ and newline: the line goes on (before it is compared)
                    self.i += 1
                if self.peek() == "\n":
                    self.i += 1
                text = "".join(line)
                if (text.lstrip("\t") if strip else text) == delim:
                    break
        c.heredocs = []

    # -- quotes and expansions --------------------------------------------------------------------

    def squote(self, c: _Cmd | None) -> None:
        while (it := self.peek()) is not None:
            if isinstance(it, int):
                self.place(it, "'", c)
                continue
            self.take(c)
            if it == "'":
                return

    def ansic(self, c: _Cmd | None) -> None:
        while (it := self.peek()) is not None:
            if isinstance(it, int):
                self.place(it, "$'", c)
            elif it == "\\":
                if self.peek(1) == "'":
                    self.st.diverge(self.col(), "\\' inside $'...'")
                self.backslash(c)
            else:
                self.take(c)
                if it == "'":
                    return

    def dquote(self, c: _Cmd | None) -> None:
        while (it := self.peek()) is not None:
            if isinstance(it, int):
                self.place(it, '"', c)
            elif it == "\\":
                self.backslash(c)
            elif it == "$" and self.dollar(c, in_dq=True):
                pass
            elif it == "`":
                self.backtick(c, in_dq=True)
            else:
                self.take(c)
                if it == '"':
                    return

    def dollar(self, c: _Cmd | None, in_dq: bool) -> bool:
        """An expansion at ``$``, read whole; False when the ``$`` is a literal one."""
        n1 = self.peek(1)
        if n1 == "'" and not in_dq:
            self.take(c, 2)
            self.ansic(c)
        elif n1 == '"' and not in_dq:
            self.take(c, 2)
            self.dquote(c)
        elif n1 == "(" and self.peek(2) == "(":
            self.take(c, 3)
            self.arith("$((")
        elif n1 == "(":
            why = self.output_why(c, in_dq)
            self.take(c, 2)
            with self.refusing_in(why):
                self.commands(")")
            if c:
                c.word.append(")")
        elif n1 == "{":
            self.take(c, 2)
            self.param(in_dq)
            if c:
                c.word.append("}")
        elif n1 == "[":
            self.take(c, 2)
            self.arith("$[")
        else:
            return False
        return True

    def output_why(self, c: _Cmd | None, in_dq: bool) -> str | None:
        """Why no value may sit in a substitution starting here, whose output lands in c's word."""
        if c is None:
            return None
        if in_dq or (c.cmd_pos and _ASSIGNMENT.match("".join(c.word))):
            return c.why()
        return c.why() or WHY_REFUSED["unquoted"]  # the output is split, globbed, maybe run

    @contextlib.contextmanager
    def refusing_in(self, why: str | None) -> Iterator[None]:
        """Refuse every placeholder read meanwhile (nested ones too) for ``why``."""
        saved, self.refusing = self.refusing, self.refusing or why or ""
        try:
            yield
        finally:
            self.refusing = saved

    def param(self, in_dq: bool) -> None:
        with self.refusing_in(WHY_REFUSED["param"]):
            while (it := self.peek()) is not None:
                if isinstance(it, int):
                    self.place(it, "", None)
                elif it == "}":
                    self.i += 1
                    return
                elif it == "\\":
                    self.backslash(None)
                elif it in "'\"" and in_dq:
                    self.st.diverge(self.col(), 'quotes inside "${...}"')
                    self.i += 1
                elif it == "'":
                    self.i += 1
                    self.squote(None)
                elif it == '"':
                    self.i += 1
                    self.dquote(None)
                elif it == "$" and self.dollar(None, in_dq):
                    pass
                elif it == "`":
                    self.backtick(None, in_dq)
                else:
                    self.i += 1

    def arith(self, kind: str) -> None:
        depth = 0
        with self.refusing_in(WHY_REFUSED["arith"]):
            while (it := self.peek()) is not None:
                if isinstance(it, int):
                    self.place(it, "", None)
                elif it in "([":
                    depth += 1
                    self.i += 1
                elif it == "]" and not depth and kind == "$[":
                    self.i += 1
                    return
                elif it in ")]":
                    self.i += 1
                    if depth:
                        depth -= 1
                    elif it == ")" and kind != "$[":
                        if self.peek() == ")":
                            self.i += 1
                        else:
                            self.st.diverge(self.col(), f"a {kind} that is not arithmetic")
                        return
                elif it == "\\":
                    self.backslash(None)
                elif it == '"':
                    self.i += 1
                    self.dquote(None)
                elif it == "'":
                    self.i += 1
                    self.squote(None)
                elif it == "$" and self.dollar(None, in_dq=False):
                    pass
                elif it == "`":
                    self.backtick(None, in_dq=False)
                else:
                    self.i += 1

    def backtick(self, c: _Cmd | None, in_dq: bool) -> None:
        """`...`: the text up to the closing backtick, its backslashes removed, read as commands."""
        special = '$`\\"' if in_dq else "$`\\"
        why = self.output_why(c, in_dq)
        self.take(c)
        items, cols = [], []
        while (it := self.peek()) is not None:
            col = self.col()
            if it == "`":
                self.i += 1
                break
            if it == "\\" and self.peek(1) is not None:
                nxt = self.peek(1)
                if isinstance(nxt, int):
                    self.refuse(nxt, WHY_REFUSED["backslash"])
                items += [nxt] if nxt in special else ["\\", nxt]
                cols += [col] if nxt in special else [col, col + 1]
                self.i += 2
                continue
            if it == '"' and in_dq:  # bash brace-expands around it as if unquoted; POSIX: undefined
                self.st.diverge(col, 'a " not written \\" inside backticks inside "..."')
            items.append(it)
            cols.append(col)
            self.i += 1
        if c:
            c.word.append("`")
        level = '"`' if in_dq else "`"
        refusing = self.refusing or why or ""
        _Lexer(items, cols, self.phs, self.st, (level,) + self.escapes, refusing, True).commands(None)


def read_contexts(items: list, cols: list[int], phs: list[Placeholder], st: ShellState) -> None:
    """Read a template's pieces (literal characters and placeholder indexes into ``phs``, with
    their columns) as the shell will; ``st.out`` gets each placeholder with its context."""
    _Lexer(items, cols, phs, st).commands(None)
