"""Explain a build or runtime log: which known problem it shows, the key line, and the fix.

Pure functions over text (no I/O):

* :func:`explain` -> a list of :class:`Explanation`, most likely first;
* :func:`first_error` -> the first real error line of a log (warnings skipped),
  used after a failed build to show the one line that matters.

The categories are those of the corpus of real failures (docs/explain.md). The
same message can have different causes; context lines in the log decide
(docker, ``CUDA_VISIBLE_DEVICES``, ``nvidia-smi`` output), as the corpus notes.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

from envdoctor.explain_patterns import CHECK, PATTERNS

CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class Explanation:
    category: str
    line_no: int  # 1-based line of the key line in the log
    line: str  # the key line, quoted
    diagnosis: str
    fix: str
    confidence: str  # high | medium | low

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_at(text: str, pos: int) -> Tuple[int, str]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text.count("\n", 0, pos) + 1, text[start:end if end >= 0 else len(text)].strip()


def _fill(template: str, groups: Tuple[Optional[str], ...]) -> str:
    values = [g or "" for g in groups] + [""] * 5
    try:
        return template.format(*values).replace(" ()", "").replace("up to )", ")")
    except (IndexError, KeyError, ValueError):
        return template


def _match_patterns(text: str) -> List[Explanation]:
    found: List[Explanation] = []
    seen_lines: Dict[int, str] = {}
    seen_categories = set()
    for pattern in PATTERNS:
        match = pattern.regex.search(text)
        if not match:
            continue
        line_no, line = _line_at(text, match.start())
        if line_no in seen_lines or pattern.category in seen_categories:
            continue  # an earlier, more specific pattern already explains this line
        seen_lines[line_no] = pattern.category
        seen_categories.add(pattern.category)
        found.append(Explanation(pattern.category, line_no, line, _fill(pattern.diagnosis, match.groups()),
                                 _fill(pattern.fix, match.groups()), pattern.confidence))
    return found


_DOCKER = re.compile(r"\bdocker\b|nvidia-docker|--gpus\b|/\.dockerenv|\bcontainer\b|\bpodman\b", re.I)
_CVD = re.compile(r"CUDA_VISIBLE_DEVICES")


def _refine(text: str, found: List[Explanation]) -> List[Explanation]:
    """Disambiguate with context, and add the other plausible causes of ambiguous messages."""
    result: List[Explanation] = []
    for item in found:
        if item.category in ("driver_too_old", "driver_not_loaded") and _DOCKER.search(text):
            result.append(_container(item))
            result.append(_replace(item, confidence="low"))
            continue
        if item.category == "driver_not_loaded" and "no CUDA-capable device" in item.line and _CVD.search(text):
            result.append(Explanation(
                "gpu_selection", item.line_no, item.line,
                "CUDA sees no device, and CUDA_VISIBLE_DEVICES is set: it probably hides every GPU (an index or "
                "UUID that does not exist, or an empty value).",
                "Check `echo $CUDA_VISIBLE_DEVICES` against `nvidia-smi -L`; unset it or use existing indices.",
                "medium"))
            result.append(_replace(item, confidence="low"))
            continue
        result.append(item)
        result.extend(_alternatives(item))
        if item.category == "driver_not_loaded" and "communicate with the NVIDIA driver" in item.line:
            # Inside a container started without GPU access nvidia-smi says exactly the same.
            result.append(_replace(_container(item), confidence="low", diagnosis="Or, if this runs in a "
                                   "container: it was started without GPU access, so the driver is not exposed."))
    return result


def _replace(item: Explanation, **changes: Any) -> Explanation:
    data = item.to_dict()
    data.update(changes)
    return Explanation(**data)


def _container(item: Explanation) -> Explanation:
    return Explanation(
        "container_gpu_not_exposed", item.line_no, item.line,
        "This runs in a container started without GPU access: the driver is not exposed inside it.",
        "Start the container with the NVIDIA container toolkit: `docker run --gpus all …` (or "
        "`--runtime=nvidia`), and check `nvidia-smi` inside it.", "medium")


def _alternatives(item: Explanation) -> List[Explanation]:
    if item.category == "missing_runtime_lib" and "libcudart" in item.line:
        version = re.search(r"libcudart\.so\.([\d.]+)", item.line)
        cuda = version.group(1) if version else "another version"
        return [Explanation(
            "prebuilt_wheel_mismatch", item.line_no, item.line,
            f"Or: a prebuilt package (mmcv, a wheel, a .so) was built for CUDA {cuda}, which this machine does not "
            "have.",
            "Install the package's build for your torch and CUDA (matching wheel index/tag) or build it from source "
            "here. " + CHECK, "low")]
    return []


def _own_undefined_symbol(text: str) -> List[Explanation]:
    """``undefined symbol`` of the extension's own function: a partial or CPU-only build, not an ABI problem."""
    match = re.search(r"undefined symbol: (\w+)", text)
    if not match or re.match(r"_ZN[KVr]*(3c10|2at|5torch|6caffe2)", match.group(1)):
        return []
    line_no, line = _line_at(text, match.start())
    cuda = "cuda" in match.group(1).lower()
    return [Explanation(
        "ext_built_without_cuda" if cuda else "ext_not_built", line_no, line,
        f"The library lacks its own function {match.group(1)}: it was built partly or without CUDA"
        if cuda else f"The library lacks its own function {match.group(1)}: an incomplete build.",
        "Remove the build/ dir and the installed .so, then rebuild with CUDA visible (`FORCE_CUDA=1`, "
        "CUDA_HOME set).", "low")]


