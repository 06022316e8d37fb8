"""The user's own words, when no error message is recognised.

"nvidia-smi says 12.2 but nvcc says 11.5" is not a fault (the driver's
maximum vs the installed toolkit); two different nvcc releases, or a
distribution ``nvidia-cuda-toolkit`` next to the intended one, are several
toolkits competing. Both are inferred (medium confidence at most).
"""
from __future__ import annotations

import re
from typing import List, Sequence

from envdoctor.explain.logfacts import NVCC_COMMAND, LogFacts, Scanner
from envdoctor.explain.reading import Log

_RELEASE = re.compile(r"release (\d+\.\d+), V[\d.]+")
_SMI = re.compile(r"nvidia-smi|CUDA Version:|(?:has|shows?|says?) (?:a )?cuda version (?:of |is )?\d", re.I)
_NVCC = re.compile(r"\bnvcc\b|toolkit|cuda[ -]?install(?:ation|ed)?\b|install(?:ed)? (?:the )?cuda|"
                   r"nvidia-cuda\b", re.I)
_CONTRAST = re.compile(r"mismatch|differ|different|still|doesn.?t|does not|reflect|but\b|shows|says|instead|"
                       r"versioning|not the same|while", re.I)
_CMAKE_ID = re.compile(r"CUDA compiler identification is NVIDIA (\d+\.\d+)")
_CMAKE_FOUND = re.compile(r"Found CUDA(?:Toolkit)?: \S+ \(found (?:suitable )?version \"(\d+\.\d+)")
_DISTRO = re.compile(r"nvidia-cuda-toolkit|/usr/lib/nvidia-cuda-toolkit|Check for working CUDA compiler: /usr/bin/nvcc",
                     re.I)
_MENTION = re.compile(r"(?:cuda|toolkit)[ _-]?v?(\d{1,2}\.\d)\b", re.I)

CHECK = "`envdoctor check` shows this machine's toolkit, driver, GPU and torch."


def _find(log: Log, pattern: "re.Pattern[str]", limit: int = 3) -> List[tuple]:
    found = []
    for index, line in enumerate(log.lines):
        match = pattern.search(line[:2000])
        if match:
            found.append((index, match))
            if len(found) >= limit:
                break
    return found


