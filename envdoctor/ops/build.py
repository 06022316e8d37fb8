"""Build the MSDeformAttn extension on demand, into a cache keyed by the environment.

The cache directory name hashes everything that makes a binary stale (torch,
torch's CUDA, Python, variant, archs, nvcc, CUDA_HOME, host compiler, flags,
sources), so a changed environment can never load a stale binary and a rebuild
in an unchanged one is a no-op. Before a CUDA build the plan is checked
(``preflight``) so the user gets an explanation instead of compiler errors; after
a failed build they get the first real error, not the whole log.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Mapping, Optional

from envdoctor.ops import buildlog
from envdoctor.ops.errors import BuildRefused
from envdoctor.parsers import arch_list as arch_parser
from envdoctor.rules import _build_model as model

MARKER = "envdoctor-build.json"
BUILD_TIMEOUT = 3600.0
_CPU_SOURCES = ("ms_deform_attn.cpp", "cpu/ms_deform_attn_cpu.cpp")
_CUDA_SOURCES = _CPU_SOURCES + ("cuda/ms_deform_attn_cuda.cu",)
# -fopenmp: at::parallel_for is an inline OpenMP region compiled into the extension.
_CFLAGS = ["-O3", "-fopenmp"]
_CUDA_CFLAGS = ["-O3", "-DWITH_CUDA"]

Progress = Callable[[str], None]


@dataclass
class BuildResult:
    ok: bool
    cached: bool = False
    path: Optional[str] = None  # the built shared library
    variant: str = "cpu"  # "cpu" | "cuda"
    archs: List[str] = field(default_factory=list)
    seconds: float = 0.0
    log_path: Optional[str] = None
    error: Optional[str] = None  # first real compiler/linker error + explanation, or the refusal
    refused: bool = False  # True when preflight stopped the build before compiling
    findings: List[dict] = field(default_factory=list)
    build_dir: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BuildPlan:
    variant: str
    archs: List[str]
    name: str
    sources: List[str]
    build_dir: str
    key_parts: Dict[str, str]
    child_env: Dict[str, str]
    jobs: int

    @property
    def library(self) -> str:
        return os.path.join(self.build_dir, self.name + ".so")


def source_dir() -> str:
    """``envdoctor/_csrc`` in an installed wheel, else the repository's ``csrc/``."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (os.path.join(package, "_csrc"), os.path.join(os.path.dirname(package), "csrc")):
        if os.path.isfile(os.path.join(candidate, "ms_deform_attn.cpp")):
            return candidate
    raise BuildRefused(f"the MSDeformAttn sources are missing (looked in {package}/_csrc and ../csrc); "
                       "reinstall envdoctor")


def sources_hash(root: str) -> str:
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()


def cache_root(env: Mapping[str, str], cache_dir: Optional[str] = None) -> str:
    if cache_dir:
        return os.path.abspath(os.path.expanduser(cache_dir))
    if env.get("ENVDOCTOR_CACHE_DIR"):
        return os.path.abspath(os.path.expanduser(env["ENVDOCTOR_CACHE_DIR"]))
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "envdoctor", "ops")


def present_gpu_archs() -> List[str]:
    """Compute capabilities of the GPUs this process's torch can see (empty without a usable GPU)."""
    import torch

    try:
        if not torch.cuda.is_available():
            return []
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    except Exception:  # a broken driver means "no usable GPU" here; `envdoctor check` explains why
        return []
    return [f"{major}.{minor}" for major, minor in sorted(caps)]


def _facts(env: Mapping[str, str], runner=None):
    """The machine as `envdoctor check` sees it (same probes, same rules): one truth."""
    from envdoctor import engine

    return engine.build_facts(env, runner)


def choose_variant(cuda: Optional[bool], archs: Optional[List[str]], env: Mapping[str, str], facts=None) -> str:
    """cuda=None: the CUDA variant when builds have an nvcc and there is something to build for."""
    if cuda is not None:
        return "cuda" if cuda else "cpu"
    prediction = model.predict(facts if facts is not None else _facts(env))
    has_toolkit = bool(prediction and prediction.nvcc)
    has_target = bool(archs or env.get("TORCH_CUDA_ARCH_LIST") or present_gpu_archs())
    return "cuda" if has_toolkit and has_target else "cpu"


