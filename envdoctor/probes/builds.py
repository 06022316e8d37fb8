"""The builds probe: torch-extension build dirs and compiled extensions under the scanned paths.

For each build dir (a ``build.ninja`` written by torch.utils.cpp_extension) and
each compiled extension (``*.so``), report what it was built with and, for
``.so`` files, whether it still loads in the current environment (tested in a
subprocess, so a crashing library cannot take the check down). Judging
staleness is the rules' job: this module reports facts.

The scan is bounded: ``ctx.scan_depth`` levels, at most ``MAX_ENTRIES`` entries,
no symlinked directories (so no loops and nothing outside the tree), and no
``.git``, ``node_modules``, virtualenvs or site-packages.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from envdoctor.model import Fact
from envdoctor.parsers import build_ninja, elf
from envdoctor.probes._inproc import find_spec_as_child, same_interpreter
from envdoctor.probes.base import Probe, ProbeContext

MAX_ENTRIES = 20000
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", "site-packages", "dist-packages",
             ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
_EXT_NAME = re.compile(r"(\.cpython-\d+[^/]*|\.abi3|\.pypy\d*[^/]*)\.so$")
_KNOWN_EXT = re.compile(r"^(MultiScaleDeformableAttention|_C|envdoctor\w*)[.\w-]*\.so$")
_SETUP_EXT = re.compile(r"CUDAExtension|CppExtension|BuildExtension")


@dataclass
class ScanResult:
    build_dirs: List[str] = field(default_factory=list)
    extensions: List[str] = field(default_factory=list)
    source_roots: List[str] = field(default_factory=list)
    visited: int = 0
    capped: bool = False
    skipped_links: List[str] = field(default_factory=list)


def probe_builds(ctx: ProbeContext) -> List[Fact]:
    roots = [os.path.abspath(p) for p in (ctx.paths or ())]
    scan = ScanResult()
    for root in roots:
        _walk(root, root, 0, max(0, ctx.scan_depth), scan)
    items = [_safely(describe_build_dir, d, "build_dir") for d in scan.build_dirs]
    items += [_safely(describe_extension, p, "extension") for p in scan.extensions]
    for item in items:
        item["installed"] = False
    scanned = {os.path.realpath(p) for p in scan.extensions}
    for path in installed_extensions(ctx):
        if os.path.realpath(path) not in scanned:
            item = _safely(describe_extension, path, "extension")
            item["installed"] = True
            items.append(item)
    testable = [i["path"] for i in items if i["kind"] == "extension" and i["imports"] is None]
    names: Dict[str, List[str]] = {}
    if ctx.quick:  # loading extensions means importing torch: not in quick mode
        results = {path: (None, "not tested (quick mode)", None) for path in testable}
    elif testable:
        from envdoctor.probes._ext_loading import import_check  # needed only where there is something to load

        results = import_check(ctx, testable, names)
    else:
        results = {}
    for item in items:
        if item["path"] in names:  # what a Python extension module defines: its wrapper's calls must be there
            item["defines"] = names[item["path"]]
        if item["path"] in results:
            item["imports"], item["import_error"], note = results[item["path"]]
            if note:  # e.g. it only failed next to another library registering its TORCH_LIBRARY namespace
                item["import_note"] = note
    source = f"scan of {', '.join(roots) or 'no paths'} (depth {ctx.scan_depth}, {scan.visited} entries)"
    raw = None
    if scan.capped:
        source += f"; stopped after {MAX_ENTRIES} entries"
        raw = f"scan stopped after {MAX_ENTRIES} entries: pass a narrower path to see everything"
    return [Fact("builds", items, source=source, raw=raw),
            Fact("ext_sources", scan_sources(scan.source_roots), source="extension sources: " +
                 (", ".join(scan.source_roots) or "none found")),
            Fact("ext_projects", _describe_projects(roots) if scan.source_roots else [],
                 source="extension source trees, their wrappers and silent fallbacks under " +
                 (", ".join(roots) or "no paths"))]


def _describe_projects(roots: List[str]) -> List[Dict[str, Any]]:
    from envdoctor.probes import _ext_projects  # imported only where extension sources were found

    return _ext_projects.describe(roots)


def _safely(describe, path: str, kind: str) -> Dict[str, Any]:
    """One unreadable build must not cost the others: it becomes an item saying why."""
    try:
        return describe(path)
    except (OSError, ValueError, UnicodeError) as exc:
        name = os.path.basename(path).split(".")[0]
        empty = {k: None for k in ("torch", "cuda_home", "nvcc", "cuda", "python", "cxx11_abi")}
        return {"path": path, "kind": kind, "name": name, "owner": owner_of(path, name),
                "built_with": dict(empty, archs=[]), "built_at": None, "imports": False if kind == "extension"
                else None, "import_error": f"could not read it: {exc}"}


# Compiled ops that projects install into site-packages (`sh make.sh` runs `setup.py install`):
# the copy that `import` finds is the one that matters, wherever the scan looked.
INSTALLED_OPS = ("MultiScaleDeformableAttention",)
_FIND_SCRIPT = (
    "import importlib.util, json, sys\n"
    "found = []\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        spec = importlib.util.find_spec(name)\n"
    "    except Exception:\n"
    "        spec = None\n"
    "    if spec is not None and spec.origin and spec.origin.endswith('.so'):\n"
    "        found.append(spec.origin)\n"
    "print(json.dumps(found))\n"
)


def installed_extensions(ctx: ProbeContext) -> List[str]:
    """Where the diagnosed Python would import the known compiled ops from (find_spec: no import)."""
    if same_interpreter(ctx):
        # The same question answered here: no interpreter start on the check's critical path.
        # A child `python -c` searches the current directory first ("").
        origins = [getattr(find_spec_as_child(name, ""), "origin", None) for name in INSTALLED_OPS]
        return [p for p in origins if isinstance(p, str) and p.endswith(".so") and os.path.isfile(p)]
    env = dict(ctx.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    res = ctx.runner.run([ctx.python, "-c", _FIND_SCRIPT, *INSTALLED_OPS], env=env, timeout=ctx.timeout)
    if not res.ok:
        return []
    try:
        found = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []
    return [p for p in found if isinstance(p, str) and os.path.isfile(p)]


def _is_env_dir(path: str) -> bool:
    """A virtualenv or conda env: its compiled files are installed packages, not the user's builds."""
    return os.path.exists(os.path.join(path, "pyvenv.cfg")) or os.path.isdir(os.path.join(path, "conda-meta"))


