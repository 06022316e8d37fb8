"""Turn a 300-line failed build log into the first real error, a few lines of context,
and, when the error is a known environment problem, what it means and how to fix it."""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

# Ordered: the first line matching any of these is "the first real error".
_ERROR_PATTERNS = [
    re.compile(r"\berror\b\s*(?:#\d+[-\w]*)?\s*:", re.I),  # gcc/clang/nvcc "error:", "error #20:"
    re.compile(r"fatal error", re.I),
    re.compile(r"#error"),
    re.compile(r"cannot find -l\S+"),
    re.compile(r"undefined reference to"),
    re.compile(r"nvcc fatal"),
    re.compile(r"collect2: error|ld returned \d+ exit status"),
    re.compile(r"No space left on device"),
    re.compile(r"Killed signal terminated program|internal compiler error|signal 9", re.I),
]

# Lines that contain "error" but are not the error (ninja and Python wrappers).
_NOISE = re.compile(r"^(FAILED:|ninja: build stopped|subprocess\.CalledProcessError|RuntimeError: Error building"
                    r"|Traceback|\s*File \")")

# (pattern, explanation) for errors whose cause is the environment, not the code.
_EXPLANATIONS: List[Tuple[re.Pattern, str]] = [
    (re.compile(r"cannot find -lcudart"),
     "The linker found no libcudart under CUDA_HOME/lib64: CUDA_HOME points at a directory that is not a CUDA "
     "toolkit (often /usr/local, guessed from a /usr/local/bin/nvcc wrapper). Set CUDA_HOME to the real toolkit, "
     "e.g. `export CUDA_HOME=/usr/local/cuda`, and run `envdoctor check`."),
    (re.compile(r"cuda_runtime(_api)?\.h: No such file"),
     "The CUDA headers are not under CUDA_HOME/include: set CUDA_HOME to the real toolkit (`envdoctor check` "
     "names it)."),
    (re.compile(r"unsupported GNU version|unsupported clang version"),
     "nvcc rejects this host compiler as too new. Install an older gcc supported by this CUDA and select it "
     "with `export CC=gcc-12 CXX=g++-12` (or NVCC_CCBIN), or upgrade the CUDA toolkit."),
    (re.compile(r"Unsupported gpu architecture|unsupported GPU architecture", re.I),
     "This nvcc cannot build one of the requested archs; pass archs it supports (`nvcc --list-gpu-arch`) with "
     "--arch, or use a newer/older toolkit."),
    (re.compile(r"No space left on device"),
     "The disk holding the build directory is full; free space or pass --cache-dir on another disk."),
    (re.compile(r"cannot find -lcuda\b"),
     "The linker found no libcuda (the driver library): install the NVIDIA driver, or link against the stub "
     "in CUDA_HOME/lib64/stubs on a build machine without a GPU."),
    (re.compile(r"Killed signal terminated program|internal compiler error: Killed|died due to signal 9"
                r"|terminated with signal 9", re.I),
     "The compiler was killed, usually by the out-of-memory killer: lower the parallelism with MAX_JOBS=1."),
    (re.compile(r"undefined symbol|undefined reference to .*(c10|at::|torch)"),
     "The binary does not match the installed torch: rebuild with `envdoctor build --force`."),
]


def first_error(log: str, context: int = 5) -> Optional[str]:
    """The first real error line and up to ``context`` lines after it, or None."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if _NOISE.match(line):
            continue
        if any(p.search(line) for p in _ERROR_PATTERNS):
            snippet = [line] + [ln for ln in lines[i + 1:i + 1 + context] if not _NOISE.match(ln)]
            return "\n".join(s.rstrip() for s in snippet).strip("\n")
    return None


def explanation(log: str) -> Optional[str]:
    for pattern, text in _EXPLANATIONS:
        if pattern.search(log):
            return text
    return None


def summarize_failure(log: str, log_path: str) -> str:
    """What a person needs after a failed build, in a dozen lines at most."""
    parts = []
    error = first_error(log)
    parts.append("first error:\n" + _indent(error) if error else "the build failed without a recognisable "
                 "compiler error; last lines:\n" + _indent("\n".join(log.strip().splitlines()[-5:])))
    why = explanation(log)
    if why:
        parts.append("what it means: " + why)
    parts.append(f"full log: {log_path}")
    return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
