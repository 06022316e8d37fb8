"""Answering "what would the diagnosed Python find?" in this process, when that is the same question.

Several probes used to start the diagnosed interpreter only to call
``importlib.util.find_spec``. When the diagnosed Python *is* this interpreter,
started with the same Python-relevant environment, the answer can be computed
here for free: on a loaded two-core machine every extra interpreter start slows
down the torch import the whole check waits for.

The in-process answer must equal the child's. A child ``python -c ...`` searches
the current directory first and a child ``python script.py`` the script's
directory; this process's own ``sys.path[0]`` (the console script's bin dir, or
the directory ``-m`` ran from) is replaced by that entry, the rest of
``sys.path`` and the meta-path finders (editable installs) are the same.
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
from typing import Any, Optional

from envdoctor.runner import Runner

# Variables that change what a child interpreter imports (sys.path, user site).
_PYTHON_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONSAFEPATH",
                "PYTHONPLATLIBDIR", "PYTHONSTARTUP", "HOME")


def same_interpreter(ctx: Any) -> bool:
    """True when a child of ``ctx.python`` in ``ctx.env`` would see this process's import path.

    Only for real runs: a FakeRunner means a test scripted what the interpreter
    answers, and that script is what must be diagnosed.
    """
    if type(ctx.runner) is not Runner or ctx.root not in ("", "/") or not same_executable(ctx.python):
        return False
    # This process started with flags a child does not get: its sys.path differs.
    flags = sys.flags
    if flags.isolated or flags.no_user_site or flags.ignore_environment or flags.no_site or \
            getattr(flags, "safe_path", False):
        return False
    return all(ctx.env.get(name) == os.environ.get(name) for name in _PYTHON_VARS)


def same_executable(python: str) -> bool:
    """Is ``python`` this interpreter, with this interpreter's ``sys.prefix``?

    The same binary is not enough: a virtualenv's ``bin/python`` is a symlink to
    the base interpreter, yet it has its own site-packages (its ``pyvenv.cfg``).
    """
    try:
        if os.path.realpath(python) != os.path.realpath(sys.executable):
            return False
        return _venv_root(python) == _venv_root(sys.executable)
    except (OSError, ValueError):
        return False


def _venv_root(python: str) -> Optional[str]:
    """The environment a ``python`` path starts in when a ``pyvenv.cfg`` marks one (PEP 405: it sits
    beside the executable or one directory up), else None."""
    bin_dir = os.path.dirname(os.path.abspath(python))
    for candidate in (bin_dir, os.path.dirname(bin_dir)):
        if os.path.isfile(os.path.join(candidate, "pyvenv.cfg")):
            return os.path.realpath(candidate)
    return None


def find_spec_as_child(name: str, first_entry: str) -> Optional[importlib.machinery.ModuleSpec]:
    """``importlib.util.find_spec(name)`` for a top-level ``name`` as a child whose
    ``sys.path[0]`` is ``first_entry`` would compute it. Nothing is imported."""
    search = [first_entry] + sys.path[1:]
    for finder in sys.meta_path:
        try:
            if finder is importlib.machinery.PathFinder:
                spec = importlib.machinery.PathFinder.find_spec(name, search)
            else:
                find = getattr(finder, "find_spec", None)
                spec = find(name, None) if find is not None else None
        except (ImportError, ValueError, AttributeError, OSError):
            spec = None
        if spec is not None:
            return spec
    return None


def spec_location(spec: Optional[importlib.machinery.ModuleSpec]) -> Optional[str]:
    """The directory of a package (or of a module file), as the probe scripts report it."""
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return os.path.dirname(spec.origin) if spec.origin else None