def _walk(root: str, directory: str, depth: int, max_depth: int, scan: ScanResult) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    names = {e.name for e in entries}
    if "build.ninja" in names and _is_torch_build(os.path.join(directory, "build.ninja")):
        owner_dir = build_dir_of(directory)
        if owner_dir not in scan.build_dirs:
            scan.build_dirs.append(owner_dir)
    if ("setup.py" in names and _setup_builds_extension(os.path.join(directory, "setup.py"))) or "make.sh" in names:
        scan.source_roots.append(directory)
    for entry in entries:
        if scan.visited >= MAX_ENTRIES:
            scan.capped = True
            return
        scan.visited += 1
        if entry.is_symlink():
            _symlinked_file(root, entry, scan)
            continue  # never follow a linked directory: no loops, nothing outside the tree
        if entry.is_dir(follow_symlinks=False):
            if depth < max_depth and entry.name not in SKIP_DIRS and not _is_env_dir(entry.path):
                _walk(root, entry.path, depth + 1, max_depth, scan)
        elif entry.name.endswith(".so") and _looks_like_extension(entry.path, names):
            scan.extensions.append(entry.path)


def _symlinked_file(root: str, entry: "os.DirEntry[str]", scan: ScanResult) -> None:
    target = os.path.realpath(entry.path)
    inside = target == root or target.startswith(root.rstrip(os.sep) + os.sep)
    if not inside or not os.path.isfile(target):
        scan.skipped_links.append(entry.path)
        return
    if entry.name.endswith(".so") and _looks_like_extension(entry.path, set()) and target not in scan.extensions:
        scan.extensions.append(entry.path)


def _looks_like_extension(path: str, siblings: set) -> bool:
    name = os.path.basename(path)
    if _KNOWN_EXT.match(name) or _EXT_NAME.search(name):
        return True
    # A plain name.so counts only where a build put it: build/lib.*, beside a setup.py, or in a
    # torch JIT build dir (~/.cache/torch_extensions/py311_cu130/name/name.so, beside build.ninja).
    return bool({"setup.py", "build.ninja"} & siblings) or f"{os.sep}build{os.sep}lib." in path