def resolve_archs(requested: Optional[List[str]], env: Mapping[str, str], nvcc_version: Optional[str]) -> List[str]:
    """--arch, else TORCH_CUDA_ARCH_LIST, else exactly the GPUs present; parsed as torch's builder
    parses them and checked against what the build's nvcc can compile."""
    if requested:
        source = "--arch"
        parsed = arch_parser.parse(";".join(requested))
    elif env.get("TORCH_CUDA_ARCH_LIST") and env["TORCH_CUDA_ARCH_LIST"] != "native":
        source = "TORCH_CUDA_ARCH_LIST"
        parsed = arch_parser.parse(env["TORCH_CUDA_ARCH_LIST"])
    else:
        source = "the GPUs present"
        parsed = arch_parser.parse(";".join(present_gpu_archs()) or None)
    if not parsed.ok:
        raise BuildRefused(f"{source}={parsed.value!r}: torch's extension builder would stop with "
                           f"\"{parsed.error()}\" (ED501). Entries are compute capabilities separated by ';' or "
                           f"spaces, like \"8.0;9.0+PTX\".")
    if not parsed.entries:
        raise BuildRefused("no GPU is visible, so there is no arch to build the CUDA variant for (ED508). Name the "
                           "target GPUs' compute capabilities, e.g. `envdoctor build --arch 8.0 --arch 9.0` "
                           "(or set TORCH_CUDA_ARCH_LIST=\"8.0;9.0\"), or build `--cpu-only`.")
    if nvcc_version:
        from envdoctor import knowledge as kb

        bad = [e for e in parsed.entries
               if (kb.arch_support(arch_parser.base(e).rstrip("af"), nvcc_version) or {}).get("supported") is False]
        if bad:
            raise BuildRefused(f"nvcc {nvcc_version} cannot build {', '.join(bad)} (from {source}); it builds "
                               f"{', '.join(kb.nvcc_archs(nvcc_version)) or 'other architectures'}. Use a toolkit "
                               "that supports them (CUDA 12.x for Volta and older) or drop them from the arch list.")
    return sorted(parsed.entries, key=lambda e: arch_parser.parse(e).capabilities()[0])


def _compiler_identity(facts, prediction, env: Mapping[str, str]) -> str:
    """The C++ compiler (CXX or c++) and, for CUDA builds, nvcc's host compiler: part of the cache key."""
    gxx = facts.value("compiler.gxx") or {}
    cxx = env.get("CXX") or "c++"
    named = next((n for n in facts.value("compiler.named") or [] if n.get("var") == "CXX"), None)
    path = (named or {}).get("path") or (gxx.get("path") if cxx in ("c++", "g++") else cxx)
    version = (named or {}).get("version") or gxx.get("version")
    identity = f"{cxx}={path}: {version}"
    host = prediction.host if prediction else None
    if host is not None:
        identity += f"; nvcc host {host.name}={host.path}: {host.version}"
    return identity


def choose_jobs(env: Mapping[str, str], variant: str, facts) -> int:
    """MAX_JOBS from the user, else what fits in RAM (the budget `check` uses too), at least 1."""
    user = env.get("MAX_JOBS", "").strip()
    if user.isdigit() and int(user) > 0:
        return int(user)
    return model.jobs_that_fit(facts, variant) or 1


def plan_build(cuda: Optional[bool] = None, archs: Optional[List[str]] = None, cache_dir: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None, jobs: Optional[int] = None, runner=None,
               facts=None) -> BuildPlan:
    """Decide what to build and where. Raises BuildRefused for an impossible request."""
    import torch

    env = dict(os.environ if env is None else env)
    facts = facts if facts is not None else _facts(env, runner)
    prediction = model.predict(facts)
    variant = choose_variant(cuda, archs, env, facts)
    src = source_dir()
    key_parts = {
        "torch": torch.__version__, "torch_cuda": str(torch.version.cuda), "python": platform.python_version(),
        "variant": variant, "compiler": _compiler_identity(facts, prediction if variant == "cuda" else None, env),
        "cflags": " ".join(_CFLAGS), "sources": sources_hash(src),
    }
    child_env = dict(env)
    resolved_archs: List[str] = []
    if variant == "cuda":
        nvcc_version = prediction.nvcc_version if prediction else None
        resolved_archs = resolve_archs(archs, env, nvcc_version)
        home = prediction.cuda_home if prediction else None
        key_parts.update({
            "archs": ";".join(resolved_archs), "cuda_home": os.path.realpath(home) if home else "",
            "nvcc": str(nvcc_version), "cuda_cflags": " ".join(_CUDA_CFLAGS),
        })
        child_env["TORCH_CUDA_ARCH_LIST"] = arch_parser.join(resolved_archs)
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    chosen_jobs = jobs or choose_jobs(env, variant, facts)
    child_env["MAX_JOBS"] = str(chosen_jobs)
    return BuildPlan(variant=variant, archs=resolved_archs, name=f"envdoctor_msda_{variant}",
                     sources=[os.path.join(src, s) for s in (_CUDA_SOURCES if variant == "cuda" else _CPU_SOURCES)],
                     build_dir=os.path.join(cache_root(env, cache_dir), f"{variant}-{key}"),
                     key_parts=key_parts, child_env=child_env, jobs=chosen_jobs)


