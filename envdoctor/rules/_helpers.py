"""Shared helpers for rules: reading facts, comparing toolkits and versions, making fixes.

Rules never touch the filesystem: a saved report from another machine must be
re-diagnosed with the same verdicts. So "are these the same toolkit?" is answered
from the ``toolkits`` fact (each entry's ``root`` as found and its ``real_root``),
not from ``os.path.realpath`` on this machine.
"""
from __future__ import annotations

import posixpath
import shlex
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from envdoctor import knowledge as kb
from envdoctor.model import FactSet, Fix

MajorMinor = Tuple[int, int]


# ---------------------------------------------------------------- versions

def mm(version: Any) -> Optional[MajorMinor]:
    """(major, minor) of a CUDA-ish version string, or None."""
    if not version:
        return None
    try:
        return kb.cuda_major_minor(str(version))
    except (ValueError, TypeError):
        return None


def fmt_mm(pair: Optional[MajorMinor]) -> str:
    return f"{pair[0]}.{pair[1]}" if pair else "unknown"


def release_mm(version: Any) -> Optional[MajorMinor]:
    """(major, minor) of a package release such as torch's "2.14.1+cu130"."""
    if not version:
        return None
    parsed = kb.parse_version(str(version))
    if parsed is None or len(parsed.release) < 2:
        return None
    return parsed.release[0], parsed.release[1]


def public_version(version: Any) -> str:
    """"2.14.1+cu130" -> "2.14.1" (the local part names the build, not the release)."""
    return str(version or "").split("+", 1)[0]


def ev(key: str, value: Any) -> str:
    """One evidence line: "key = value"."""
    return f"{key} = {value}"


# ---------------------------------------------------------------- facts

def torch_info(facts: FactSet) -> Dict[str, Any]:
    return facts.value("torch") or {}


def env_vars(facts: FactSet) -> Dict[str, str]:
    return facts.value("env.vars") or {}


def toolkits(facts: FactSet) -> List[Dict[str, Any]]:
    return [t for t in (facts.value("toolkits") or []) if isinstance(t, dict)]


def gpus(facts: FactSet) -> List[Dict[str, Any]]:
    return [g for g in (facts.value("gpus") or []) if isinstance(g, dict)]


def python_mm(facts: FactSet) -> Optional[MajorMinor]:
    python = facts.value("env.python") or {}
    return release_mm(python.get("version"))


def conda_prefix(facts: FactSet) -> Optional[str]:
    python = facts.value("env.python") or {}
    return python.get("conda_prefix") or env_vars(facts).get("CONDA_PREFIX") or None


# ---------------------------------------------------------------- paths and toolkits

def norm_path(path: Optional[str]) -> Optional[str]:
    """Normalise a path as text: no trailing slash, no "//" or "/./"."""
    if not path:
        return None
    text = str(path).strip()
    if not text.startswith("/"):
        return text
    return posixpath.normpath(text)