def _is_torch_build(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(200000)
    except OSError:
        return False
    return "TORCH_EXTENSION_NAME" in head or "/torch/include" in head


def _setup_builds_extension(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return bool(_SETUP_EXT.search(fh.read(200000)))
    except OSError:
        return False


def owner_of(path: str, name: Optional[str]) -> str:
    text = f"{path}/{name or ''}"
    if "MultiScaleDeformableAttention" in text or re.search(r"mask2former|MSDeformAttn|ms_deform", text, re.I):
        return "mask2former"
    if re.search(r"detectron2", text):
        return "detectron2"
    if re.search(r"envdoctor", os.path.basename(path) + "/" + (name or "")):
        return "envdoctor"
    return "other"


def _mtime(*paths: str) -> Optional[float]:
    for path in paths:
        try:
            return os.stat(path).st_mtime
        except OSError:
            continue
    return None


def build_dir_of(ninja_dir: str) -> str:
    """The directory a person removes to drop a build: setuptools' ``build/`` (which holds
    ``temp.*/build.ninja`` and ``lib.*/*.so``), or a torch JIT build dir itself."""
    parent = os.path.dirname(ninja_dir)
    if os.path.basename(ninja_dir).startswith("temp.") and os.path.basename(parent) == "build":
        return parent
    return ninja_dir


def _newest_ninja(directory: str) -> str:
    """build.ninja of a build dir; for setuptools' build/, the newest of its temp.*/build.ninja."""
    direct = os.path.join(directory, "build.ninja")
    if os.path.isfile(direct):
        return direct
    candidates = [os.path.join(directory, name, "build.ninja") for name in os.listdir(directory)
                  if name.startswith("temp.")]
    candidates = [c for c in candidates if os.path.isfile(c)]
    if not candidates:
        raise ValueError(f"no build.ninja under {directory}")
    return max(candidates, key=lambda c: _mtime(os.path.join(os.path.dirname(c), ".ninja_log"), c) or 0.0)


def describe_build_dir(directory: str) -> Dict[str, Any]:
    ninja_path = _newest_ninja(directory)
    with open(ninja_path, encoding="utf-8", errors="replace") as fh:
        parsed = build_ninja.parse(fh.read(), os.path.dirname(ninja_path))
    built_at = _mtime(os.path.join(os.path.dirname(ninja_path), ".ninja_log"), ninja_path)
    built_with = _built_with(parsed, built_at)
    built_with["build_ninja"] = ninja_path
    name = parsed.get("name") or os.path.basename(directory)
    return {"path": directory, "kind": "build_dir", "name": name, "owner": owner_of(directory, name),
            "built_with": built_with, "built_at": built_at, "imports": None, "import_error": None}


def _built_with(parsed: Dict[str, Any], built_at: Optional[float]) -> Dict[str, Any]:
    near = build_ninja.torch_version_near(parsed.get("torch_include"), built_at)
    torch = parsed.get("torch")
    if torch is None and near["reinstalled_after_build"] is False:
        torch = near["installed_now"]  # the torch beside the headers predates the build: it is the one used
    cuda = parsed.get("cuda")
    if cuda is None and parsed.get("is_cuda"):
        cuda = build_ninja.cuda_version_of(parsed.get("cuda_home"))
    return {"torch": torch, "cuda_home": parsed.get("cuda_home"), "nvcc": parsed.get("nvcc"), "cuda": cuda,
            "python": parsed.get("python"), "archs": parsed.get("archs") or [], "cxx11_abi": parsed.get("cxx11_abi"),
            "is_cuda": parsed.get("is_cuda"), "torch_include": parsed.get("torch_include"),
            "torch_reinstalled_after_build": near["reinstalled_after_build"], "cuda_major": _major(cuda)}


def _major(version: Optional[str]) -> Optional[int]:
    match = re.match(r"(\d+)", str(version or ""))
    return int(match.group(1)) if match else None


def describe_extension(path: str) -> Dict[str, Any]:
    name = os.path.basename(path).split(".")[0]
    dynamic = elf.read_dynamic(path)
    needs = elf.cuda_from_needed(dynamic["needed"])
    tag = re.search(r"\.cpython-(\d)(\d+)", os.path.basename(path))
    built_with: Dict[str, Any] = {
        "torch": None, "cuda_home": None, "nvcc": None, "cuda": needs["cuda"],
        "python": f"{tag.group(1)}.{tag.group(2)}" if tag else None, "archs": [], "cxx11_abi": None,
        "is_cuda": needs["is_cuda"] or ".nv_fatbin" in dynamic["sections"], "needed": dynamic["needed"],
    }
    ninja = _sibling_build_ninja(path)
    if ninja:
        with open(ninja, encoding="utf-8", errors="replace") as fh:
            parsed = build_ninja.parse(fh.read(), os.path.dirname(ninja))
        from_ninja = _built_with(parsed, _mtime(ninja))
        for key, value in from_ninja.items():
            if built_with.get(key) in (None, []) and value not in (None, []):
                built_with[key] = value
        ninja_cuda = from_ninja.get("cuda")
        if ninja_cuda and str(ninja_cuda).startswith(f"{built_with['cuda']}."):
            built_with["cuda"] = ninja_cuda  # "11" from the soname, "11.1" from the toolkit that built it
        built_with["build_dir"] = os.path.dirname(ninja)
    built_with["cuda_major"] = _major(built_with.get("cuda"))
    item = {"path": path, "kind": "extension", "name": name, "owner": owner_of(path, name),
            "built_with": built_with, "built_at": _mtime(path), "imports": None, "import_error": None}
    if dynamic["error"]:
        item["imports"], item["import_error"] = False, dynamic["error"]
    return item


def _sibling_build_ninja(so_path: str) -> Optional[str]:
    """The build.ninja that made ``so_path``: ``build/lib.X/foo.so`` <- ``build/temp.X/``; a torch JIT
    extension sits beside its build.ninja; an in-place build (``build_ext --inplace``) left
    ``build/temp.*`` for the same Python up to three levels above the file."""
    parent = os.path.dirname(so_path)
    beside = os.path.join(parent, "build.ninja")
    if os.path.isfile(beside):
        return beside
    for _ in range(4):
        if os.path.basename(parent).startswith("lib.") and os.path.basename(os.path.dirname(parent)) == "build":
            candidate = os.path.join(os.path.dirname(parent), "temp." + os.path.basename(parent)[4:], "build.ninja")
            return candidate if os.path.isfile(candidate) else None
        parent = os.path.dirname(parent)
    return _inplace_build_ninja(so_path)


def _inplace_build_ninja(so_path: str) -> Optional[str]:
    tag = re.search(r"\.cpython-(\d)(\d+)", os.path.basename(so_path))
    if not tag:
        return None
    suffixes = (f"cpython-{tag.group(1)}{tag.group(2)}", f"-{tag.group(1)}.{tag.group(2)}")
    directory = os.path.dirname(so_path)
    for _ in range(4):
        build = os.path.join(directory, "build")
        try:
            names = sorted(os.listdir(build)) if os.path.isdir(build) else []
        except OSError:
            names = []
        for name in names:
            candidate = os.path.join(build, name, "build.ninja")
            if name.startswith("temp.") and name.endswith(suffixes) and os.path.isfile(candidate):
                return candidate
        directory = os.path.dirname(directory)
    return None


def scan_sources(roots: List[str]) -> List[Dict[str, Any]]:
    if not roots:
        return []  # the scanner module (and difflib) is not worth importing for nothing
    try:
        from envdoctor.fix.sources import scan
    except ImportError:
        scan = _minimal_scan
    found: List[Dict[str, Any]] = []
    seen = set()
    for root in roots:  # a root nested in another is walked by both: each use is reported once
        try:
            uses = scan(root)
        except (OSError, UnicodeError):
            continue
        for use in uses:
            key = (os.path.realpath(str(use.get("file"))), use.get("line"), use.get("api"))
            if key not in seen:
                seen.add(key)
                found.append(use)
    return found


_DEPRECATED = (("THC/THC.h", re.compile(r"#\s*include\s*[<\"]THC/"), "#include <ATen/cuda/CUDAContext.h>"),
               ("AT_CHECK", re.compile(r"\bAT_CHECK\s*\("), "TORCH_CHECK("),
               ("x.type() in AT_DISPATCH", re.compile(r"AT_DISPATCH_\w+\s*\(\s*[\w.>-]+\.type\(\)"),
                "x.scalar_type()"),
               (".data<T>()", re.compile(r"\.data\s*<[^>]+>\s*\(\)"), ".data_ptr<T>()"))


def _minimal_scan(root: str) -> List[Dict[str, Any]]:
    """Used only when envdoctor.fix.sources is unavailable: the most common removed APIs."""
    found: List[Dict[str, Any]] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and d != "build"
                   and not os.path.islink(os.path.join(directory, d))]
        for name in files:
            if not name.endswith((".cu", ".cuh", ".cpp", ".h", ".hpp", ".cc")):
                continue
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8", errors="replace") as fh:
                for number, line in enumerate(fh, 1):
                    for api, pattern, replacement in _DEPRECATED:
                        if pattern.search(line):
                            found.append({"file": path, "line": number, "api": api, "text": line.strip(),
                                          "replacement": replacement})
    return found


PROBE = Probe(name="builds", fn=probe_builds, keys=("builds", "ext_sources", "ext_projects"), slow=True)