def cached_library(plan: BuildPlan, allow_more_archs: bool = False) -> Optional[str]:
    """The library of a finished build of exactly this plan, if there is one.

    allow_more_archs (for loading only): also accept a CUDA build of this same
    environment whose arch list contains the planned one, e.g. built with
    ``--arch 8.0 --arch 9.0`` and loaded on a machine with one sm_80 GPU.
    """
    if _marker_matches(os.path.join(plan.build_dir, MARKER), plan.key_parts, exact=True) and \
            os.path.isfile(plan.library):
        return plan.library
    if not allow_more_archs or plan.variant != "cuda":
        return None
    root = os.path.dirname(plan.build_dir)
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        directory = os.path.join(root, entry)
        library = os.path.join(directory, plan.name + ".so")
        if entry.startswith("cuda-") and os.path.isfile(library) and \
                _marker_matches(os.path.join(directory, MARKER), plan.key_parts, exact=False):
            return library
    return None


def _marker_matches(marker: str, key_parts: Dict[str, str], exact: bool) -> bool:
    try:
        with open(marker, encoding="utf-8") as fh:
            recorded = json.load(fh).get("key_parts", {})
    except (OSError, ValueError):
        return False
    if exact:
        return recorded == key_parts
    others_equal = {k: v for k, v in recorded.items() if k != "archs"} == \
        {k: v for k, v in key_parts.items() if k != "archs"}
    wanted = set(key_parts.get("archs", "").split(";")) - {""}
    return others_equal and bool(wanted) and wanted <= set(recorded.get("archs", "").split(";"))


def build_extension(cuda: Optional[bool] = None, archs: Optional[List[str]] = None, verbose: bool = False,
                    cache_dir: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                    jobs: Optional[int] = None, force: bool = False, progress: Optional[Progress] = None,
                    runner=None) -> BuildResult:
    """Build (or find in the cache) the extension for ``env``. Never raises for build problems."""
    say = progress or (lambda _msg: None)
    env = dict(os.environ if env is None else env)
    started = time.monotonic()
    facts = _facts(env, runner)
    try:
        plan = plan_build(cuda, archs, cache_dir, env, jobs, runner, facts=facts)
    except BuildRefused as exc:
        return BuildResult(ok=False, refused=True, variant=choose_variant(cuda, archs, env, facts), error=str(exc))
    result = BuildResult(ok=False, variant=plan.variant, archs=plan.archs, build_dir=plan.build_dir)
    if not force and cached_library(plan):
        say(f"up to date: {plan.library}")
        result.ok, result.cached, result.path = True, True, plan.library
        result.log_path = _existing(os.path.join(plan.build_dir, "build.log"))
        result.seconds = round(time.monotonic() - started, 2)
        return result
    say("checking the toolchain before compiling")
    blockers = _blockers(facts, plan)
    if blockers:
        result.refused, result.findings = True, [f.to_dict() for f in blockers]
        text = explain_blockers(blockers)
        if plan.variant == "cuda":
            text += "\nor build only the CPU kernels: envdoctor build --cpu-only"
        result.error = f"the {plan.variant.upper()} build would fail:\n" + text
        result.seconds = round(time.monotonic() - started, 2)
        return result
    if plan.variant == "cuda":
        prediction = model.predict(facts)
        plan.child_env["CUDA_HOME"] = prediction.cuda_home if prediction else ""
    if force and os.path.isdir(plan.build_dir):
        shutil.rmtree(plan.build_dir)
    os.makedirs(plan.build_dir, exist_ok=True)
    what = f"{plan.variant} variant" + (f" for sm {', '.join(plan.archs)}" if plan.archs else "")
    say(f"compiling the {what} ({len(plan.sources)} sources, {plan.jobs} jobs) in {plan.build_dir}")
    _compile(plan, result, verbose, say)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _blockers(facts, plan: BuildPlan) -> list:
    """The findings of check's build-blocking rules for this build (by code; the arch list the
    plan resolved, e.g. from --arch, counts as set)."""
    from envdoctor import engine
    from envdoctor.model import Fact

    if plan.archs:
        variables = dict(facts.value("env.vars") or {}, TORCH_CUDA_ARCH_LIST=arch_parser.join(plan.archs))
        facts.add(Fact("env.vars", variables, source="the build's environment"))
    # ED208 is about cuBLAS/cuSPARSE headers that ATen/cuda/CUDAContext.h pulls in; this op
    # includes only the c10/cuda headers, so it builds without them.
    return engine.build_blockers(facts, cuda=plan.variant == "cuda", skip=("ED208",))


