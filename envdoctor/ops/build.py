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

from envdoctor.ops import buildlog, preflight, toolkit
from envdoctor.ops.errors import BuildRefused

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


def choose_variant(cuda: Optional[bool], archs: Optional[List[str]], env: Mapping[str, str]) -> str:
    """cuda=None: the CUDA variant when a toolkit is visible and there is something to build for."""
    if cuda is not None:
        return "cuda" if cuda else "cpu"
    has_toolkit = bool(env.get("CUDA_HOME") or env.get("CUDA_PATH") or toolkit.which("nvcc", env))
    has_target = bool(archs or env.get("TORCH_CUDA_ARCH_LIST") or toolkit.present_gpu_archs())
    return "cuda" if has_toolkit and has_target else "cpu"


def resolve_archs(requested: Optional[List[str]], env: Mapping[str, str], nvcc: Optional[str],
                  runner=None) -> List[str]:
    """--arch, else TORCH_CUDA_ARCH_LIST, else exactly the GPUs present; validated against nvcc."""
    try:
        if requested:
            archs, source = toolkit.parse_arch_list(requested), "--arch"
        elif env.get("TORCH_CUDA_ARCH_LIST"):
            archs, source = toolkit.parse_arch_list([env["TORCH_CUDA_ARCH_LIST"]]), "TORCH_CUDA_ARCH_LIST"
        else:
            archs, source = toolkit.present_gpu_archs(), "the GPUs present"
    except ValueError as exc:
        raise BuildRefused(str(exc)) from None
    if not archs:
        raise BuildRefused("no GPU is visible, so there is no arch to build the CUDA variant for. Name the "
                           "target GPUs' compute capabilities, e.g. `envdoctor build --arch 8.0 --arch 9.0` "
                           "(or set TORCH_CUDA_ARCH_LIST=\"8.0;9.0\"), or build `--cpu-only`.")
    supported = toolkit.nvcc_supported_archs(nvcc, runner) if nvcc else None
    bad = toolkit.unsupported_archs(archs, supported) if supported else []
    if bad:
        raise BuildRefused(f"this nvcc cannot build {', '.join('sm_' + toolkit.base_arch(a).replace('.', '') for a in bad)} "
                           f"(from {source}); it builds {', '.join(supported)}. Use a toolkit that supports them "
                           "(CUDA 12.x for Volta and older) or drop them from the arch list.")
    return archs


def plan_build(cuda: Optional[bool] = None, archs: Optional[List[str]] = None, cache_dir: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None, jobs: Optional[int] = None, runner=None) -> BuildPlan:
    """Decide what to build and where. Raises BuildRefused for an impossible request."""
    import torch

    env = dict(os.environ if env is None else env)
    variant = choose_variant(cuda, archs, env)
    src = source_dir()
    key_parts = {
        "torch": torch.__version__, "torch_cuda": str(torch.version.cuda), "python": platform.python_version(),
        "variant": variant, "compiler": toolkit.compiler_identity(env, runner),
        "cflags": " ".join(_CFLAGS), "sources": sources_hash(src),
    }
    child_env = dict(env)
    resolved_archs: List[str] = []
    if variant == "cuda":
        home, _ = toolkit.torch_cuda_home_guess(env)
        nvcc = os.path.join(home, "bin", "nvcc") if home else None
        resolved_archs = resolve_archs(archs, env, nvcc if nvcc and os.path.exists(nvcc) else None, runner)
        key_parts.update({
            "archs": ";".join(resolved_archs), "cuda_home": os.path.realpath(home) if home else "",
            "nvcc": str(toolkit.nvcc_version(nvcc, runner) if nvcc and os.path.exists(nvcc) else None),
            "cuda_cflags": " ".join(_CUDA_CFLAGS),
        })
        child_env["TORCH_CUDA_ARCH_LIST"] = ";".join(resolved_archs)
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    chosen_jobs = jobs or toolkit.choose_jobs(env, variant)
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
    try:
        plan = plan_build(cuda, archs, cache_dir, env, jobs, runner)
    except BuildRefused as exc:
        return BuildResult(ok=False, refused=True, variant=choose_variant(cuda, archs, env), error=str(exc))
    result = BuildResult(ok=False, variant=plan.variant, archs=plan.archs, build_dir=plan.build_dir)
    if not force and cached_library(plan):
        say(f"up to date: {plan.library}")
        result.ok, result.cached, result.path = True, True, plan.library
        result.log_path = _existing(os.path.join(plan.build_dir, "build.log"))
        result.seconds = round(time.monotonic() - started, 2)
        return result
    if plan.variant == "cuda":
        say("checking the toolchain before compiling")
        blockers = preflight.build_blockers(env, cuda=True, runner=runner)
        if blockers:
            result.refused, result.findings = True, [f.to_dict() for f in blockers]
            text = preflight.explain(blockers)
            if "envdoctor build --cpu-only" not in text:
                text += "\nor build only the CPU kernels: envdoctor build --cpu-only"
            result.error = "the CUDA build would fail:\n" + text
            result.seconds = round(time.monotonic() - started, 2)
            return result
        home, _ = toolkit.torch_cuda_home_guess(env)
        plan.child_env["CUDA_HOME"] = home or ""
    if force and os.path.isdir(plan.build_dir):
        shutil.rmtree(plan.build_dir)
    os.makedirs(plan.build_dir, exist_ok=True)
    what = f"{plan.variant} variant" + (f" for sm {', '.join(plan.archs)}" if plan.archs else "")
    say(f"compiling the {what} ({len(plan.sources)} sources, {plan.jobs} jobs) in {plan.build_dir}")
    _compile(plan, result, verbose, say)
    result.seconds = round(time.monotonic() - started, 2)
    return result


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
