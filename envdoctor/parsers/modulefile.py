"""What a modulefile would set, read from its text without running it.

Lmod reads Lua modulefiles (``*.lua``) and Tcl ones; Environment Modules reads
Tcl ones (first line ``#%Module``). Both kinds say the same few things about a
CUDA toolkit: ``setenv`` a CUDA_HOME-like variable, ``prepend_path``/``prepend-path``
``PATH`` with ``<root>/bin``. This parser follows exactly those statements and the
plain variables they use (Lua ``local root = "..."``, ``pathJoin(...)``, ``..``;
Tcl ``set root ...``, ``$root``, ``${root}``); anything computed at load time
(``os.getenv``, ``[exec ...]``, conditionals) is left unresolved rather than guessed.
Nothing in a modulefile is ever executed.
"""
from __future__ import annotations

import re
import shlex
from typing import Dict, List, Optional

_LUA_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
_LUA_LOCAL = re.compile(r"^\s*(?:local\s+)?([A-Za-z_]\w*)\s*=\s*(.+?)\s*$")
_LUA_CALL = re.compile(r"^\s*(setenv|pushenv|prepend_path|append_path)\s*\(\s*(.*)\)\s*;?\s*$")


def syntax_of(name: str, text: str) -> Optional[str]:
    """"lua", "tcl", or None for a file that is not a modulefile (Environment Modules
    and Lmod both require the ``#%Module`` magic of a Tcl modulefile)."""
    if name.endswith(".lua"):
        return "lua"
    if text.startswith("#%Module"):
        return "tcl"
    return None


def _split_args(text: str) -> List[str]:
    """Top-level comma-separated arguments of a Lua call (strings may hold commas)."""
    args, depth, current, quote = [], 0, "", None
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        current += char
    if current.strip():
        args.append(current.strip())
    return args


def _lua_value(expr: str, names: Dict[str, str]) -> Optional[str]:
    expr = expr.strip()
    if re.fullmatch(_LUA_STRING, expr):
        return expr[1:-1].replace('\\"', '"').replace("\\'", "'")
    if re.fullmatch(r"[A-Za-z_]\w*", expr):
        return names.get(expr)
    call = re.fullmatch(r"pathJoin\s*\((.*)\)", expr)
    if call:
        parts = [_lua_value(arg, names) for arg in _split_args(call.group(1))]
        if not parts or any(p is None for p in parts):
            return None
        return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p)
    if ".." in expr:
        pieces = [_lua_value(p, names) for p in _split_concat(expr)]
        return None if any(p is None for p in pieces) else "".join(pieces)  # type: ignore[arg-type]
    return None


def _split_concat(expr: str) -> List[str]:
    pieces, current, quote, i = [], "", None, 0
    while i < len(expr):
        char = expr[i]
        if quote:
            current += char
            quote = None if char == quote else quote
        elif char in "\"'":
            quote, current = char, current + char
        elif expr.startswith("..", i):
            pieces.append(current)
            current, i = "", i + 2
            continue
        else:
            current += char
        i += 1
    return pieces + [current]


def _lua_strip_comment(line: str) -> str:
    """The line without a trailing ``-- comment`` (``--`` inside a string stays)."""
    kept = re.match(r"(?:" + _LUA_STRING + r"|[^\"'-]|-(?!-))*", line)
    return (kept.group(0) if kept else line).rstrip()


def _tcl_substitute(word: str, names: Dict[str, str]) -> Optional[str]:
    unresolved = []

    def sub(match: "re.Match[str]") -> str:
        name = match.group(1) or match.group(2)
        if name not in names:
            unresolved.append(name)
            return ""
        return names[name]

    value = re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, word)
    return None if unresolved else value


def _tcl_words(line: str) -> Optional[List[str]]:
    line = re.sub(r";\s*#.*$", "", line)  # a trailing ``;# comment``
    if "[" in line:
        return None  # a command substitution: computed at load time
    try:
        return shlex.split(line.replace("{", '"').replace("}", '"'), comments=True, posix=True) \
            if "${" not in line else shlex.split(line, comments=True, posix=True)
    except ValueError:
        return None


def parse(text: str, syntax: str) -> Dict[str, object]:
    """``{"setenv": {VAR: value}, "prepend": {VAR: [values, first listed first]}}``
    for the statements whose values are known from the text alone."""
    names: Dict[str, str] = {}
    setenv: Dict[str, str] = {}
    prepend: Dict[str, List[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "--")):
            continue
        if syntax == "lua":
            line = _lua_strip_comment(line)
            call = _LUA_CALL.match(line)
            if call:
                args = _split_args(call.group(2))
                if len(args) < 2:
                    continue
                var, value = _lua_value(args[0], names), _lua_value(args[1], names)
                if not var or value is None:
                    continue
                if call.group(1) in ("setenv", "pushenv"):
                    setenv[var] = value
                elif any(value.split(":")):
                    prepend.setdefault(var, []).extend(v for v in value.split(":") if v)
                continue
            assign = _LUA_LOCAL.match(line)
            if assign:
                value = _lua_value(assign.group(2), names)
                if value is not None:
                    names[assign.group(1)] = value
            continue
        words = _tcl_words(line)
        if not words:
            continue
        command, args = words[0], words[1:]
        if command == "set" and len(args) == 2:
            value = _tcl_substitute(args[1], names)
            if value is not None:
                names[args[0]] = value
        elif command in ("setenv", "pushenv") and len(args) == 2:
            value = _tcl_substitute(args[1], names)
            if value is not None:
                setenv[args[0]] = value
        elif command in ("prepend-path", "append-path") and len(args) >= 2:
            while args and args[0].startswith("-"):  # --delim <c>, -d <c>, --duplicates
                args = args[2:] if args[0] in ("-d", "--delim") else args[1:]
            if len(args) < 2:
                continue
            values = [p for v in (_tcl_substitute(a, names) for a in args[1:]) if v for p in v.split(":") if p]
            if values:
                prepend.setdefault(args[0], []).extend(values)
    return {"setenv": setenv, "prepend": prepend}