_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V[\d.]+")
_MENTIONED_CUDA = re.compile(r"\bcuda[ _-]?(?:toolkit[ _-]?)?(\d{1,2}\.\d)\b", re.I)
_SMI = re.compile(r"nvidia-smi", re.I)
_SMI_VERSION = re.compile(r"CUDA Version:?\s*(\d+\.\d+)|nvidia-smi[^\n]{0,80}?(\d+\.\d+)", re.I)


def _toolkit_version_talk(text: str) -> List[Explanation]:
    """Users' own words: 'nvidia-smi says 12.2 but nvcc says 11.3', 'installed 11.8 but nvcc -V shows 11.5'."""
    if not re.search(r"nvcc", text, re.I):
        return []
    smi = _SMI_VERSION.search(text) if _SMI.search(text) else None
    if smi:
        line_no, line = _line_at(text, smi.start())
        version = smi.group(1) or smi.group(2)
        return [Explanation(
            "smi_cuda_version_confusion", line_no, line,
            f"Not a fault: the 'CUDA Version' nvidia-smi shows ({version}) is the newest CUDA the driver supports, "
            "not an installed toolkit; nvcc --version names the toolkit in use.",
            "Nothing to fix. Use `nvcc --version` / CUDA_HOME for the toolkit and torch.version.cuda for torch's "
            "build; `envdoctor check` reports all three separately.", "medium")]
    release = _NVCC_RELEASE.search(text)
    if not release:
        return []
    others = {m for m in _MENTIONED_CUDA.findall(text) if m != release.group(1)}
    if not others:
        return []
    line_no, line = _line_at(text, release.start())
    return [Explanation(
        "multiple_cuda_toolkits", line_no, line,
        f"nvcc on PATH is CUDA {release.group(1)}, not the {', '.join(sorted(others))} expected: another toolkit "
        "(e.g. a distribution's /usr/bin/nvcc) comes first on PATH.",
        "Put the intended toolkit first: `export PATH=/usr/local/cuda-X.Y/bin:$PATH CUDA_HOME=/usr/local/cuda-X.Y` "
        "(`which -a nvcc` lists them). " + CHECK, "medium")]


def explain(text: str) -> List[Explanation]:
    """Every known problem the log shows, most likely first. Empty when nothing is recognised."""
    text = _normalise(text or "")
    found = _match_patterns(text)
    categories = {e.category for e in found}
    if "stale_build_abi" not in categories:
        found.extend(e for e in _own_undefined_symbol(text) if e.category not in categories)
    if not found:
        found.extend(_toolkit_version_talk(text))
    found = _refine(text, found)
    order = {id(e): i for i, e in enumerate(found)}
    return sorted(found, key=lambda e: (CONFIDENCE_ORDER.get(e.confidence, 3), order[id(e)]))


# --- the first real error of a log -------------------------------------------------------------

_ERROR_LINE = re.compile(
    r"\berror\b\s*(?:#\d+[-\w]*)?\s*:|fatal error|#error|nvcc fatal|cannot find -l|undefined reference to|"
    r"undefined symbol|cannot open shared object file|No such file or directory|(?-i:not found)|Killed|"
    r"^\s*[\w.]*(?:Error|Exception|Exit)\b:?|died due to signal|terminated with signal|NCCL WARN|"
    r"is not compatible with the current PyTorch|no kernel image|couldn.t communicate|mismatch", re.I)
_WARNING = re.compile(r"\bwarning\b|UserWarning|DeprecationWarning|#warning|^\s*note:", re.I)
# Lines that report an error found elsewhere (ninja, setuptools, pip wrappers): a last resort.
_WRAPPER = re.compile(
    r"^\s*(FAILED:|ninja: build stopped|subprocess\.CalledProcessError|RuntimeError: Error compiling objects|"
    r"RuntimeError: Error building extension|error: command .* failed with exit (?:status|code)|"
    r"Traceback \(most recent call last\)|\s*File \"|gmake|make(?:\[\d+\])?: \*\*\*|During handling of|"
    r"ERROR: Failed building wheel|error: subprocess-exited-with-error|╰─>|note: This error originates)", re.I)


def first_error(text: str, context: int = 3) -> Optional[Tuple[int, str, List[str]]]:
    """``(line_no, line, context_lines)`` of the first real error; None when the log shows none.

    Warnings are skipped, and so are wrapper lines (``FAILED:``, ``error: command
    '…nvcc' failed``, a traceback's frames) unless nothing else looks like an error.
    ``context_lines`` are up to ``context`` lines before and after, as they are.
    """
    lines = _normalise(text or "").split("\n")
    fallback: Optional[int] = None
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if _WRAPPER.search(line):
            fallback = index if fallback is None else fallback
            continue
        if _ERROR_LINE.search(line) and not _WARNING.search(line):
            return _with_context(lines, index, context)
    return _with_context(lines, fallback, context) if fallback is not None else None


def _with_context(lines: List[str], index: int, context: int) -> Tuple[int, str, List[str]]:
    start, end = max(0, index - context), min(len(lines), index + context + 1)
    return index + 1, lines[index].strip(), lines[start:end]