def from_talk(log: Log, scanner: Scanner, facts: LogFacts, roles: Sequence[str]) -> list:
    from envdoctor.explain.analysis import Explanation, label  # noqa: E402 (the one Explanation type; a cycle at import)

    def make(category: str, index: int, score: float, diagnosis: str, fix: str, evidence: List[int]):
        ev = tuple((log.number(i), log.lines[i].strip()[:500]) for i in evidence[:5])
        return Explanation(category, log.number(index), log.lines[index].strip()[:500], diagnosis, fix,
                           label(score), score, ev, "talk")

    if len(log.lines) > 20000:
        return []  # a long machine log, not a person talking
    releases = _find(log, _RELEASE, 5)
    versions = []
    for _, match in releases:
        if match.group(1) not in versions:
            versions.append(match.group(1))
    smi = _find(log, _SMI, 2)
    nvcc = _find(log, _NVCC, 2)
    if smi and (nvcc or releases):
        index = smi[0][0]
        contrast = any(_CONTRAST.search(log.lines[i][:2000]) for i, _ in smi + nvcc)
        score = 0.6 if (contrast or releases) else 0.5
        smi_version = facts.smi_cuda or next((m.group(1) for i, _ in smi for m in [_MENTION.search(log.lines[i])] if m),
                                             None)
        told = f" ({smi_version})" if smi_version else ""
        return [make(
            "smi_cuda_version_confusion", index, score,
            f"Not a fault: the CUDA version nvidia-smi shows{told} is the newest CUDA the driver supports, not an "
            "installed toolkit; nvcc --version names the toolkit in use, torch.version.cuda the CUDA torch was "
            "built with. They may differ.",
            "Nothing to fix. Use `nvcc --version` / CUDA_HOME for the toolkit and torch.version.cuda for torch's "
            "build; " + CHECK, [index] + [i for i, _ in nvcc + releases])]
    cmake_id, cmake_found = _find(log, _CMAKE_ID, 1), _find(log, _CMAKE_FOUND, 1)
    if cmake_id and cmake_found and cmake_id[0][1].group(1) != cmake_found[0][1].group(1):
        index = cmake_id[0][0]
        return [make(
            "multiple_cuda_toolkits", index, 0.65,
            f"CMake compiles with nvcc {cmake_id[0][1].group(1)} but found the CUDA {cmake_found[0][1].group(1)} "
            "toolkit: two toolkits are installed and the compiler on PATH (often the distribution's /usr/bin/nvcc) "
            "is not the intended one.",
            "Select the intended nvcc: `-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc` or `export "
            "PATH=/usr/local/cuda/bin:$PATH`; `which -a nvcc` lists them.", [index, cmake_found[0][0]])]
    distro = _find(log, _DISTRO, 1)
    if len(versions) > 1 or (releases and distro):
        index = releases[0][0]
        which = " and ".join(versions)
        return [make(
            "multiple_cuda_toolkits", index, 0.6,
            f"Several CUDA toolkits answer as nvcc ({which}); the one found first on PATH is not the intended one"
            + (" (the distribution's nvidia-cuda-toolkit in /usr/bin)." if distro else "."),
            "Put the intended toolkit first: `export PATH=/usr/local/cuda-X.Y/bin:$PATH CUDA_HOME=/usr/local/cuda-X.Y` "
            "(`which -a nvcc` lists them), or remove the distribution package `nvidia-cuda-toolkit`. " + CHECK,
            [i for i, _ in releases] + [i for i, _ in distro])]
    mangled = _mangled_nvcc(log)
    if mangled:
        index, path = mangled
        return [make(
            "cuda_home_misconfigured", index, 0.55,
            f"The build runs nvcc from a mangled path ({path}): CUDA_HOME holds a repeated, relative or joined "
            "value, so the compiler path built from it is wrong.",
            "Set CUDA_HOME to one absolute toolkit root, without appending to it: `export CUDA_HOME=/usr/local/cuda` "
            "(check ~/.bashrc for `CUDA_HOME=$CUDA_HOME...`). " + CHECK, [index])]
    if releases:
        index, match = releases[0]
        torch_majors = _torch_cuda_majors(facts)
        nvcc_major = match.group(1).split(".")[0]
        if torch_majors and nvcc_major not in torch_majors:
            built = " or ".join(sorted(torch_majors))
            return [make(
                "toolkit_torch_mismatch", index, 0.55,
                f"The build runs nvcc {match.group(1)}, but torch {facts.torch_cuda or facts.torch} is built with "
                f"CUDA {built}.x: torch's extension builder refuses (or mis-links) a toolkit of another major "
                "version.",
                f"Build with a CUDA {built}.x toolkit (`export CUDA_HOME=/usr/local/cuda-X.Y PATH=/usr/local/cuda-X.Y/"
                "bin:$PATH`; `which -a nvcc` lists them), or install the torch built for the toolkit you have. "
                + CHECK, [index])]
        others = [m for m in facts.cuda_mentions if m != match.group(1)]
        if others:
            return [make(
                "multiple_cuda_toolkits", index, 0.55,
                f"nvcc on PATH is CUDA {match.group(1)}, not the {', '.join(sorted(set(others)))} the log expects: "
                "another toolkit comes first on PATH (often a distribution's /usr/bin/nvcc).",
                "Put the intended toolkit first: `export PATH=/usr/local/cuda-X.Y/bin:$PATH "
                "CUDA_HOME=/usr/local/cuda-X.Y` (`which -a nvcc` lists them). " + CHECK, [index])]
    return []


def _mangled_nvcc(log: Log):
    """(line index, path) of the first nvcc command line whose path repeats a toolkit root or is relative."""
    for index, line in enumerate(log.lines[:20000]):
        if "nvcc" not in line[:400]:
            continue
        match = NVCC_COMMAND.match(line[:400])
        path = match.group(1) if match else ""
        roots = re.findall(r"cuda[\w.-]*", path)
        relative = not path.startswith("/") and not re.match(r"[A-Za-z]:", path)
        if roots and (relative or len(set(roots)) < len(roots)):
            return index, path
    return None


def _torch_cuda_majors(facts: LogFacts) -> set:
    """The CUDA major versions the log's torch can be built with (empty when unknown)."""
    from envdoctor import knowledge as kb

    if facts.torch_cuda:
        return {facts.torch_cuda.split(".")[0]}
    if not facts.torch:
        return set()
    minor = ".".join(facts.torch.split(".")[:2])
    return {cuda.split(".")[0] for cuda in kb.torch_cuda_builds(minor)}

