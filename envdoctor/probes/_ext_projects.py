"""The user's own torch extensions: where their sources are, what they build, how the project uses them.

Pure file reading (no import, no build): for each extension source tree under
the scanned paths

* ``setup.py`` / ``pyproject.toml`` naming ``CUDAExtension`` / ``CppExtension``
  (the module names are read from the ``*Extension("name", ...)`` calls),
* ``make.sh`` wrappers around such a ``setup.py`` (``python setup.py build
  install``: the project expects the module installed into the environment),
* just-in-time builds (``torch.utils.cpp_extension.load(...)`` in a ``.py``),

and, in the project's Python files, the wrapper that imports the module: which
functions it calls on it (``MSDA.ms_deform_attn_forward``) and every ``try``
whose broad ``except`` swallows a failure of the op (Mask2Former's bare
``except:`` that runs the PyTorch reference instead, in silence).
"""
from __future__ import annotations

import ast
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

MAX_DEPTH = 8
MAX_FILES = 20000
MAX_PY_BYTES = 400000
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", "site-packages", "dist-packages", ".tox",
             ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", "build", "dist",
             ".eggs"}
_EXT_CALL = re.compile(r"\b\w*(?:CUDAExtension|CppExtension|[Ee]xtension)\s*\(\s*(?:name\s*=\s*)?[\"']([\w.]+)[\"']")
_BUILDS_EXT = re.compile(r"CUDAExtension|CppExtension")
_SETUP_CALL = re.compile(r"\bsetup\.py\b(.*)")
_JIT = re.compile(r"cpp_extension\.load(?:_inline)?\s*\(|from\s+torch\.utils\.cpp_extension\s+import\s+[^\n]*\bload\b")