def explain_blockers(findings) -> str:
    """Plain text for a refusal: each finding (code, title), why, and the commands that fix it."""
    lines: List[str] = []
    for f in findings:
        lines.append(f"[{f.code}] {f.title}")
        lines.append(f"  {f.message}")
        for fix in f.fixes:
            lines.append(f"  fix: {fix.summary}")
            lines.extend(f"    {cmd}" for cmd in fix.commands)
    return "\n".join(lines)


def _existing(path: str) -> Optional[str]:
    return path if os.path.exists(path) else None


def _compile(plan: BuildPlan, result: BuildResult, verbose: bool, say: Progress) -> None:
    log_path = os.path.join(plan.build_dir, "build.log")
    result_path = os.path.join(plan.build_dir, "worker-result.json")
    if os.path.exists(result_path):
        os.remove(result_path)
    spec_path = os.path.join(plan.build_dir, "spec.json")
    spec = {"name": plan.name, "sources": plan.sources, "build_dir": plan.build_dir,
            "with_cuda": plan.variant == "cuda", "extra_cflags": _CFLAGS + (["-DWITH_CUDA"] if plan.variant == "cuda" else []),
            "extra_cuda_cflags": _CUDA_CFLAGS, "include_paths": [os.path.dirname(plan.sources[0])],
            "result_path": result_path}
    _atomic_write(spec_path, json.dumps(spec, indent=1))
    env = dict(plan.child_env)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "envdoctor.ops._build_worker", spec_path]
    result.log_path = log_path
    code = _run_logged(argv, env, log_path, verbose, say)
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        log = fh.read()
    if code != 0 or not os.path.exists(result_path):
        result.error = buildlog.summarize_failure(log, log_path) if code is not None else \
            f"the build timed out after {BUILD_TIMEOUT:g}s; full log: {log_path}"
        return
    with open(result_path, encoding="utf-8") as fh:
        worker = json.load(fh)
    if plan.variant == "cuda" and not worker.get("has_cuda_kernel"):
        result.error = f"the library was built but registers no CUDA kernel; full log: {log_path}"
        return
    _atomic_write(os.path.join(plan.build_dir, MARKER),
                  json.dumps({"key_parts": plan.key_parts, "library": plan.library, "worker": worker,
                              "archs": plan.archs}, indent=1, sort_keys=True))
    result.ok, result.path = True, plan.library


def _run_logged(argv: List[str], env: Dict[str, str], log_path: str, verbose: bool, say: Progress) -> Optional[int]:
    """Run the worker with its output in ``log_path`` (echoed when verbose). None on timeout."""
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                text=True, errors="replace", start_new_session=True)
        deadline = time.monotonic() + BUILD_TIMEOUT
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the worker exits (or closes its output)
            log.write(line)
            if verbose:
                say(line.rstrip("\n"))
            elif _step(line):
                say(_step(line))
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                return None
        return proc.wait()


_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]\s")


def _step(line: str) -> Optional[str]:
    """"[2/3] compiling ms_deform_attn_cpu.cpp" from a ninja command line, else None."""
    match = _NINJA_STEP.match(line)
    if not match:
        return None
    source = re.search(r"\s-c\s+(\S+)", line)
    what = f"compiling {os.path.basename(source.group(1))}" if source else "linking"
    return f"[{match.group(1)}/{match.group(2)}] {what}"


def _atomic_write(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by a team
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