def find_toolkit(path: Optional[str], found: Sequence[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The toolkit entry whose root or real root is ``path`` (or whose bin/ holds it)."""
    wanted = norm_path(path)
    if not wanted:
        return None
    for toolkit in found:
        for candidate in (toolkit.get("root"), toolkit.get("real_root"), *(toolkit.get("aliases") or ())):
            root = norm_path(candidate)
            if root and wanted in (root, posixpath.join(root, "bin"), posixpath.join(root, "bin", "nvcc")):
                return toolkit
    return None


def real_root(path: Optional[str], found: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """The toolkit a path names: its real root when known, else the normalised path."""
    toolkit = find_toolkit(path, found)
    if toolkit:
        return norm_path(toolkit.get("real_root") or toolkit.get("root"))
    return norm_path(path)


def same_toolkit(a: Optional[str], b: Optional[str], found: Sequence[Mapping[str, Any]]) -> bool:
    """/usr/local/cuda and /usr/local/cuda-13.0 are the same toolkit when one links to the other."""
    return bool(a and b) and real_root(a, found) == real_root(b, found)


def complete(toolkit: Optional[Mapping[str, Any]]) -> bool:
    """A toolkit a torch extension build can use: nvcc, headers and libcudart."""
    return bool(toolkit) and bool(toolkit.get("has_nvcc")) and bool(toolkit.get("has_runtime_header")) \
        and bool(toolkit.get("has_cudart"))


def toolkit_at(toolkit: Mapping[str, Any]) -> str:
    """"the CUDA 12.0.76 toolkit at /usr/local/cuda-12.0" (for sentences that add their own brackets)."""
    root = toolkit.get("real_root") or toolkit.get("root")
    return f"the CUDA {toolkit.get('version') or '(unknown version)'} toolkit at {root}"


def describe_toolkit(toolkit: Mapping[str, Any]) -> str:
    root = toolkit.get("real_root") or toolkit.get("root")
    version = toolkit.get("version") or "unknown version"
    return f"{root} (CUDA {version})"


def toolkit_mm(toolkit: Optional[Mapping[str, Any]]) -> Optional[MajorMinor]:
    return mm(toolkit.get("version")) if toolkit else None


def matching_toolkits(cuda: Optional[MajorMinor], found: Sequence[Mapping[str, Any]],
                      prefer_root: Optional[str] = None) -> List[Mapping[str, Any]]:
    """Complete toolkits of torch's CUDA major, best first: exact minor, then the one
    whose nvcc is on PATH, then system installs, then the newest. pip wheels are left
    out: their layout is not a CUDA_HOME torch's build can use."""
    if not cuda:
        return []
    candidates = [t for t in found if complete(t) and t.get("kind") != "pip"
                  and (toolkit_mm(t) or (None,))[0] == cuda[0]]
    preferred = real_root(prefer_root, found) if prefer_root else None

    def key(t: Mapping[str, Any]):
        version = toolkit_mm(t) or (0, 0)
        return (version != cuda, norm_path(t.get("real_root") or t.get("root")) != preferred,
                t.get("kind") != "system", (-version[0], -version[1]))

    seen, unique = set(), []
    for toolkit in sorted(candidates, key=key):
        root = norm_path(toolkit.get("real_root") or toolkit.get("root"))
        if root not in seen:
            seen.add(root)
            unique.append(toolkit)
    return unique


def build_cuda_home(facts: FactSet) -> Tuple[Optional[str], Optional[str]]:
    """(CUDA_HOME torch's extension builds will use, how it was chosen)."""
    torch = torch_info(facts)
    if "cpp_ext_cuda_home" in torch:  # torch's own answer, None included, beats any re-guess
        return torch.get("cpp_ext_cuda_home"), torch.get("cpp_ext_cuda_home_source")
    return cuda_home_guess(env_vars(facts), facts.value("nvcc.path"), toolkits(facts))


def cuda_home_guess(variables: Mapping[str, str], nvcc_path: Optional[str],
                    found: Sequence[Mapping[str, Any]]) -> Tuple[Optional[str], Optional[str]]:
    """torch's ``_find_cuda_home`` computed from facts (for a saved report, or the
    environment a fix plan would produce): CUDA_HOME, CUDA_PATH, the grandparent of
    ``which nvcc`` exactly as torch takes it (no wrapper resolved), /usr/local/cuda."""
    home = variables.get("CUDA_HOME") or variables.get("CUDA_PATH")
    if home:
        return home, "CUDA_HOME" if variables.get("CUDA_HOME") else "CUDA_PATH"
    if nvcc_path:
        return posixpath.dirname(posixpath.dirname(str(nvcc_path))), "which nvcc"
    if find_toolkit("/usr/local/cuda", found):
        return "/usr/local/cuda", "/usr/local/cuda"
    return None, None


def build_toolkit(facts: FactSet) -> Optional[Mapping[str, Any]]:
    """The toolkit entry builds will use, if the chosen CUDA_HOME is one envdoctor found."""
    home, _ = build_cuda_home(facts)
    return find_toolkit(home, toolkits(facts))


# ---------------------------------------------------------------- GPU architectures

def cc_of(arch: Any) -> Optional[MajorMinor]:
    """"8.6", "sm_86", "compute_86", "86", "8.6+PTX", "sm_90a" -> (8, 6) / (9, 0)."""
    text = str(arch or "").strip().lower().replace("+ptx", "")
    for prefix in ("sm_", "compute_"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.rstrip("af")
    try:
        if "." in text:
            major, minor = text.split(".", 1)
            return int(major), int(minor)
        number = int(text)
    except ValueError:
        return None
    return number // 10, number % 10


def sm_name(cc: MajorMinor) -> str:
    return f"sm_{cc[0]}{cc[1]}"


def cc_text(cc: MajorMinor) -> str:
    return f"{cc[0]}.{cc[1]}"


def arch_list_runs(gpu_cc: MajorMinor, arch_list: Iterable[str]) -> bool:
    """Can code built for ``arch_list`` run on a GPU of capability ``gpu_cc``?

    SASS for sm_XY runs on the same major at an equal or higher minor; PTX
    (compute_XY, or "+PTX") is JIT-compiled by the driver for any newer GPU.
    Arch-specific "a" variants run only on exactly that capability.
    """
    for arch in arch_list:
        text = str(arch).strip().lower()
        cc = cc_of(text)
        if cc is None:
            continue
        is_ptx = text.startswith("compute_") or "+ptx" in text
        arch_specific = text.rstrip().endswith("a") and not is_ptx
        if arch_specific and cc == gpu_cc:
            return True
        if is_ptx and cc <= gpu_cc:
            return True
        if not arch_specific and cc[0] == gpu_cc[0] and cc[1] <= gpu_cc[1]:
            return True
    return False


def gpu_capabilities(facts: FactSet) -> List[Tuple[Mapping[str, Any], MajorMinor]]:
    """(gpu, capability) for each GPU whose capability is known (driver, torch or table)."""
    result = []
    for gpu in gpus(facts):
        cc = cc_of(gpu.get("compute_cap"))
        if cc is None and gpu.get("name"):
            cc = cc_of(kb.compute_capability(str(gpu["name"])))
        if cc is not None:
            result.append((gpu, cc))
    return result


# ---------------------------------------------------------------- fixes

def export_lines(variables: Mapping[str, str], path_prepend: Sequence[str] = (),
                 ld_prepend: Sequence[str] = (), unset: Sequence[str] = ()) -> List[str]:
    """Shell lines for a set_env action: the very lines ``envdoctor fix`` writes into the rc
    block and prints with ``--print-env`` (one renderer, ``envdoctor.fix.settings``)."""
    from envdoctor.fix import settings as settings_mod

    params: Dict[str, Any] = {"vars": dict(variables), "path_prepend": list(path_prepend),
                              "ld_library_path_prepend": list(ld_prepend), "unset": list(unset)}
    rendered = settings_mod.EnvSettings()
    settings_mod.merge("fix", params, rendered)
    return settings_mod.export_lines(rendered, "bash")


def set_env_fix(summary: str, variables: Optional[Mapping[str, str]] = None, path_prepend: Sequence[str] = (),
                ld_prepend: Sequence[str] = (), unset: Sequence[str] = (),
                extra_commands: Sequence[str] = ()) -> Fix:
    variables = dict(variables or {})
    params: Dict[str, Any] = {"vars": variables}
    if path_prepend:
        params["path_prepend"] = list(path_prepend)
    if ld_prepend:
        params["ld_library_path_prepend"] = list(ld_prepend)
    if unset:
        params["unset"] = list(unset)
    from envdoctor.fix.settings import SettingsError

    try:
        commands = export_lines(variables, path_prepend, ld_prepend, unset) + list(extra_commands)
    except SettingsError as exc:  # a value no rc file can hold (a line break): say so, apply nothing
        return Fix(summary=f"{summary} (envdoctor cannot write this value: {exc})", action=None, safe=False)
    return Fix(summary=summary, commands=tuple(commands), action="set_env", params=params, safe=True)


def cuda_home_fix(toolkit: Mapping[str, Any], why: str = "") -> Fix:
    """Point CUDA_HOME (and PATH) at a toolkit, by its versioned real root."""
    root = norm_path(toolkit.get("real_root") or toolkit.get("root")) or ""
    if not root.startswith("/"):
        return Fix(summary="Set CUDA_HOME to the toolkit's directory (the one holding bin/nvcc) and put its bin/ "
                           "first on PATH", action=None, safe=False)
    summary = f"Set CUDA_HOME={root} and put its bin/ first on PATH"
    aliases = [a for a in (norm_path(p) for p in [toolkit.get("root"), *(toolkit.get("aliases") or ())])
               if a and a != root]
    if aliases:
        summary += f" ({aliases[0]} names the same toolkit and works as well)"
    variables = {"CUDA_HOME": root}
    if toolkit.get("missing_headers") and toolkit.get("lib_include_dir"):
        # The HPC SDK's toolkits keep cuBLAS & co. in math_libs: name that include dir.
        variables["CPATH"] = str(toolkit["lib_include_dir"])
        summary += f", and take the CUDA library headers from {toolkit['lib_include_dir']} (CPATH)"
    if why:
        summary += f"; {why}"
    line = module_line(toolkit)
    if line:
        summary += f" (where modules are used, `{line}` selects the same toolkit)"
    return set_env_fix(summary, variables, path_prepend=[posixpath.join(root, "bin")],
                       extra_commands=[line] if line else ())


def module_line(toolkit: Mapping[str, Any]) -> Optional[str]:
    """``module load cuda/13.0`` (``module swap <loaded> cuda/13.0`` when another CUDA module is
    loaded) for a toolkit a modulefile offers, when loading it makes builds use that toolkit
    (the HPC SDK's nvhpc module does not: its compilers/bin comes first on PATH)."""
    module = toolkit.get("module") or {}
    name = module.get("name")
    names = {norm_path(p) for p in [toolkit.get("root"), toolkit.get("real_root"), *(toolkit.get("aliases") or ())]}
    if not name or norm_path(module.get("builds_use")) not in names - {None}:
        return None
    if module.get("loaded"):
        return None  # already loaded: the exports pin what it set
    return f"module swap {module['replaces']} {name}" if module.get("replaces") else f"module load {name}"


def pip_install_fix(torch_version: str, cuda: str, why: str) -> Optional[Fix]:
    """A pip_install fix for a published torch build, from the knowledge tables."""
    command = kb.pip_install_command(torch_version, cuda)
    if not command:
        return None
    argv = shlex.split(command)
    return Fix(summary=why, commands=(command,), action="pip_install",
               params={"argv": argv, "torch": torch_version, "cuda": cuda}, safe=False)


def torch_releases() -> List[str]:
    """Every torch MAJOR.MINOR the knowledge tables know, newest first."""
    latest = release_mm(latest_torch_release())
    if not latest:
        return []
    found = []
    for major in range(latest[0], 0, -1):
        top = latest[1] if major == latest[0] else 30
        found += [f"{major}.{minor}" for minor in range(top, -1, -1) if kb.torch_release(f"{major}.{minor}")]
    return found


def python_supported(release: str, python: Optional[MajorMinor]) -> bool:
    """Does that torch release publish wheels for this Python? Unknown Python: assume yes."""
    info = kb.torch_release(release) or {}
    listed = [release_mm(v) for v in info.get("python") or []]
    return python is None or not listed or python in listed


def find_torch_build(facts: FactSet, accept: Callable[[str, str], bool], first: Optional[str] = None,
                     cuda_key: Optional[Callable[[str], Any]] = None) -> Optional[Tuple[str, str]]:
    """(torch release, CUDA) of a published build that this driver runs, this Python can
    install and ``accept`` likes: ``first`` (the installed release) is tried before the
    newest ones. ``cuda_key`` orders a release's CUDA builds (default: newest first)."""
    driver, python = facts.value("driver.version"), python_mm(facts)
    releases = ([public_version(first)] if first else []) + torch_releases()
    for release in dict.fromkeys(releases):
        if not python_supported(release, python):
            continue
        builds = list(reversed(kb.torch_cuda_builds(release) or []))
        if cuda_key:
            builds.sort(key=cuda_key)
        for cuda in builds:
            if driver and not kb.driver_runs_cuda(driver, cuda)[0]:
                continue
            if accept(release, cuda):
                return release, cuda
    return None


def torch_for_driver_fix(facts: FactSet, why: str) -> Optional[Fix]:
    """pip install of the newest CUDA build of the installed torch release (else of the newest
    release this Python can use) that the driver runs. ``why`` may use {cuda} and {torch}."""
    if not facts.value("driver.version"):
        return None
    found = find_torch_build(facts, lambda release, cuda: bool(kb.pip_install_command(release, cuda)),
                             first=torch_info(facts).get("version"))
    if not found:
        return None
    release, cuda = found
    return pip_install_fix(release, cuda, why.format(cuda=cuda, torch=release))


def latest_torch_release() -> Optional[str]:
    """The newest torch release (MAJOR.MINOR) in the knowledge tables."""
    try:
        return kb.latest_torch() or None
    except Exception:  # an empty table must not break the rule that asked
        return None


def unverified_note(flag: Any, what: str) -> str:
    """Say so when a verdict rests on a table cell no primary source confirmed."""
    return f" (this rests on an unverified {what} entry of envdoctor's tables)" if flag else ""


def nvcc_install_commands(cuda: MajorMinor, conda: Optional[str]) -> List[str]:
    """Commands that install a CUDA ``cuda`` nvcc with headers and libcudart, without sudo.

    conda-forge's ``cudatoolkit-dev`` carries nvcc up to 11.3; from 11.4 NVIDIA's channel
    ships split packages, pinned per version so the solver cannot pull a newer nvcc.
    """
    version = fmt_mm(cuda)
    commands = []
    if conda:
        if cuda < (11, 4):
            commands.append(f"conda install -c conda-forge cudatoolkit-dev={version}")
        else:
            commands.append(f'conda install -c nvidia "cuda-nvcc={version}.*" "cuda-cudart-dev={version}.*"')
    commands.append(f"# {'or ' if commands else ''}install CUDA {version} from "
                    f"https://developer.nvidia.com/cuda-toolkit-archive "
                    f"(runfile: --silent --toolkit --toolkitpath=$HOME/cuda-{version}, no sudo needed)")
    return commands