def _read(path: str, limit: int = MAX_PY_BYTES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return ""


def _is_env_dir(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(os.path.join(path, "conda-meta"))


def walk(root: str) -> Tuple[List[str], List[str]]:
    """(directories, python files) under ``root``, bounded, no links, no build or env dirs."""
    dirs_found: List[str] = []
    py_files: List[str] = []
    budget = [MAX_FILES]

    def visit(directory: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        dirs_found.append(directory)
        for entry in entries:
            budget[0] -= 1
            if budget[0] < 0:
                return
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info") \
                        and not _is_env_dir(entry.path):
                    visit(entry.path, depth + 1)
            elif entry.name.endswith(".py"):
                py_files.append(entry.path)

    if os.path.isdir(root):
        visit(root, 0)
    return dirs_found, py_files


def module_names(setup_text: str) -> List[str]:
    names: List[str] = []
    for name in _EXT_CALL.findall(setup_text):
        if name not in names:
            names.append(name)
    return names


def install_mode(directory: str, modules: List[str]) -> Tuple[str, Optional[str]]:
    """How the project expects its module: ("environment", make.sh) when its build script installs it,
    else ("inplace", None): ``build_ext --inplace`` puts it where the project imports it from."""
    make_sh = os.path.join(directory, "make.sh")
    if os.path.isfile(make_sh):
        for match in _SETUP_CALL.finditer(_read(make_sh)):
            if re.search(r"\b(install|develop)\b", match.group(1)):
                return "environment", make_sh
        return "inplace", make_sh
    return "inplace", None


def find_extension_roots(roots: Iterable[str]) -> List[Dict[str, Any]]:
    """Every extension source tree under ``roots`` (each real directory once)."""
    found: List[Dict[str, Any]] = []
    seen: Set[str] = set()
    for root in roots:
        directories, py_files = walk(os.path.abspath(root))
        for directory in directories:
            real = os.path.realpath(directory)
            if real in seen:
                continue
            text = ""
            for name in ("setup.py", "pyproject.toml"):
                candidate = _read(os.path.join(directory, name))
                if _BUILDS_EXT.search(candidate):
                    text = candidate
                    break
            if not text:
                continue
            seen.add(real)
            modules = module_names(text)
            mode, make_sh = install_mode(directory, modules)
            found.append({"root": directory, "kind": "setup", "modules": modules, "install": mode,
                          "make_sh": make_sh, "project": os.path.abspath(root)})
        for path in py_files:
            text = _read(path)
            call = _jit_call(text) if _JIT.search(text) else None
            if call is None:
                continue
            line, name = call
            found.append({"root": os.path.dirname(path), "kind": "jit", "modules": [name] if name else [],
                          "install": "jit", "make_sh": None, "project": os.path.abspath(root), "file": path,
                          "line": line})
    return found


def _jit_call(text: str) -> Optional[Tuple[int, Optional[str]]]:
    """(line, extension name) of the first real ``cpp_extension.load(...)`` call (not a mention in a
    string or comment), or None."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch.utils.cpp_extension":
            imported |= {a.asname or a.name for a in node.names if a.name in ("load", "load_inline")}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in ("load", "load_inline") and
                isinstance(func.value, (ast.Name, ast.Attribute)) and
                getattr(func.value, "id", getattr(func.value, "attr", "")) == "cpp_extension") or \
                (isinstance(func, ast.Name) and func.id in imported):
            name = next((k.value.value for k in node.keywords if k.arg == "name" and
                         isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)), None)
            if name is None and node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
            return node.lineno, name
    return None


def _aliases(tree: ast.AST, module: str) -> Set[str]:
    """Names a file binds to ``module`` (``import M as A``, ``import M``, ``from pkg import M``)."""
    last = module.rsplit(".", 1)[-1]
    parent = module.rsplit(".", 1)[0] if "." in module else None
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == module:
                    names.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and parent and (node.module or "").endswith(parent):
            for alias in node.names:
                if alias.name == last:
                    names.add(alias.asname or last)
    return names


def _called_attrs(tree: ast.AST, aliases: Set[str]) -> List[str]:
    called: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id in aliases:
            if node.func.attr not in called:
                called.append(node.func.attr)
    return called



def _mentions(nodes: List[ast.stmt], names: Set[str]) -> Optional[str]:
    for stmt in nodes:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id in names:
                return node.id
            if isinstance(node, ast.Attribute) and node.attr in names:
                return node.attr
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name.rsplit(".", 1)[-1] in names or (alias.asname or "") in names:
                        return alias.name
    return None


# Catch-alls: they hide any failure of the op, not only the one the author had in mind.
_BROAD = {"Exception", "BaseException"}


def _swallows(handler: ast.ExceptHandler) -> Optional[str]:
    """The handler's catch-all description when it catches broadly and does not re-raise."""
    if any(isinstance(n, ast.Raise) for n in ast.walk(handler)):
        return None
    if handler.type is None:
        return "bare except:"
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = [k.id if isinstance(k, ast.Name) else getattr(k, "attr", "") for k in kinds]
    broad = [n for n in names if n in _BROAD]
    return f"except {', '.join(broad)}" if broad else None


def _parse_if(path: str, words: Set[str], line_needs: Optional[str] = None) -> Optional[ast.Module]:
    """The syntax tree of ``path`` when its text can matter: a line holding one of ``words`` (and
    ``line_needs``, e.g. "import"). Cheap text tests first: parsing is the cost."""
    text = _read(path)
    if not text or not any(w in text for w in words):
        return None
    if not any((line_needs is None or line_needs in line) and any(w in line for w in words)
               for line in text.splitlines()):
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _defs_using(tree: ast.Module, aliases: Set[str]) -> Set[str]:
    """Top-level classes and functions of a wrapper file that call into the compiled module."""
    return {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and _mentions([n], aliases)}


def analyse_wrappers(py_files: Iterable[str], module: str) -> Dict[str, Any]:
    """Which files import ``module``, the functions they call on it, and silent fallbacks around it."""
    py_files = [p for p in py_files if f"{os.sep}tests{os.sep}" not in p]
    last = module.rsplit(".", 1)[-1]
    wrappers, calls, names = [], [], set()
    for path in py_files:
        tree = _parse_if(path, {last}, "import")
        aliases = _aliases(tree, module) if tree is not None else set()
        if not aliases:
            continue
        wrappers.append(path)
        for name in _called_attrs(tree, aliases):
            if name not in calls:
                calls.append(name)
        names |= aliases | _defs_using(tree, aliases)
    fallbacks = []
    for path in py_files if names else ():
        tree = _parse_if(path, names) if "except" in _read(path) else None
        for node in ast.walk(tree) if tree is not None else ():
            if not isinstance(node, ast.Try):
                continue
            used = _mentions(node.body, names)
            for handler in node.handlers if used else ():
                how = _swallows(handler)
                if how:
                    fallbacks.append({"file": path, "line": handler.lineno, "except": how, "guards": used})
    return {"wrappers": wrappers, "calls": calls, "fallbacks": fallbacks}


def _source_names(tree: ast.Module) -> Set[str]:
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.rsplit(".", 1)[-1] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(a.name for a in node.names)
    return found


def describe(roots: Iterable[str], extra_roots: Iterable[Tuple[str, str]] = ()) -> List[Dict[str, Any]]:
    """The ``ext_projects`` fact: every extension under ``roots``, plus ``extra_roots`` given as
    (source root, why), e.g. detectron2's checkout when it is installed from source."""
    roots = [os.path.abspath(r) for r in roots]
    projects = find_extension_roots(roots)
    known = {os.path.realpath(p["root"]) for p in projects if p["kind"] == "setup"}
    for root, why in extra_roots:
        if os.path.realpath(root) in known:
            continue
        for item in find_extension_roots([root]):
            if os.path.realpath(item["root"]) == os.path.realpath(root) and item["kind"] == "setup":
                item.update(project=root, reason=why)
                projects.append(item)
                known.add(os.path.realpath(root))
    py_cache: Dict[str, List[str]] = {}
    for item in projects:
        project = item["project"]
        if project not in py_cache:
            py_cache[project] = walk(project)[1]
        modules = item["modules"]
        item["uses"] = {m: analyse_wrappers(py_cache[project], m) for m in modules}
        item["outputs"] = {m: built_outputs(item["root"], m) for m in modules} if item["kind"] == "setup" else {}
    return projects


def built_outputs(root: str, module: str) -> List[str]:
    """Compiled files of ``module`` a previous in-place build left in ``root`` (``pkg/_C.cpython-*.so``)."""
    parts = module.split(".")
    directory = os.path.join(root, *parts[:-1])
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names
            if n.endswith(".so") and n.split(".")[0] == parts[-1] and os.path.isfile(os.path.join(directory, n))]
