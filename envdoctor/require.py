"""Declared requirements: the ``[tool.envdoctor.require]`` table of a project.

A project states what its jobs need (``driver = ">=535"``, ``gpus = 1``,
``imports = ["detectron2._C"]`` ...). The table is read here, checked strictly
(an unknown key or a malformed spec is a usage error naming the key and the
allowed ones) and turned into ``require.<key>`` facts; the rules in
``envdoctor/rules/require.py`` (ED8xx) compare them with what the probes saw.

    load_requirements(path)        -> Requirements (raises RequirementError)
    find_requirements(start_dir)   -> Requirements or None (pyproject.toml, from the directory upward)
    requirement_facts(reqs)        -> [Fact("require.driver", ">=535", source="pyproject.toml ...")]
    spec_allows(spec, version)     -> True / False / None (version not comparable)

Pure, apart from reading the TOML file; ``run_check`` at the end runs the engine with the
requirement facts (and imports the declared modules in fresh interpreters).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from typing import TYPE_CHECKING

from envdoctor.model import Fact, FactSet

if TYPE_CHECKING:  # packaging is imported where a spec is parsed: `check` without a table never pays for it
    from packaging.specifiers import SpecifierSet

TABLE = "tool.envdoctor.require"
HEADER = "[tool.envdoctor.require]"

# key -> (kind, what it means); the order is the order of docs and of `require --init`.
KEYS: Dict[str, Tuple[str, str]] = {
    "driver": ("spec", "NVIDIA driver version, e.g. \">=535\""),
    "torch": ("spec", "torch release (PEP 440), e.g. \">=2.1,<3\""),
    "torch_cuda": ("spec", "CUDA version torch was built for, e.g. \"12.*\""),
    "nvcc": ("spec_or_true", "nvcc version, e.g. \">=12.1\", or true for \"an nvcc is on PATH\""),
    "gcc": ("spec", "gcc version, e.g. \"<14\""),
    "compute_capability": ("spec", "compute capability of every GPU, e.g. \">=8.0\""),
    "gpus": ("count", "minimum number of GPUs, e.g. 1"),
    "gpu_memory_gb": ("number", "minimum memory per GPU in GB (10^9 bytes), e.g. 16"),
    "nccl": ("spec", "NCCL version torch uses, e.g. \">=2.18\""),
    "imports": ("modules", "modules that must import in a fresh interpreter, e.g. [\"detectron2._C\"]"),
    "cuda_kernels": ("modules", "modules whose binaries must carry device code for this machine's GPUs"),
}

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class RequirementError(ValueError):
    """The requirement table is not valid: the message names the file, the key and what is allowed."""


@dataclass
class Requirements:
    source: str  # the file as shown to the user
    values: Dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values)


def allowed_keys() -> str:
    return ", ".join(KEYS)


# ---------------------------------------------------------------- specs

def normalise_spec(text: str) -> str:
    """``"13.*"`` and ``"2.1"`` mean ``==``; ``">=535, <600"`` stays as written (spaces dropped)."""
    parts = [p.strip() for p in str(text).split(",")]
    return ",".join(("==" + p) if p[:1].isdigit() else p for p in parts)


def parse_spec(text: Any) -> "SpecifierSet":
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not isinstance(text, str) or not text.strip():
        raise InvalidSpecifier(f"expected a version spec string, got {text!r}")
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise InvalidSpecifier(f"empty part in {text!r}")
    return SpecifierSet(normalise_spec(text), prereleases=True)


def spec_allows(spec: str, version: Any) -> Optional[bool]:
    """Does ``version`` ("535.104.05", "2.14.1+cu130", "8.6") satisfy ``spec``? None: not a version."""
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(str(version).strip())
    except (InvalidVersion, TypeError):
        return None
    return parse_spec(spec).contains(parsed, prereleases=True)


# ---------------------------------------------------------------- validation

def _check_value(key: str, value: Any, where: str) -> Any:
    from packaging.specifiers import InvalidSpecifier

    kind, meaning = KEYS[key]

    def bad(why: str) -> RequirementError:
        return RequirementError(f"{where}: {key} = {value!r}: {why} (expected {meaning})")

    if kind in ("spec", "spec_or_true"):
        if kind == "spec_or_true" and value is True:
            return True
        try:
            parse_spec(value)
        except InvalidSpecifier as exc:
            raise bad(f"not a version spec ({exc})") from None
        return value.strip()
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("not a whole number >= 0")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise bad("not a number >= 0")
        return value
    if kind == "modules":
        if not isinstance(value, list) or not value:
            raise bad("not a non-empty list of module names")
        for name in value:
            if not isinstance(name, str) or not _MODULE.match(name):
                raise bad(f"{name!r} is not a module name")
        return list(dict.fromkeys(value))
    raise AssertionError(kind)


def validate(table: Any, where: str) -> Dict[str, Any]:
    """The checked table; RequirementError names the first bad key and the allowed ones."""
    if not isinstance(table, dict):
        raise RequirementError(f"{where}: [{TABLE}] must be a table of key = value lines")
    values: Dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            raise RequirementError(f"{where}: unknown requirement key '{key}' in [{TABLE}]; "
                                   f"allowed keys: {allowed_keys()}")
        values[key] = _check_value(key, value, where)
    return values


# ---------------------------------------------------------------- files

def _toml_loads(text: str) -> Dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found]  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.9/3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise RequirementError("reading TOML needs Python >= 3.11 or the 'tomli' package "
                                   "(python -m pip install tomli)") from None
    return tomllib.loads(text)


def parse_toml(text: str, where: str) -> Dict[str, Any]:
    try:
        return _toml_loads(text)
    except RequirementError:
        raise
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise RequirementError(f"{where}: not valid TOML ({exc})") from None


def table_of(data: Dict[str, Any]) -> Optional[Any]:
    node: Any = data
    for part in TABLE.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def display_path(path: str, cwd: Optional[str] = None) -> str:
    """The path relative to the working directory when it lies below it or in one of its parents
    (``../pyproject.toml``), else absolute."""
    cwd = cwd or os.getcwd()
    absolute = os.path.abspath(path)
    rel = os.path.relpath(absolute, cwd)
    parts = rel.split(os.sep)
    ups = len(parts) - len([p for p in parts if p != ".."])
    return rel if ".." not in parts[ups:] and (ups == 0 or len(parts) == ups + 1) else absolute


def load_requirements(path: str, missing_table_ok: bool = False) -> Requirements:
    """Read ``[tool.envdoctor.require]`` from a TOML file (a pyproject.toml or a file holding only it).

    A file given on purpose without the table is an error, unless ``missing_table_ok``."""
    shown = display_path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise RequirementError(f"cannot read {shown}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RequirementError(f"{shown}: not UTF-8 text") from None
    table = table_of(parse_toml(text, shown))
    if table is None:
        if missing_table_ok:
            return Requirements(source=shown)
        raise RequirementError(f"{shown}: no [{TABLE}] table (write one with `envdoctor require --init`)")
    return Requirements(source=shown, values=validate(table, shown))


def find_pyproject(start: str) -> Optional[str]:
    """The nearest pyproject.toml from ``start`` upward that mentions ``tool.envdoctor``."""
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            try:
                with open(candidate, encoding="utf-8", errors="replace") as fh:
                    if "tool.envdoctor" in fh.read():
                        return candidate
            except OSError:
                pass
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def find_requirements(start: str = ".") -> Optional[Requirements]:
    path = find_pyproject(start)
    if path is None:
        return None
    reqs = load_requirements(path, missing_table_ok=True)
    return reqs if reqs else None


def requirement_facts(reqs: Requirements) -> List[Fact]:
    source = f"{reqs.source} [{TABLE}]"
    return [Fact(key=f"require.{key}", value=value, source=source) for key, value in reqs.values.items()]


# ---------------------------------------------------------------- running the checks

def resolve(require_file: Optional[str] = None, start: str = ".", discover: bool = True) -> Optional[Requirements]:
    """The requirements to check: from ``--require FILE``, else the nearest pyproject.toml (when ``discover``)."""
    if require_file:
        return load_requirements(require_file)
    return find_requirements(start) if discover else None


def _with_requirements(facts, reqs: Optional[Requirements], extra=()) -> FactSet:
    # A table given now replaces the requirements a saved report carries, key by key and as a whole.
    merged = FactSet(f for f in facts if not (reqs and f.key.startswith("require.")))
    for fact in (requirement_facts(reqs) if reqs else []):
        merged.add(fact)
    for fact in extra:
        merged.add(fact)
    return merged


def _skip_undeclared(facts, skip: Sequence[str]) -> Tuple[str, ...]:
    """``skip`` plus the requirement rules (ED8xx) whose key the project does not declare: they
    have nothing to check, and are left out of the report instead of listed as skipped."""
    from envdoctor.rules import all_rules

    undeclared = [r.code for r in all_rules()
                  if any(n.startswith("require.") for n in r.needs)
                  and not all(n in facts for n in r.needs if n.startswith("require."))]
    return tuple(skip) + tuple(undeclared)


def diagnose_with(facts, reqs: Optional[Requirements], only: Sequence[str] = (), skip: Sequence[str] = (),
                  meta: Optional[Dict[str, Any]] = None):
    """Re-diagnose saved facts, adding (or replacing) the requirement facts."""
    from envdoctor import engine

    merged = _with_requirements(facts, reqs)
    meta = dict(meta or {})
    if reqs:
        meta["requirements"] = reqs.source
    return engine.diagnose(merged, only=only, skip=_skip_undeclared(merged, skip), meta=meta)


def run_check(reqs: Optional[Requirements], env: Optional[Mapping[str, str]] = None, paths: Sequence[str] = (".",),
              quick: bool = False, only: Sequence[str] = (), skip: Sequence[str] = (), timeout: float = 10.0):
    """Probe this machine and diagnose it against ``reqs``; modules to import are tried while the
    probes run."""
    from concurrent.futures import ThreadPoolExecutor

    from envdoctor import engine
    from envdoctor.probes.base import ProbeContext

    if not reqs:
        return engine.run_check(env=env, paths=paths, quick=quick, only=only, skip=_skip_undeclared((), skip),
                                timeout=timeout)
    from envdoctor.probes.imports import probe_imports  # only a requirements table asks for imports
    imports, kernels = reqs.values.get("imports", []), reqs.values.get("cuda_kernels", [])
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        if imports or kernels:
            ctx = ProbeContext(env=dict(os.environ if env is None else env), timeout=timeout, paths=())
            pending = pool.submit(probe_imports, ctx, imports, kernels)
        report = engine.run_check(env=env, paths=paths, quick=quick, only=only, skip=skip, timeout=timeout)
        try:
            extra = pending.result() if pending else []
        except Exception as exc:  # a crashing probe is a result (a crashed check, exit 3), not a crash
            why = f"probe 'imports' crashed: {type(exc).__name__}: {exc}"
            extra = [Fact.unavailable("probe.imports", why, source="envdoctor"),
                     Fact.unavailable("import_check", why, source="probe imports")]
    merged = _with_requirements(report.facts, reqs, extra)
    meta = dict(report.meta, requirements=reqs.source)
    return engine.diagnose(merged, only=only, skip=_skip_undeclared(merged, skip), meta=meta)


# ---------------------------------------------------------------- require --init

def _major_minor(version: Any) -> Optional[Tuple[int, int]]:
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?", str(version or ""))
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def pin_table(facts) -> List[Tuple[str, Any, str]]:
    """``(key, value or None, note)`` pinning what works on the machine the facts describe.
    None: nothing to pin here (written as a commented example)."""
    torch = facts.value("torch") or {}
    gpus = facts.value("gpus") or []
    rows: List[Tuple[str, Any, str]] = []
    driver = _major_minor(facts.value("driver.version"))
    rows.append(("driver", f">={driver[0]}" if driver else None, "no NVIDIA driver here" if not driver else ""))
    version = _major_minor(torch.get("version"))
    rows.append(("torch", f">={version[0]}.{version[1]}" if version else None, "" if version else "no torch here"))
    cuda = _major_minor(torch.get("cuda"))
    rows.append(("torch_cuda", f"{cuda[0]}.*" if cuda else None, "" if cuda else "torch is not a CUDA build here"))
    nvcc = _major_minor(facts.value("nvcc.version"))
    rows.append(("nvcc", f"{nvcc[0]}.*" if nvcc else None, "" if nvcc else "no nvcc on PATH here"))
    gcc = _major_minor((facts.value("compiler.gcc") or {}).get("version"))
    rows.append(("gcc", f"{gcc[0]}.*" if gcc else None, "" if gcc else "no gcc on PATH here"))
    caps = sorted(c for c in (_major_minor(g.get("compute_cap")) for g in gpus) if c)
    rows.append(("compute_capability", f">={caps[0][0]}.{caps[0][1]}" if caps else None,
                 "" if caps else "no GPU here"))
    rows.append(("gpus", len(gpus) if gpus else None, "" if gpus else "no GPU here"))
    memory = [g.get("memory_total_mib") for g in gpus if isinstance(g.get("memory_total_mib"), (int, float))]
    rows.append(("gpu_memory_gb", int(min(memory) * (1 << 20) / 1e9) if memory else None,
                 "" if memory else "no GPU here"))
    nccl = _major_minor(torch.get("nccl"))
    rows.append(("nccl", f">={nccl[0]}.{nccl[1]}" if nccl else None, "" if nccl else "torch has no NCCL here"))
    imports = []
    if torch.get("version"):
        imports.append("torch")
    vision = facts.value("torchvision") or {}
    if vision.get("version") and not vision.get("import_error"):
        imports.append("torchvision")
    detectron2 = facts.value("detectron2") or {}
    if detectron2.get("imports"):
        imports += ["detectron2", "detectron2._C"]
    rows.append(("imports", imports or None, "" if imports else "nothing importable found here"))
    kernels = ["detectron2._C"] if detectron2.get("imports") and detectron2.get("cuda") else None
    rows.append(("cuda_kernels", kernels, "" if kernels else "e.g. your compiled CUDA extensions"))
    return rows


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)  # TOML basic strings and numbers read the same


_EXAMPLES = {"driver": ">=535", "torch": ">=2.1", "torch_cuda": "12.*", "nvcc": "12.*", "gcc": "<14",
             "compute_capability": ">=8.0", "gpus": 1, "gpu_memory_gb": 16, "nccl": ">=2.18",
             "imports": ["torch"], "cuda_kernels": ["detectron2._C"]}


def format_table(rows: List[Tuple[str, Any, str]], machine: str = "this machine") -> str:
    lines = [HEADER, f"# Pinned from what works on {machine} by `envdoctor require --init`; edit freely.",
             "# Keys: docs/ci.md. An unmet requirement fails `envdoctor check` (exit status 1)."]
    for key, value, note in rows:
        if value is None:
            lines.append(f"# {key} = {_toml_value(_EXAMPLES[key])}" + (f"  # {note}" if note else ""))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


_HEADER_LINE = re.compile(r"^\s*\[\s*tool\s*\.\s*envdoctor\s*\.\s*require\s*\]\s*(#.*)?$")
_TABLE_LINE = re.compile(r"^\s*\[")


def _without_table(data: Dict[str, Any]) -> Dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    envdoctor = data.get("tool", {}).get("envdoctor", {})
    envdoctor.pop("require", None)
    if "envdoctor" in data.get("tool", {}) and not envdoctor:
        data["tool"].pop("envdoctor")
    if "tool" in data and not data["tool"]:
        data.pop("tool")
    return data


def edited_pyproject(old: Optional[str], table_text: str, where: str, force: bool = False) -> str:
    """The new file text: the table appended, or (with ``force``) replacing the old one.

    Raises RequirementError instead of risking the user's file: invalid TOML, a table
    already there without ``force``, a table written in another form (inline, dotted keys),
    or a result that would change anything but the table."""
    if old is None:
        return table_text
    before = parse_toml(old, where)
    lines = old.splitlines(keepends=True)
    if table_of(before) is not None:
        if not force:
            raise RequirementError(f"{where} already has a [{TABLE}] table; not changed. Use --force to replace "
                                   f"it, or --print to see the new one")
        starts = [i for i, line in enumerate(lines) if _HEADER_LINE.match(line)]
        if len(starts) != 1:
            raise RequirementError(f"{where}: [{TABLE}] is not written as one [{TABLE}] section; edit it by hand "
                                   f"(`envdoctor require --init --print` shows the new table)")
        start = starts[0]
        end = next((i for i in range(start + 1, len(lines)) if _TABLE_LINE.match(lines[i])), len(lines))
        while end > start + 1 and not lines[end - 1].strip():  # keep the blank lines before the next table
            end -= 1
        new = "".join(lines[:start]) + table_text + "".join(lines[end:])
    else:
        new = old + ("" if old.endswith("\n") or not old else "\n") + ("\n" if old.strip() else "") + table_text
    after = parse_toml(new, where + " (as edited)")
    if _without_table(after) != _without_table(before) or table_of(after) is None:
        raise RequirementError(f"{where}: editing it would change more than [{TABLE}]; not changed. Edit it by "
                               f"hand (`envdoctor require --init --print` shows the new table)")
    validate(table_of(after), where)
    return new


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    keeping the old file's permissions: the old file is whole until the new one is."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    mode = None
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".envdoctor-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
